"""Pixel helpers in numpy alone: the twins of the compiled core's `finite_range` and
`png_filter_rows`, for a process that has not loaded the core (small jobs; see
`convcli.backend.jit_pays`), with the same arguments and results; and the quantizer, which
has no compiled twin (numpy's is faster at the pipeline's band sizes)."""

import numpy as np

from .threads import parallel_for

#: Values the numpy quantizer maps at once: its 1 MB float64 copies stay in cache, and its
#: dozen numpy calls per block cost little (2048² RGB: 160 ms in one piece, 42 ms so).
QUANTIZE_BLOCK = 2**17


def finite_range(values):
    """(min, max) of the finite values of a float array (NaN, NaN if there are none)."""
    finite = np.isfinite(values)
    low = np.min(values, where=finite, initial=np.inf)
    high = np.max(values, where=finite, initial=-np.inf)
    return (np.nan, np.nan) if low > high else (low, high)


def quantize_rows(planes, absolute, offset, scale, top, rounding, out, start, stop):
    """out[y] (W, C) = clip((|v| if absolute else v) · scale + offset, 0, top) of planar
    (C, H, W) values for y in [start, stop), rounded to nearest when `rounding`, NaN as 0,
    in blocks of rows; returns (values clipped by more than rounding would, smallest and
    largest finite input value: inf, -inf if none)."""
    slack = 0.5 if rounding else 0.0        # values that round into range are not clipped
    rows = max(1, QUANTIZE_BLOCK // max(1, planes.shape[0] * planes.shape[2]))
    outside, low, high = 0, np.inf, -np.inf
    for first in range(start, stop, rows):
        block = planes[:, first:min(stop, first + rows)]
        finite = np.isfinite(block)
        low = min(low, np.min(block, where=finite, initial=np.inf))
        high = max(high, np.max(block, where=finite, initial=-np.inf))
        values = np.abs(block, dtype=np.float64) if absolute else block.astype(np.float64)
        if scale != 1:
            values *= scale
        if offset:
            values += offset
        outside += np.count_nonzero(~(values >= -slack)) + np.count_nonzero(values > top + slack)
        np.clip(values, 0, top, out=values)
        values[np.isnan(values)] = 0
        if rounding:
            np.rint(values, out=values)
        out[first:first + block.shape[1]] = values.transpose(1, 2, 0)
    return outside, low, high


def quantize(planes, absolute, offset, scale, top, rounding, out):
    """out (H, W, C) = clip((|v| if absolute else v) · scale + offset, 0, top) of planar
    (C, H, W) values, rounded to nearest when `rounding`, NaN as 0; returns (values clipped
    by more than rounding would, smallest and largest finite input value), in blocks of rows
    on the thread pool."""
    parts = parallel_for(quantize_rows, planes.shape[1], planes, absolute, offset, scale, top,
                         rounding, out)
    low, high = min(p[1] for p in parts), max(p[2] for p in parts)
    outside = sum(p[0] for p in parts)
    return (outside, np.nan, np.nan) if low > high else (outside, low, high)


#: Bytes of raw PNG rows the numpy filter handles at once (its trial rows stay in cache).
PNG_FILTER_BLOCK = 2**16


def png_filter_rows(rows, bpp, prior):
    """Filter raw PNG rows (H, row_bytes) for deflate as the compiled `png_filter_rows`
    does — each row with whichever of PNG's five filters gives the most zero bytes, the
    first on ties — in blocks of rows on the thread pool; returns (H, 1 + row_bytes)."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    step = max(1, PNG_FILTER_BLOCK // max(1, rows.shape[1]))

    def filter_blocks(start, stop):
        for first in range(start * step, min(rows.shape[0], stop * step), step):
            last = min(rows.shape[0], first + step)
            up = rows[first - 1:last - 1] if first else np.vstack([prior, rows[:last - 1]])
            _filter_block(rows[first:last], up, bpp, out[first:last])

    parallel_for(filter_blocks, -(-rows.shape[0] // step))
    return out


def _filter_block(raw, up, bpp, out):
    """out (h, 1 + W) = the filter byte and the filtered bytes of raw rows (h, W) whose rows
    above are `up` (bytes left of the first pixel count as zero)."""
    left, corner = np.zeros_like(raw), np.zeros_like(up)
    left[:, bpp:], corner[:, bpp:] = raw[:, :-bpp], up[:, :-bpp]
    a, b, c = (v.astype(np.int16) for v in (left, up, corner))
    pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
    paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)
    trials = np.stack([raw, raw - left, raw - up, raw - ((a + b) >> 1).astype(np.uint8),
                       raw - paeth])
    best = np.argmax(np.count_nonzero(trials == 0, axis=2), axis=0)
    out[:, 0] = best
    out[:, 1:] = trials[best, np.arange(raw.shape[0])]
