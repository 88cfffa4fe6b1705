"""The compiled core's pixel helpers in numpy alone, for a process that has not loaded the
core (small jobs; see `convcli.plan.jit_pays`): same arguments, same results."""

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


def quantize_in_parallel(kernel, planes, absolute, offset, scale, top, rounding, out):
    """Run a quantizer of rows [start, stop) — compiled or `quantize_rows` — over the rows
    of `planes` on the thread pool; returns (values clipped by more than rounding would,
    smallest and largest finite input value)."""
    parts = parallel_for(kernel, planes.shape[1], planes, absolute, offset, scale, top,
                         rounding, out)
    low, high = min(p[1] for p in parts), max(p[2] for p in parts)
    outside = sum(p[0] for p in parts)
    return (outside, np.nan, np.nan) if low > high else (outside, low, high)


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
    by more than rounding would, smallest and largest finite input value)."""
    return quantize_in_parallel(quantize_rows, planes, absolute, offset, scale, top, rounding,
                                out)
