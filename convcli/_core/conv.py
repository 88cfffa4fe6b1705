"""Compiled convolution kernels: direct, separable (low rank), the patch matrix for gemm
and its adjoint, max pooling, and the backward passes of max pooling and ReLU.

Every function takes clean arrays (C-contiguous, one float dtype) and index maps built by
`convcli.plan`: padded row or column p copies input row or column row_src[p] / col_src[p]
(-1 means zero).  The padded image never exists; each task pads just the rows it needs
into a small buffer that stays in cache.
"""

import numpy as np

from ..threads import parallel_for
from . import compiled


@compiled(inline="always")
def fill_padded_rows(x, n, c, row_src, col_src, left, first, pbuf):
    """pbuf[k] = padded row `first + k` of channel c of image n: every column through
    col_src (-1 is zero), the interior copied in one piece.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The unpadded input.
    n, c : int
        The image and channel to pad.
    row_src, col_src : ndarray of int64
        For each padded row / column, the input row / column it copies (-1: zero).
    left : int
        Columns of padding on the left (where the input's columns start in a padded row).
    first : int
        The padded row that ``pbuf[0]`` receives.
    pbuf : ndarray, shape (rows, len(col_src))
        Written: padded rows ``first`` … ``first + rows - 1``.
    """
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
    each accumulator load and store carries several multiply-adds.

    Parameters
    ----------
    arow : ndarray, shape (Wo,)
        The accumulators of one output row (updated in place).
    prow : ndarray
        One padded input row (or a row of vertical sums), at least
        ``(Wo - 1)·stride_w + (kw - 1)·dil_w + 1`` long.
    taps : ndarray, shape (kw,)
        One row of the kernel.
    stride_w, dil_w : int
        Horizontal stride and dilation.
    """
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

    Parameters
    ----------
    x : ndarray, shape (N, Cin, H, W)
        The unpadded input.
    weight : ndarray, shape (Cout, Cin/groups, kh, kw)
        Cross-correlation weights (already flipped for true convolution).
    bias : ndarray, shape (Cout,)
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: zero), from `convcli.plan`.
    stride_h, stride_w, dil_h, dil_w : int
        Stride and dilation.
    left : int
        Columns of padding on the left.
    groups : int
        Channel groups.
    block_rows : int
        Output rows of one task.
    chunk : int
        Output channels of one task (within one group).
    out : ndarray, shape (N, Cout, Ho, Wo)
        Written: the result.
    start, stop : int
        The tasks to run (`convcli.threads.parallel_for` splits them between threads).
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
                 dil_h, dil_w, left, groups, block_rows, chunk, out,
                 work=out.size * weight[0].size)
    return out


@compiled(nogil=True)
def _correlate_separable(x, col_taps, row_taps, bias, row_src, col_src, stride_h, stride_w,
                         dil_h, dil_w, left, groups, block_rows, out, start, stop):
    """Convolution with kernels of low rank: weight[co, ci] = Σ_r col_taps[co, ci, r] ⊗
    row_taps[co, ci, r], run for each term r and output row as a vertical pass over the
    padded rows it needs, then a horizontal pass over that one row (no row is filtered
    twice, however tall the kernel).

    Parameters
    ----------
    x : ndarray, shape (N, Cin, H, W)
        The unpadded input.
    col_taps : ndarray, shape (Cout, Cin/groups, R, kh)
        Each kernel's vertical factors (zero beyond its own rank).
    row_taps : ndarray, shape (Cout, Cin/groups, R, kw)
        Each kernel's horizontal factors.
    bias : ndarray, shape (Cout,)
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: zero).
    stride_h, stride_w, dil_h, dil_w : int
        Stride and dilation.
    left : int
        Columns of padding on the left.
    groups : int
        Channel groups.
    block_rows : int
        Output rows of one task; tasks are (image, output channel, block of rows).
    out : ndarray, shape (N, Cout, Ho, Wo)
        Written: the result.
    start, stop : int
        The tasks to run.
    """
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
                 stride_h, stride_w, dil_h, dil_w, left, groups, block_rows, out,
                 work=out.size * col_taps.shape[1] * col_taps.shape[2] * (
                     col_taps.shape[3] + row_taps.shape[3]))
    return out


@compiled(nogil=True)
def _im2col(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, left, y0, wo,
            channel_major, n0, images, out, start, stop):
    """The patch matrix of the images x[n0] … x[n0 + images − 1] for output rows y0 … y0 +
    rows − 1 (rows = out columns / (images·wo)): out[(c·kh + i)·kw + j, (n·rows + oy −
    y0)·wo + ox] = xpad[n0 + n, c, oy·sh + i·dh, ox·sw + j·dw].  Each input row is padded
    once, then copied kw times.

    Parameters
    ----------
    x : ndarray, shape (N, Cin, H, W), or (Cin, N, H, W) if `channel_major`
        The unpadded input.
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: zero).
    kh, kw : int
        Kernel size.
    stride_h, stride_w, dil_h, dil_w : int
        Stride and dilation.
    left : int
        Columns of padding on the left.
    y0 : int
        The first output row of the band.
    wo : int
        Output columns (`convcli.plan` computes it; the kernel never does).
    channel_major : bool
        Whether x's first axis is the channel (the layout training keeps).
    n0, images : int
        The images of x to take.
    out : ndarray, shape (Cin·kh·kw, images·rows·wo)
        Written: the band's patch matrix, the images side by side.
    start, stop : int
        The (image, channel, kernel row) tasks to run, numbered (n·Cin + c)·kh + i.
    """
    channels = x.shape[0] if channel_major else x.shape[1]
    n_rows = out.shape[1] // (images * wo)
    pbuf = np.empty((1, col_src.size), x.dtype)
    for task in range(start, stop):
        n, c, i = task // (channels * kh), (task // kh) % channels, task % kh
        a, b = (c, n0 + n) if channel_major else (n0 + n, c)
        for oy in range(n_rows):
            fill_padded_rows(x, a, b, row_src, col_src, left, (y0 + oy) * stride_h + i * dil_h,
                             pbuf)
            column = (n * n_rows + oy) * wo
            for j in range(kw):
                dst = out[(c * kh + i) * kw + j, column:column + wo]
                src = pbuf[0, j * dil_w:]
                if stride_w == 1:
                    for ox in range(wo):
                        dst[ox] = src[ox]
                else:
                    for ox in range(wo):
                        dst[ox] = src[ox * stride_w]


def im2col(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, left, y0, wo,
           channel_major, n0, images, out):
    """The patch matrix (see `_im2col`), in parallel over (image, channel, kernel row)."""
    channels = x.shape[0] if channel_major else x.shape[1]
    parallel_for(_im2col, images * channels * kh, x, row_src, col_src, kh, kw, stride_h,
                 stride_w, dil_h, dil_w, left, y0, wo, channel_major, n0, images, out,
                 work=out.size)
    return out


@compiled(nogil=True)
def _col2im(cols, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, y0, wo,
            channel_major, n0, images, out, start, stop):
    """The adjoint of `_im2col`: every patch-matrix value added to the input pixel it was
    copied from, out[n0 + n, c, row_src[oy·sh + i·dh], col_src[ox·sw + j·dw]] +=
    cols[(c·kh + i)·kw + j, (n·rows + oy − y0)·wo + ox] (padding, -1, receives nothing).
    Each plane is summed on the padded grid first, then folded onto the input.

    Parameters
    ----------
    cols : ndarray, shape (Cin·kh·kw, N·rows·wo)
        A band of patch-matrix values (a gradient, in backpropagation).
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: zero).
    kh, kw : int
        Kernel size.
    stride_h, stride_w, dil_h, dil_w : int
        Stride and dilation.
    y0 : int
        The first output row of the band.
    wo : int
        Output columns.
    channel_major : bool
        Whether out's first axis is the channel.
    n0, images : int
        The images of out that cols covers.
    out : ndarray, shape (N, Cin, H, W), or (Cin, N, H, W) if `channel_major`
        Added to (the caller zeroes it first).
    start, stop : int
        The (image, channel) tasks to run, numbered n·Cin + c: no two write one pixel.
    """
    channels = out.shape[0] if channel_major else out.shape[1]
    n_rows = cols.shape[1] // (images * wo)
    first = y0 * stride_h
    span = (n_rows - 1) * stride_h + (kh - 1) * dil_h + 1
    padded = np.empty((span, col_src.size), cols.dtype)
    for task in range(start, stop):
        n, c = task // channels, task % channels
        padded[:] = 0
        for i in range(kh):
            for oy in range(n_rows):
                prow = padded[oy * stride_h + i * dil_h]
                column = (n * n_rows + oy) * wo
                for j in range(kw):
                    src = cols[(c * kh + i) * kw + j, column:column + wo]
                    dst = prow[j * dil_w:]
                    if stride_w == 1:
                        for ox in range(wo):
                            dst[ox] += src[ox]
                    else:
                        for ox in range(wo):
                            dst[ox * stride_w] += src[ox]
        for p in range(span):
            r = row_src[first + p]
            if r < 0:
                continue
            orow = out[c, n0 + n, r] if channel_major else out[n0 + n, c, r]
            prow = padded[p]
            for q in range(col_src.size):
                s = col_src[q]
                if s >= 0:
                    orow[s] += prow[q]


def col2im(cols, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, y0, wo,
           channel_major, n0, images, out):
    """Patch values back onto the input (see `_col2im`), in parallel over (image,
    channel)."""
    channels = out.shape[0] if channel_major else out.shape[1]
    parallel_for(_col2im, images * channels, cols, row_src, col_src, kh, kw, stride_h,
                 stride_w, dil_h, dil_w, y0, wo, channel_major, n0, images, out,
                 work=cols.size)
    return out


@compiled(inline="always")
def window_max(plane, row_src, col_src, top, left, kh, kw, dil_h, dil_w, lowest):
    """(largest value, its flat index r·W + s) of one window of `plane` whose padded top
    left corner is (top, left), skipping padding; (lowest, -1) for a window of padding
    only.

    Parameters
    ----------
    plane : ndarray, shape (H, W)
        One channel of one image.
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: padding).
    top, left : int
        The window's first padded row and column.
    kh, kw, dil_h, dil_w : int
        Window size and dilation.
    lowest : float
        -inf in the plane's dtype.
    """
    best, at = lowest, -1
    for i in range(kh):
        r = row_src[top + i * dil_h]
        if r < 0:
            continue
        for j in range(kw):
            s = col_src[left + j * dil_w]
            if s >= 0 and (at < 0 or plane[r, s] > best):
                best, at = plane[r, s], r * plane.shape[1] + s
    return best, at


@compiled(inline="always")
def pairs_row(row0, row1, base, stride, first, lo, hi, out_row, where_row):
    """The 2×2 windows lo … hi − 1 of one output row, unrolled and branch-light so that
    the loop vectorises (five times faster than `window_max`'s loops).

    Parameters
    ----------
    row0, row1 : ndarray
        The window's two input rows.
    base : int
        The flat index of row0's first pixel.
    stride : int
        Column stride.
    first : int
        Input column of window 0's left edge (windows lo … hi − 1 lie inside the image).
    lo, hi : int
        The windows to compute.
    out_row, where_row : ndarray
        Written: the maxima and their flat indices.
    """
    below = base + row0.size
    for ox in range(lo, hi):
        c0 = ox * stride + first
        best, at = row0[c0], base + c0
        if row0[c0 + 1] > best:
            best, at = row0[c0 + 1], base + c0 + 1
        if row1[c0] > best:
            best, at = row1[c0], below + c0
        if row1[c0 + 1] > best:
            best, at = row1[c0 + 1], below + c0 + 1
        out_row[ox] = best
        where_row[ox] = at


@compiled(nogil=True)
def _max_pool(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, out, where, start,
              stop):
    """out[n, c, oy, ox] = the largest x[n, c] under the window (the first of equal ones);
    padding (-1 in the index maps) is ignored, as PyTorch's -inf padding is.  2×2 windows
    clear of the padding take a vectorised path (`pairs_row`).

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        The unpadded input.
    row_src, col_src : ndarray of int64
        The padded rows' and columns' input indices (-1: padding; zero padding, so the
        others are the identity shifted by the padding).
    kh, kw : int
        Window size.
    stride_h, stride_w, dil_h, dil_w : int
        Stride and dilation.
    out : ndarray, shape (N, C, Ho, Wo)
        Written: the result.
    where : ndarray of int64, shape (N, C, Ho, Wo) or empty
        Written unless empty: the flat index r·W + s in its plane of each maximum (what the
        backward pass routes the gradient to; -1 for a window of padding only).
    start, stop : int
        The (image, channel) tasks to run, numbered n·C + c.
    """
    channels, width = x.shape[1], x.shape[3]
    ho, wo = out.shape[2], out.shape[3]
    record = where.size > 0
    scratch = np.empty(wo, np.int64)
    lowest = np.full(1, -np.inf, x.dtype)[0]
    pairs = kh == 2 and kw == 2 and dil_h == 1 and dil_w == 1
    lo, hi = wo, 0                      # the windows clear of the left and right padding
    for ox in range(wo):
        if col_src[ox * stride_w] >= 0 and col_src[ox * stride_w + (kw - 1) * dil_w] >= 0:
            lo, hi = min(lo, ox), ox + 1
    first = col_src[lo * stride_w] - lo * stride_w if lo < hi else 0
    for task in range(start, stop):
        n, c = task // channels, task % channels
        plane = x[n, c]
        for oy in range(ho):
            out_row = out[n, c, oy]
            where_row = where[n, c, oy] if record else scratch
            r0 = row_src[oy * stride_h]
            if pairs and r0 >= 0 and row_src[oy * stride_h + 1] >= 0:
                pairs_row(plane[r0], plane[r0 + 1], r0 * width, stride_w, first, lo, hi,
                          out_row, where_row)
                edges = (0, lo, max(lo, hi), wo)
            else:
                edges = (0, wo, wo, wo)
            for a, b in ((edges[0], edges[1]), (edges[2], edges[3])):
                for ox in range(a, b):
                    out_row[ox], where_row[ox] = window_max(
                        plane, row_src, col_src, oy * stride_h, ox * stride_w, kh, kw, dil_h,
                        dil_w, lowest)


def max_pool(x, row_src, col_src, kh, kw, stride_h, stride_w, dil_h, dil_w, out, where):
    """Max pooling (see `_max_pool`), in parallel over (image, channel)."""
    parallel_for(_max_pool, x.shape[0] * x.shape[1], x, row_src, col_src, kh, kw, stride_h,
                 stride_w, dil_h, dil_w, out, where, work=x.size)
    return out


@compiled(nogil=True)
def _relu_backward(x, grad_output, out, start, stop):
    """out = grad_output where x > 0, else 0 (flat arrays of one size).

    Parameters
    ----------
    x : ndarray
        The ReLU's input.
    grad_output : ndarray
        The gradient with respect to its output.
    out : ndarray
        Written: the gradient with respect to its input.
    start, stop : int
        The range of values to run.
    """
    for p in range(start, stop):
        out[p] = grad_output[p] if x[p] > 0 else 0


def relu_backward(x, grad_output, out):
    """The ReLU's gradient (see `_relu_backward`), in parallel over parts of the arrays."""
    parallel_for(_relu_backward, x.size, x.ravel(), grad_output.ravel(), out.ravel(),
                 work=x.size)
    return out


@compiled(nogil=True)
def _max_unpool(grad_output, where, pooled, out, start, stop):
    """The backward pass of `_max_pool`: each output gradient added to the input pixel its
    window's maximum came from.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, Ho, Wo)
        The gradient with respect to the pooled output.
    where : ndarray of int64, shape (N, C, Ho, Wo)
        The flat indices `_max_pool` recorded (-1: nothing to route).
    pooled : ndarray, shape (N, C, Ho, Wo) or empty
        Unless empty, the pooled values: only those above 0 pass their gradient (a ReLU
        before the pooling, whose backward pass this then is too).
    out : ndarray, shape (N, C, H, W)
        Added to (the caller zeroes it first).
    start, stop : int
        The (image, channel) tasks to run, numbered n·C + c.
    """
    n_all, channels, h, w = out.shape
    flat = out.reshape(n_all, channels, h * w)
    pooled_size = where.shape[2] * where.shape[3]
    grads = grad_output.reshape(n_all, channels, pooled_size)
    places = where.reshape(n_all, channels, pooled_size)
    masked = pooled.size > 0
    maxima = pooled.reshape(n_all, channels, pooled_size) if masked else grads
    for task in range(start, stop):
        n, c = task // channels, task % channels
        for p in range(pooled_size):
            at = places[n, c, p]
            if at >= 0 and (not masked or maxima[n, c, p] > 0):
                flat[n, c, at] += grads[n, c, p]


def max_unpool(grad_output, where, pooled, out):
    """Gradients back to the maxima (see `_max_unpool`), in parallel over (image,
    channel)."""
    parallel_for(_max_unpool, out.shape[0] * out.shape[1], grad_output, where, pooled, out,
                 work=out.size)
    return out
