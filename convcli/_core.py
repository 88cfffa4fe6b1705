"""The compiled core: the only module that imports numba.

Every function here takes clean arrays (C-contiguous, one float dtype) and index maps
built by `convcli.plan`: padded row or column p copies input row or column row_src[p] /
col_src[p] (-1 means zero).  The padded image never exists; each task pads just the rows
it needs into a small buffer that stays in cache.
"""

import warnings

import numpy as np
from numba import njit

from ._core_numpy import quantize_in_parallel
from .threads import parallel_for


def compiled(**options):
    """numba's ``njit(cache=True, **options)``; where numba finds no writable cache
    directory, the function is compiled in each process instead (one warning says so)."""
    def decorate(function):
        global _cache_warned
        try:
            return njit(cache=True, **options)(function)
        except RuntimeError as exc:                 # "cannot cache function …"
            if not _cache_warned:
                warnings.warn(f"numba cannot cache compiled code ({exc}); compiling it in "
                              "every run instead: set NUMBA_CACHE_DIR to a writable directory",
                              RuntimeWarning, stacklevel=2)
                _cache_warned = True
            return njit(**options)(function)
    return decorate


_cache_warned = False


@compiled(inline="always")
def fill_padded_rows(x, n, c, row_src, col_src, left, first, pbuf):
    """pbuf[k] = padded row `first + k` of channel c of image n: every column through
    col_src (-1 is zero), the interior copied in one piece."""
    width = x.shape[3]
    for k in range(pbuf.shape[0]):
        r = row_src[first + k]
        prow = pbuf[k]
        if r < 0:
            for q in range(prow.size):
                prow[q] = 0
            continue
        xrow = x[n, c, r]
        inner = prow[left:left + width]
        for q in range(width):
            inner[q] = xrow[q]
        for q in range(left):
            s = col_src[q]
            prow[q] = xrow[s] if s >= 0 else 0
        for q in range(left + width, prow.size):
            s = col_src[q]
            prow[q] = xrow[s] if s >= 0 else 0


@compiled(inline="always")
def accumulate_row(arow, prow, taps, stride_w, dil_w):
    """arow[t] += Σ_j taps[j] · prow[t·stride_w + j·dil_w], three to five taps per pass
    where the row allows (6 = 3 + 3, 7 = 4 + 3, 9 = 5 + 4, 15 = 5 + 5 + 5; 2 = 1 + 1), so
    each accumulator load and store carries several multiply-adds."""
    wo = arow.size
    kw = taps.size
    if stride_w != 1:
        for j in range(kw):
            w0 = taps[j]
            o0 = j * dil_w
            for t in range(wo):
                arow[t] += w0 * prow[t * stride_w + o0]
        return
    j0 = 0
    while j0 < kw:
        rest = kw - j0
        count = min(5, rest - 3) if rest > 5 else 1 if rest == 2 else rest
        o0 = j0 * dil_w
        a = prow[o0:o0 + wo]
        w0 = taps[j0]
        if count == 5:
            b = prow[o0 + dil_w:o0 + dil_w + wo]
            c = prow[o0 + 2 * dil_w:o0 + 2 * dil_w + wo]
            d = prow[o0 + 3 * dil_w:o0 + 3 * dil_w + wo]
            e = prow[o0 + 4 * dil_w:o0 + 4 * dil_w + wo]
            w1, w2, w3, w4 = taps[j0 + 1], taps[j0 + 2], taps[j0 + 3], taps[j0 + 4]
            for t in range(wo):
                arow[t] += w0 * a[t] + w1 * b[t] + w2 * c[t] + w3 * d[t] + w4 * e[t]
        elif count == 4:
            b = prow[o0 + dil_w:o0 + dil_w + wo]
            c = prow[o0 + 2 * dil_w:o0 + 2 * dil_w + wo]
            d = prow[o0 + 3 * dil_w:o0 + 3 * dil_w + wo]
            w1, w2, w3 = taps[j0 + 1], taps[j0 + 2], taps[j0 + 3]
            for t in range(wo):
                arow[t] += w0 * a[t] + w1 * b[t] + w2 * c[t] + w3 * d[t]
        elif count == 3:
            b = prow[o0 + dil_w:o0 + dil_w + wo]
            c = prow[o0 + 2 * dil_w:o0 + 2 * dil_w + wo]
            w1, w2 = taps[j0 + 1], taps[j0 + 2]
            for t in range(wo):
                arow[t] += w0 * a[t] + w1 * b[t] + w2 * c[t]
        else:
            for t in range(wo):
                arow[t] += w0 * a[t]
        j0 += count


