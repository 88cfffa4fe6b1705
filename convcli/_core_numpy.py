"""The compiled core's pixel helpers in numpy alone, for a process that has not loaded the
core (small jobs; see `convcli.plan.jit_pays`): same arguments, same results."""

import numpy as np


def finite_range(values):
    """(min, max) of the finite values of a float array (NaN, NaN if there are none)."""
    finite = np.isfinite(values)
    low = np.min(values, where=finite, initial=np.inf)
    high = np.max(values, where=finite, initial=-np.inf)
    return (np.nan, np.nan) if low > high else (low, high)


def quantize(planes, absolute, offset, scale, top, rounding, out):
    """out (H, W, C) = clip((|v| if absolute else v) · scale + offset, 0, top) of planar
    (C, H, W) values, rounded to nearest when `rounding`, NaN as 0; returns (values clipped
    by more than rounding would, smallest and largest finite input value)."""
    low, high = finite_range(planes)
    values = np.abs(planes, dtype=np.float64) if absolute else planes.astype(np.float64)
    values *= scale
    values += offset
    slack = 0.5 if rounding else 0.0        # values that round into range are not clipped
    outside = np.count_nonzero(~(values >= -slack)) + np.count_nonzero(values > top + slack)
    np.clip(values, 0, top, out=values)
    values[np.isnan(values)] = 0
    if rounding:
        np.rint(values, out=values)
    out[...] = values.transpose(1, 2, 0)
    return outside, low, high
