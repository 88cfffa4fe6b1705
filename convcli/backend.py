"""When to load the compiled core: the JIT policy every module asks.

Loading numba and the compiled core from its cache costs `JIT_LOAD` seconds once per
process; the numpy twins of the compiled kernels cost nothing to load but run slower.  Who
pays the load decides:

- A **one-shot** job (a CLI command: `one_shot` is in force while it runs) loads the core
  only if that job alone saves more than the load, so small jobs never import numba.
- A **library** process (a notebook, a training script, a service calling `conv2d`) is
  taken to be long-lived once it convolves a second time: the first call that would gain
  from the core runs on numpy unless its gain alone pays for the load; from the second such
  call on, the core is loaded (a loop of ten calls on a 2048² image runs compiled from its
  second call).  Many tiny calls load it too, once what they have lost to the numpy path
  adds up to the load (ski rental: never more than twice the best choice in hindsight).

`pixel_helper` gives the compiled pixel helpers once the core is loaded, else their numpy
twins (`convcli._core_numpy`: same arguments, same results).

Pure Python: importing this loads neither numpy nor numba.
"""

from __future__ import annotations

import contextlib
import importlib
import sys

#: The helpers with a compiled version, and the module of `convcli._core` that holds each.
COMPILED_HELPERS = {"finite_range": "pixels", "png_filter_rows": "codecs"}
#: Seconds to import numba and load the compiled core from its cache, paid once per process
#: (0.55–0.8 s here for what an 8-bit job runs; 0.27 s more where scipy is installed, which
#: numba then imports): small jobs finish sooner without it.
JIT_LOAD = 0.65
#: A library call counts as wanting the core if it would save at least this many seconds.
LIBRARY_GAIN = 1e-3
# Seconds per byte of choosing and applying PNG row filters, measured on the reference
# machine (bench/run.py).
PNG_FILTER_BYTE = 1 / 400e6         # compiled
NUMPY_PNG_FILTER_BYTE = 1 / 200e6   # numpy

_one_shot = 0           # depth of `one_shot` blocks in force
_gains = 0              # library calls so far that would have gained from the core
_forgone = 0.0          # seconds the process has lost so far by not loading it


def jit_loaded() -> bool:
    """Whether this process has loaded the compiled core already."""
    return "convcli._core" in sys.modules


def pixel_helper(name: str):
    """The pixel helper `name` (a key of `COMPILED_HELPERS`): compiled once this process
    has loaded the core, else its numpy twin."""
    if jit_loaded():
        return getattr(importlib.import_module(f"convcli._core.{COMPILED_HELPERS[name]}"), name)
    from . import _core_numpy

    return getattr(_core_numpy, name)


def png_saving(nbytes: int) -> float:
    """Seconds the compiled PNG row filters save over their numpy twins on `nbytes` of
    pixels."""
    return nbytes * (NUMPY_PNG_FILTER_BYTE - PNG_FILTER_BYTE)


@contextlib.contextmanager
def one_shot():
    """Within this block the process runs one job and ends: the compiled core is loaded
    only for work that alone saves more than loading it (the CLI runs each command so)."""
    global _one_shot
    _one_shot += 1
    try:
        yield
    finally:
        _one_shot -= 1


@contextlib.contextmanager
def repeating():
    """Within this block the caller convolves again and again (gradient descent), as a
    library process does: the core loads from the second call that gains, even inside a
    one-shot job."""
    global _one_shot
    depth, _one_shot = _one_shot, 0
    try:
        yield
    finally:
        _one_shot = depth


def jit_pays(seconds_saved: float) -> bool:
    """Whether work the compiled core would do `seconds_saved` faster should load it.

    Always once it is loaded; else if the saving, with what the process has lost so far to
    the numpy path, exceeds `JIT_LOAD`; and, outside `one_shot`, from the second call that
    would gain `LIBRARY_GAIN` or more (see the module's docstring).  A call answered "no"
    is counted: its saving is what the process lost.
    """
    global _gains, _forgone
    if jit_loaded():
        return True
    gains = seconds_saved >= LIBRARY_GAIN and not _one_shot
    if seconds_saved + _forgone > JIT_LOAD or (gains and _gains >= 1):
        return True
    _gains += gains
    _forgone += max(0.0, seconds_saved)
    return False
