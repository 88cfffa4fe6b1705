"""The compiled core: the only package that imports numba, loaded only when a job uses it
(`convcli.backend` says whether it is loaded or worth loading).

Its kernels, by topic: `conv` (convolution and max pooling), `pixels` (what a result's
pixels need), `codecs` (PNG row filters).  Each takes clean arrays (C-contiguous, one
dtype); the public wrapper beside each ``_kernel`` splits its work over the thread pool.
"""

import warnings

from numba import njit


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
