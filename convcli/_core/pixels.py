"""Compiled pixel kernels: the finite range of a result (the quantizer is numpy's alone,
`convcli._core_numpy`, which is faster at the pipeline's band sizes)."""

import numpy as np

from ..threads import parallel_for
from . import compiled


@compiled(nogil=True)
def _finite_range(flat, start, stop):
    """(min, max) of the finite values of flat[start:stop] (inf, -inf if none is finite).

    Parameters
    ----------
    flat : ndarray, 1-D float
        The values.
    start, stop : int
        The part to scan (`convcli.threads.parallel_for` splits the array between threads).
    """
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