@compiled(nogil=True)
def _correlate(x, weight, bias, row_src, col_src, stride_h, stride_w, dil_h, dil_w, left,
               groups, block_rows, chunk, out, start, stop):
    """Direct convolution: out[n, co] = bias[co] + Σ_ci Σ_ij weight[co, ci, i, j] ·
    xpad[n, g·Cig + ci, oy·sh + i·dh, ox·sw + j·dw].

    Tasks are (image, `chunk` output channels of one group, block of output rows).  A task
    pads the input rows its block needs once per input channel, into a buffer that stays
    in cache, then adds whole kernel rows into its blocks of accumulators.
    """
    c_out, c_in_g, kh, kw = weight.shape
    ho, wo = out.shape[2], out.shape[3]
    c_out_g = c_out // groups
    chunks_per_group = (c_out_g + chunk - 1) // chunk
    n_chunks = groups * chunks_per_group
    n_blocks = (ho + block_rows - 1) // block_rows
    for task in range(start, stop):
        n = task // (n_chunks * n_blocks)
        k = (task // n_blocks) % n_chunks
        g = k // chunks_per_group
        co0 = g * c_out_g + (k % chunks_per_group) * chunk
        co1 = min(co0 + chunk, (g + 1) * c_out_g)
        y0 = (task % n_blocks) * block_rows
        y1 = min(ho, y0 + block_rows)
        first = y0 * stride_h
        pbuf = np.empty(((y1 - 1) * stride_h + (kh - 1) * dil_h + 1 - first, col_src.size),
                        out.dtype)
        acc = np.empty((co1 - co0, y1 - y0, wo), out.dtype)
        for co in range(co0, co1):
            acc[co - co0].fill(bias[co])
        for ci in range(c_in_g):
            fill_padded_rows(x, n, g * c_in_g + ci, row_src, col_src, left, first, pbuf)
            for co in range(co0, co1):
                for oy in range(y0, y1):
                    for i in range(kh):
                        accumulate_row(acc[co - co0, oy - y0],
                                       pbuf[oy * stride_h + i * dil_h - first],
                                       weight[co, ci, i], stride_w, dil_w)
        for co in range(co0, co1):
            for oy in range(y0, y1):
                src, dst = acc[co - co0, oy - y0], out[n, co, oy]
                for t in range(wo):
                    dst[t] = src[t]


def correlate(x, weight, bias, row_src, col_src, stride_h, stride_w, dil_h, dil_w, left, groups,
              block_rows, chunk, out):
    """Direct convolution (see `_correlate`) over all tasks, in parallel."""
    c_out = weight.shape[0]
    tasks = x.shape[0] * groups * ((c_out // groups + chunk - 1) // chunk) * \
        ((out.shape[2] + block_rows - 1) // block_rows)
    parallel_for(_correlate, tasks, x, weight, bias, row_src, col_src, stride_h, stride_w,
                 dil_h, dil_w, left, groups, block_rows, chunk, out)
    return out


@compiled(nogil=True)
def _correlate_separable(x, col_taps, row_taps, bias, row_src, col_src, stride_h, stride_w,
                         dil_h, dil_w, left, groups, block_rows, out, start, stop):
    """Convolution with kernels of low rank: weight[co, ci] = Σ_r col_taps[co, ci, r] ⊗
    row_taps[co, ci, r], run for each term r and output row as a vertical pass over the
    padded rows it needs, then a horizontal pass over that one row (no row is filtered
    twice, however tall the kernel)."""
    c_out, c_in_g, rank, kh = col_taps.shape
    ho, wo = out.shape[2], out.shape[3]
    c_out_g = c_out // groups
    n_blocks = (ho + block_rows - 1) // block_rows
    for task in range(start, stop):
        n = task // (c_out * n_blocks)
        co = (task // n_blocks) % c_out
        y0 = (task % n_blocks) * block_rows
        y1 = min(ho, y0 + block_rows)
        first = y0 * stride_h
        rows = (y1 - 1) * stride_h + (kh - 1) * dil_h + 1 - first
        pbuf = np.empty((rows, col_src.size), out.dtype)
        column = np.empty(col_src.size, out.dtype)          # one row of vertical sums
        acc = np.empty((y1 - y0, wo), out.dtype)
        acc.fill(bias[co])
        c_in_0 = (co // c_out_g) * c_in_g
        for ci in range(c_in_g):
            fill_padded_rows(x, n, c_in_0 + ci, row_src, col_src, left, first, pbuf)
            for r in range(rank):
                for oy in range(y0, y1):
                    base = oy * stride_h - first
                    column.fill(0)
                    i = 0
                    while i < kh:                       # four kernel rows per pass
                        count = min(4, kh - i)
                        w0 = col_taps[co, ci, r, i]
                        p0 = pbuf[base + i * dil_h]
                        if count == 4:
                            w1, w2, w3 = (col_taps[co, ci, r, i + 1], col_taps[co, ci, r, i + 2],
                                          col_taps[co, ci, r, i + 3])
                            p1 = pbuf[base + (i + 1) * dil_h]
                            p2 = pbuf[base + (i + 2) * dil_h]
                            p3 = pbuf[base + (i + 3) * dil_h]
                            for t in range(column.size):
                                column[t] += w0 * p0[t] + w1 * p1[t] + w2 * p2[t] + w3 * p3[t]
                        else:
                            for t in range(column.size):
                                column[t] += w0 * p0[t]
                            count = 1
                        i += count
                    accumulate_row(acc[oy - y0], column, row_taps[co, ci, r], stride_w, dil_w)
        for oy in range(y0, y1):
            src, dst = acc[oy - y0], out[n, co, oy]
            for t in range(wo):
                dst[t] = src[t]


def correlate_separable(x, col_taps, row_taps, bias, row_src, col_src, stride_h, stride_w,
                        dil_h, dil_w, left, groups, block_rows, out):
    """Low-rank convolution (see `_correlate_separable`) over all tasks, in parallel."""
    tasks = x.shape[0] * col_taps.shape[0] * ((out.shape[2] + block_rows - 1) // block_rows)
    parallel_for(_correlate_separable, tasks, x, col_taps, row_taps, bias, row_src, col_src,
                 stride_h, stride_w, dil_h, dil_w, left, groups, block_rows, out)
    return out


@compiled(nogil=True)
def _im2col(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, left, y0, out,
            start, stop):
    """The patch matrix of image x[0] for output rows y0 … y0 + out rows / Wo:
    out[(c·kh + i)·kw + j, (oy − y0)·Wo + ox] = xpad[c, oy·sh + i·dh, ox·sw + j·dw].
    Each input row is padded once, then copied kw times."""
    wo = (col_src.size - (kw - 1) * dil_w - 1) // stride_w + 1
    n_rows = out.shape[1] // wo
    pbuf = np.empty((1, col_src.size), x.dtype)
    for task in range(start, stop):
        c, i = task // kh, task % kh
        for oy in range(n_rows):
            fill_padded_rows(x, 0, c, row_src, col_src, left, (y0 + oy) * stride_h + i * dil_h,
                             pbuf)
            for j in range(kw):
                dst = out[(c * kh + i) * kw + j, oy * wo:(oy + 1) * wo]
                src = pbuf[0, j * dil_w:]
                if stride_w == 1:
                    for ox in range(wo):
                        dst[ox] = src[ox]
                else:
                    for ox in range(wo):
                        dst[ox] = src[ox * stride_w]


def im2col(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, left, y0, out):
    """The patch matrix (see `_im2col`), in parallel over (channel, kernel row)."""
    parallel_for(_im2col, x.shape[1] * kh, x, row_src, col_src, kh, kw, stride_h, stride_w,
                 dil_h, dil_w, left, y0, out)
    return out


@compiled()
def png_unfilter(rows, bpp, prior, out):
    """Undo PNG's per-row filters: `rows` is (H, 1 + row_bytes) uint8, byte 0 the filter;
    `prior` is the decoded row above the first (zeros at the top); writes `out`."""
    height, width = rows.shape[0], rows.shape[1] - 1
    for y in range(height):
        kind = rows[y, 0]
        up = out[y - 1] if y > 0 else prior
        row = out[y]
        for i in range(width):
            raw = np.int32(rows[y, i + 1])
            left = np.int32(row[i - bpp]) if i >= bpp else 0
            above = np.int32(up[i])
            if kind == 1:
                raw += left
            elif kind == 2:
                raw += above
            elif kind == 3:
                raw += (left + above) >> 1
            elif kind == 4:
                corner = np.int32(up[i - bpp]) if i >= bpp else 0
                p = left + above - corner
                pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
                if pa <= pb and pa <= pc:
                    raw += left
                elif pb <= pc:
                    raw += above
                else:
                    raw += corner
            row[i] = raw & 255
    return out


@compiled()
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


@compiled(nogil=True)
def _png_filter_rows(rows, bpp, prior, out, start, stop):
    """out[y] = raw row y of `rows` filtered with whichever of PNG's five filters gives the
    most zero bytes (best for run-length deflate), preceded by the filter's number, for y in
    [start, stop); `prior` is the raw row above the first (zeros at the top of the image)."""
    width = rows.shape[1]
    trial = np.empty((5, width), np.uint8)
    for y in range(start, stop):
        raw = rows[y]
        up = rows[y - 1] if y > 0 else prior
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
        for i in range(width):
            out[y, i + 1] = trial[best, i]


def png_filter_rows(rows, bpp, prior):
    """Filter raw PNG rows (H, row_bytes) for deflate (see `_png_filter_rows`), rows in
    parallel; returns (H, 1 + row_bytes)."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    parallel_for(_png_filter_rows, rows.shape[0], rows, bpp, prior, out)
    return out


@compiled(nogil=True)
def _finite_range(flat, start, stop):
    low, high = np.inf, -np.inf
    for k in range(start, stop):
        v = flat[k]
        if v < low and v > -np.inf:
            low = v
        if v > high and v < np.inf:
            high = v
    return low, high


def finite_range(values):
    """(min, max) of the finite values of a float array (NaN, NaN if there are none)."""
    parts = parallel_for(_finite_range, values.size, values.ravel())
    low, high = min(p[0] for p in parts), max(p[1] for p in parts)
    return (np.nan, np.nan) if low > high else (low, high)


@compiled(nogil=True)
def _quantize(planes, absolute, offset, scale, top, rounding, out, start, stop):
    """out[y, x, c] = clip((|v| if absolute else v) · scale + offset, 0, top), rounded to
    nearest when `rounding`, from planar (C, H, W) values; NaN becomes 0.

    Returns (how many values clipping changed by more than rounding would, the smallest and
    the largest finite input value) — inf, -inf if none is finite."""
    channels, height, width = planes.shape
    slack = 0.5 if rounding else 0.0        # values that round into range are not clipped
    count = 0
    low, high = np.inf, -np.inf
    for y in range(start, stop):
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
                    count += not (v >= -slack)
                    v = 0.0
                elif v > top:
                    count += v > top + slack
                    v = top
                if rounding:
                    v = np.rint(v)
                out[y, x, c] = v
    return count, low, high


def quantize(planes, absolute, offset, scale, top, rounding, out):
    """Map planar values to pixels (see `_quantize`), in parallel over rows; returns (values
    clipped by more than rounding would, smallest and largest finite input value)."""
    return quantize_in_parallel(_quantize, planes, absolute, offset, scale, top, rounding, out)


@compiled(nogil=True)
def _max_pool(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, out, start, stop):
    """out[n, c, oy, ox] = the largest x[n, c] under the window; padding (-1 in the index
    maps) is ignored, as PyTorch's -inf padding is."""
    channels = x.shape[1]
    ho, wo = out.shape[2], out.shape[3]
    for task in range(start, stop):
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


def max_pool(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, out):
    """Max pooling (see `_max_pool`), in parallel over (image, channel)."""
    parallel_for(_max_pool, x.shape[0] * x.shape[1], x, row_src, col_src, kh, kw, stride_h,
                 stride_w, dil_h, dil_w, out)
    return out
