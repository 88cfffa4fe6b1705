"""The thread pool every parallel step shares (``--threads``): the compiled kernels, the
FFT tiles, the numpy path's blocks and the PNG encoder."""

import os
from concurrent.futures import ThreadPoolExecutor

_threads = {"count": os.cpu_count() or 1, "pool": None, "size": 0, "pid": None}


def set_threads(count: int) -> None:
    """Use `count` threads for every parallel step."""
    _threads["count"] = max(1, int(count))


def thread_count() -> int:
    """The threads parallel steps use: `set_threads`'s, by default every CPU."""
    return _threads["count"]


def parallel_for(kernel, tasks: int, *args):
    """Run ``kernel(*args, start, stop)`` over task ranges covering [0, tasks), on the
    thread pool (the kernels release the GIL); returns the results in order.

    The compiled kernels are serial (`nogil`), which compiles several times faster than
    numba's parallel loops and, unlike its threading layers, survives fork() (the pool is
    rebuilt in a forked child)."""
    count = min(_threads["count"], tasks)
    if count <= 1:
        return [kernel(*args, 0, tasks)]
    if _threads["pid"] != os.getpid() or _threads["size"] < count:
        _threads["size"] = max(count, _threads["count"])
        _threads["pool"] = ThreadPoolExecutor(_threads["size"])
        _threads["pid"] = os.getpid()
    pieces = min(tasks, 4 * count)
    bounds = [tasks * i // pieces for i in range(pieces + 1)]
    futures = [_threads["pool"].submit(kernel, *args, a, b) for a, b in zip(bounds, bounds[1:])]
    return [f.result() for f in futures]
