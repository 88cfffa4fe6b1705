"""Whether the compiled core is loaded, and which pixel helpers to use: the compiled ones
once it is, else their numpy twins (`convcli._core_numpy`: same arguments, same results).

Pure Python: asking never loads numba.  (The convolution planner's side of the policy —
whether a job should load the core — is `convcli.plan.jit_pays`.)
"""

from __future__ import annotations

import importlib
import sys

#: The helpers with a compiled version, and the module of `convcli._core` that holds each.
COMPILED_HELPERS = {"finite_range": "pixels", "png_filter_rows": "codecs"}

# Seconds per byte of choosing and applying PNG row filters, measured on the reference
# machine (bench/run.py).
PNG_FILTER_BYTE = 1 / 400e6         # compiled
NUMPY_PNG_FILTER_BYTE = 1 / 200e6   # numpy


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
