"""convcli: image convolution with PyTorch's semantics, and the arithmetic behind it.

The public functions are loaded on first use, so importing convcli stays instant.
"""

__version__ = "0.1.0"

_PUBLIC = {
    "conv2d": "convcli.conv",
    "conv2d_input": "convcli.grad",
    "conv2d_weight": "convcli.grad",
    "conv_transpose2d": "convcli.transpose",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name == "grad":
        import importlib

        return importlib.import_module("convcli.grad")
    if name in _PUBLIC:
        import importlib

        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'convcli' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
