"""The compiled core: the only module that imports numba.

Every function here takes clean arrays (C-contiguous, one float dtype) and index maps
built by `convcli.plan`; padding never materialises: a padded row or column is looked up
in ``row_src``/``col_src`` (-1 means zero), and the interior of each row is read directly.
"""

import numpy as np
from numba import njit, prange

ROWS_PER_TASK = 8


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
