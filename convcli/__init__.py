"""convcli: image convolution with PyTorch's semantics, and the arithmetic behind it.

The public functions are loaded on first use, so importing convcli stays instant (it
imports neither numpy nor numba).

Examples
--------
>>> import numpy as np
>>> import convcli
>>> convcli.conv2d(np.ones((1, 3, 3)), np.ones((1, 1, 2, 2)))
array([[[4., 4.],
        [4., 4.]]])
"""

__version__ = "0.1.0"

#: Each public name and the module that defines it.
_PUBLIC = {
    "conv2d": "convcli.conv",
    "conv2d_input": "convcli.grad",
    "conv2d_weight": "convcli.grad",
    "conv_transpose2d": "convcli.transpose",
    "max_pool2d": "convcli.conv",
    "avg_pool2d": "convcli.conv",
    "equivalent_matrix": "convcli.matrix",
    "equivalent_matrix_sparse": "convcli.matrix",
    "conv_vs_dense": "convcli.matrix",
    "resolve_kernel": "convcli.kernels",
    "Catalogue": "convcli.kernels",
    "read_image": "convcli.images",
    "write_image": "convcli.images",
    "load_network": "convcli.net",
    "learn_kernel": "convcli.learn",
    "conv_transpose2d": "convcli.transpose",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name == "grad":
        import importlib

        return importlib.import_module("convcli.grad")
    if name in _PUBLIC:
        import importlib

        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value             # found once, then a plain attribute
        return value
    raise AttributeError(f"module 'convcli' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
