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


#: Below this much work (values touched, or multiply-adds for a convolution) a job runs
#: on the calling thread: handing pieces to the pool costs about 0.15 ms here (im2col of
#: 32 images of 28², 627,200 values: 0.13 ms on one thread, 0.24 ms on two; 2.5 million
#: values: 0.50 ms on one, 0.42 ms on two; a 3×3 depthwise conv2d of a 3×64×64 image:
#: 0.07 ms on one, 0.30 ms on two).
SERIAL_WORK = 2**21


def parallel_for(kernel, tasks: int, *args, work: int | None = None):
    """Run ``kernel(*args, start, stop)`` over task ranges covering [0, tasks), on the
    thread pool (the kernels release the GIL); returns the results in order.  A job that
    says its `work` is under `SERIAL_WORK` runs on the calling thread.

    The compiled kernels are serial (`nogil`), which compiles several times faster than
    numba's parallel loops and, unlike its threading layers, survives fork() (the pool is
    rebuilt in a forked child)."""
    count = min(_threads["count"], tasks)
    if count <= 1 or (work is not None and work < SERIAL_WORK):
        return [kernel(*args, 0, tasks)]
    if _threads["pid"] != os.getpid() or _threads["size"] < count:
        _threads["size"] = max(count, _threads["count"])
        _threads["pool"] = ThreadPoolExecutor(_threads["size"])
        _threads["pid"] = os.getpid()
    pieces = min(tasks, 4 * count)
    bounds = [tasks * i // pieces for i in range(pieces + 1)]
    futures = [_threads["pool"].submit(kernel, *args, a, b) for a, b in zip(bounds, bounds[1:])]
    return [f.result() for f in futures]
