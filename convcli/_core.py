"""The compiled core: the only module that imports numba.

Every function here takes clean arrays (C-contiguous, one float dtype) and index maps
built by `convcli.plan`; padding never materialises: a padded row or column is looked up
in ``row_src``/``col_src`` (-1 means zero), and the interior of each row is read directly.
"""

import numba
import numpy as np
from numba import njit, prange

# The workqueue threading layer survives fork(), which batch workers rely on (GNU OpenMP
# aborts a forked child); an explicit NUMBA_THREADING_LAYER still wins.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

ROWS_PER_TASK = 8


def set_threads(count: int) -> None:
    """Use `count` threads in parallel functions (at most numba's maximum)."""
    numba.set_num_threads(max(1, min(count, numba.config.NUMBA_NUM_THREADS)))


@njit(cache=True, parallel=True)
def correlate(x, weight, bias, row_src, col_src, stride_h, stride_w, dil_h, dil_w, left,
              groups, out):
    """out[n, co] = bias[co] + Σ_ci Σ_ij weight[co, ci, i, j] · xpad[n, g·Cig + ci, oy·sh + i·dh, ox·sw + j·dw].

    Tasks are (image, output channel, block of output rows); each accumulates one output
    row at a time in a local buffer along contiguous input rows.
    """
    n_img, _, _, width = x.shape
    c_out, c_in_g, kh, kw = weight.shape
    ho, wo = out.shape[2], out.shape[3]
    c_out_g = c_out // groups

    # For tap column j, output columns [lo[j], hi[j]) read x[..., ox·sw + j·dw − left]
    # without a lookup; the few outside use col_src.
    lo = np.empty(kw, np.int64)
    hi = np.empty(kw, np.int64)
    for j in range(kw):
        first = left - j * dil_w
        a = 0 if first <= 0 else (first + stride_w - 1) // stride_w
        end = left + width - j * dil_w
        b = 0 if end <= 0 else (end + stride_w - 1) // stride_w
        lo[j] = min(a, wo)
        hi[j] = max(lo[j], min(b, wo))

    n_blocks = (ho + ROWS_PER_TASK - 1) // ROWS_PER_TASK
    for task in prange(n_img * c_out * n_blocks):
        n = task // (c_out * n_blocks)
        co = (task // n_blocks) % c_out
        block = task % n_blocks
        c_in_0 = (co // c_out_g) * c_in_g
        acc = np.empty(wo, out.dtype)
        for oy in range(block * ROWS_PER_TASK, min(ho, (block + 1) * ROWS_PER_TASK)):
            acc[:] = bias[co]
            for ci in range(c_in_g):
                for i in range(kh):
                    r = row_src[oy * stride_h + i * dil_h]
                    if r < 0:
                        continue
                    xrow = x[n, c_in_0 + ci, r]
                    for j in range(kw):
                        wt = weight[co, ci, i, j]
                        off = j * dil_w - left
                        for ox in range(lo[j]):
                            c = col_src[ox * stride_w + j * dil_w]
                            if c >= 0:
                                acc[ox] += wt * xrow[c]
                        a, b = lo[j], hi[j]
                        dst = acc[a:b]
                        if stride_w == 1:
                            src = xrow[a + off:b + off]
                            for t in range(b - a):
                                dst[t] += wt * src[t]
                        else:
                            src = xrow[a * stride_w + off:]
                            for t in range(b - a):
                                dst[t] += wt * src[t * stride_w]
                        for ox in range(hi[j], wo):
                            c = col_src[ox * stride_w + j * dil_w]
                            if c >= 0:
                                acc[ox] += wt * xrow[c]
            out[n, co, oy] = acc
    return out


@njit(cache=True)
def png_unfilter(rows, bpp):
    """Undo PNG's per-row filters: `rows` is (H, 1 + row_bytes) uint8, byte 0 the filter."""
    height, width = rows.shape[0], rows.shape[1] - 1
    out = np.zeros((height, width), np.uint8)
    prior = np.zeros(width, np.int32)
    for y in range(height):
        kind = rows[y, 0]
        for i in range(width):
            raw = np.int32(rows[y, i + 1])
            left = np.int32(out[y, i - bpp]) if i >= bpp else 0
            up = prior[i]
            if kind == 1:
                raw += left
            elif kind == 2:
                raw += up
            elif kind == 3:
                raw += (left + up) >> 1
            elif kind == 4:
                corner = prior[i - bpp] if i >= bpp else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                if pa <= pb and pa <= pc:
                    raw += left
                elif pb <= pc:
                    raw += up
                else:
                    raw += corner
            out[y, i] = raw & 255
        for i in range(width):
            prior[i] = out[y, i]
    return out


@njit(cache=True)
def tiff_lzw_decode(src, size):
    """Decode a TIFF LZW strip (MSB-first codes of 9–12 bits, with TIFF's early change) into
    at most `size` bytes; returns the bytes decoded."""
    out = np.empty(size, np.uint8)
    prefix = np.empty(4096, np.int32)
    suffix = np.empty(4096, np.uint8)
    length = np.zeros(4096, np.int32)
    for code in range(256):
        prefix[code] = -1
        suffix[code] = code
        length[code] = 1
    n_bits = src.size * 8
    bit = 0
    width = 9
    next_code = 258
    previous = -1
    pos = 0
    while bit + width <= n_bits and pos < size:
        code = 0
        for _ in range(width):
            code = (code << 1) | ((src[bit >> 3] >> (7 - (bit & 7))) & 1)
            bit += 1
        if code == 257:
            break
        if code == 256:
            width = 9
            next_code = 258
            previous = -1
            continue
        if previous >= 0 and code > next_code:
            break                                   # corrupt: a code not yet defined
        if previous < 0:
            entry = code
        elif code < next_code:
            entry = code
        else:                                       # code == next_code: previous + its first byte
            entry = previous
        # write the string of `entry` backwards from its end
        n = length[entry]
        end = min(pos + n, size)
        c = entry
        for k in range(n - 1, -1, -1):
            if pos + k < size:
                out[pos + k] = suffix[c]
            c = prefix[c]
        first = out[pos]
        pos = end
        if previous >= 0 and next_code < 4096:
            if code == next_code and pos < size:
                out[pos] = first
                pos += 1
            prefix[next_code] = previous
            suffix[next_code] = first
            length[next_code] = length[previous] + 1
            next_code += 1
            if next_code + 1 >= (1 << width) and width < 12:
                width += 1
        previous = code
    return out[:pos]


@njit(cache=True)
def png_filter_rows(rows, bpp):
    """Filter each row of raw PNG bytes (H, row_bytes) with whichever of PNG's five filters
    gives the most zero bytes (best for run-length deflate); returns (H, 1 + row_bytes)."""
    height, width = rows.shape
    out = np.empty((height, width + 1), np.uint8)
    trial = np.empty((5, width), np.uint8)
    zero = np.zeros(width, np.uint8)
    for y in range(height):
        raw = rows[y]
        up = rows[y - 1] if y > 0 else zero
        for i in range(width):
            trial[0, i] = raw[i]
            trial[2, i] = raw[i] - up[i]
        for i in range(bpp):
            trial[1, i] = raw[i]
            trial[3, i] = raw[i] - (up[i] >> 1)
            trial[4, i] = raw[i] - up[i]                # Paeth with left = corner = 0 is up
        for i in range(bpp, width):
            left, above, corner = np.int16(raw[i - bpp]), np.int16(up[i]), np.int16(up[i - bpp])
            trial[1, i] = raw[i] - raw[i - bpp]
            trial[3, i] = raw[i] - np.uint8((left + above) >> 1)
            pa = abs(above - corner)                    # |p − left| with p = left + above − corner
            pb = abs(left - corner)
            pc = abs(left + above - 2 * corner)
            paeth = left if (pa <= pb and pa <= pc) else (above if pb <= pc else corner)
            trial[4, i] = raw[i] - np.uint8(paeth)
        best, most = 0, -1
        for k in range(5):
            zeros = 0
            for i in range(width):
                zeros += trial[k, i] == 0
            if zeros > most:
                best, most = k, zeros
        out[y, 0] = best
        out[y, 1:] = trial[best]
    return out


@njit(cache=True, parallel=True)
def finite_range(values):
    """(min, max) of the finite values of a float array (NaN, NaN if there are none)."""
    flat = values.ravel()
    n_blocks = 64
    lows = np.full(n_blocks, np.inf)
    highs = np.full(n_blocks, -np.inf)
    size = flat.size
    for b in prange(n_blocks):
        low, high = np.inf, -np.inf
        for k in range(b * size // n_blocks, (b + 1) * size // n_blocks):
            v = flat[k]
            if np.isfinite(v):
                if v < low:
                    low = v
                if v > high:
                    high = v
        lows[b] = low
        highs[b] = high
    low, high = lows.min(), highs.max()
    if low > high:
        return np.nan, np.nan
    return low, high


@njit(cache=True, parallel=True)
def quantize(planes, absolute, offset, scale, top, rounding, out):
    """out[y, x, c] = clip((|v| if absolute else v) · scale + offset, 0, top), rounded to
    nearest when `rounding`, from planar (C, H, W) values; NaN becomes 0.

    Returns (how many values fell outside [0, top] before clipping, the smallest and the
    largest finite input value) — NaN, NaN if none is finite."""
    channels, height, width = planes.shape
    outside = np.zeros(height, np.int64)
    lows = np.full(height, np.inf)
    highs = np.full(height, -np.inf)
    for y in prange(height):
        count = 0
        low, high = np.inf, -np.inf
        for x in range(width):
            for c in range(channels):
                v = planes[c, y, x]
                if v < low and v > -np.inf:
                    low = v
                if v > high and v < np.inf:
                    high = v
                if absolute:
                    v = abs(v)
                v = v * scale + offset
                if not (v >= 0):            # negative or NaN
                    count += 1
                    v = 0.0
                elif v > top:
                    count += 1
                    v = top
                if rounding:
                    v = np.rint(v)
                out[y, x, c] = v
        outside[y] = count
        lows[y] = low
        highs[y] = high
    low, high = lows.min(), highs.max()
    if low > high:
        return outside.sum(), np.nan, np.nan
    return outside.sum(), low, high


@njit(cache=True, parallel=True)
def max_pool(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, out):
    """out[n, c, oy, ox] = the largest x[n, c] under the window; padding (-1 in the index
    maps) is ignored, as PyTorch's -inf padding is."""
    n_img, channels = x.shape[0], x.shape[1]
    ho, wo = out.shape[2], out.shape[3]
    for task in prange(n_img * channels):
        n, c = task // channels, task % channels
        for oy in range(ho):
            for ox in range(wo):
                best = -np.inf
                for i in range(kh):
                    r = row_src[oy * stride_h + i * dil_h]
                    if r < 0:
                        continue
                    for j in range(kw):
                        s = col_src[ox * stride_w + j * dil_w]
                        if s >= 0 and x[n, c, r, s] > best:
                            best = x[n, c, r, s]
                out[n, c, oy, ox] = best
    return out
