"""`conv2d`: PyTorch's ``torch.nn.functional.conv2d`` on numpy arrays."""

from __future__ import annotations

import numpy as np

from .errors import ParameterError
from .plan import make_plan


def _as_float_array(value, name: str, dtype) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ParameterError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def compute_dtype(*arrays) -> np.dtype:
    """float64 when any of `arrays` is float64, else float32."""
    if any(np.asarray(a).dtype == np.float64 for a in arrays if a is not None):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           pad_mode="zeros", mode="corr") -> np.ndarray:
    """2-D convolution with the semantics of PyTorch's ``torch.nn.functional.conv2d``.

    Each output channel is one filter: one kernel per input channel of its group,
    cross-correlated with that channel, summed, plus the filter's bias.

    Parameters
    ----------
    x : array_like
        (Cin, H, W) or (N, Cin, H, W).
    weight : array_like
        (Cout, Cin/groups, kh, kw).
    bias : array_like, optional
        (Cout,).
    stride, dilation : int or (int, int)
    padding : int, (ph, pw), (top, bottom, left, right), "valid", "same" or "full"
    groups : int
        Input and output channels are split into this many groups; ``groups == Cin``
        with ``Cout == Cin`` is a depthwise convolution.
    pad_mode : str
        zeros, reflect, symmetric, replicate, circular, or another library's name for
        one of them (see `convcli.plan.canonical_pad_mode`).
    mode : {"corr", "conv"}
        Cross-correlation (PyTorch's) or true convolution (kernel flipped in both axes).

    Returns
    -------
    ndarray
        (Cout, Ho, Wo) or (N, Cout, Ho, Wo); float64 if x or weight is float64,
        else float32.

    Raises
    ------
    ValueError
        For any input or option that is not allowed; the message names it.
    """
    dtype = compute_dtype(x, weight)
    x = _as_float_array(x, "x", dtype)
    weight = _as_float_array(weight, "weight", dtype)
    if x.ndim not in (3, 4):
        raise ParameterError(f"x must have shape (Cin, H, W) or (N, Cin, H, W), got {x.shape}")
    plan = make_plan(x.shape, weight.shape, stride, padding, dilation, groups, pad_mode, mode)
    if not np.isfinite(weight).all():
        raise ParameterError("weight contains NaN or infinity; every weight must be finite")
    cout = weight.shape[0]
    if bias is None:
        bias = np.zeros(cout, dtype)
    else:
        bias = _as_float_array(bias, "bias", dtype)
        if bias.shape != (cout,):
            raise ParameterError(f"bias must have shape ({cout},) (one per output channel), "
                                 f"got {bias.shape}")
        if not np.isfinite(bias).all():
            raise ParameterError("bias contains NaN or infinity; every value must be finite")
    if mode == "conv":
        weight = np.ascontiguousarray(weight[:, :, ::-1, ::-1])

    from . import _core

    batched = x.reshape(plan.input_shape)
    out = np.empty(plan.output_shape, dtype)
    _core.correlate(batched, weight, bias, plan.row_sources(), plan.col_sources(),
                    *plan.stride, *plan.dilation, plan.padding[2], plan.groups, out)
    return out if x.ndim == 4 else out[0]


def set_threads(count: int) -> None:
    """Use `count` threads in the compiled core (at most the machine's)."""
    from . import _core

    _core.set_threads(count)


def warm_up() -> None:
    """Load the compiled core that applying a kernel to an 8-bit image uses (from numba's
    cache, or compiling it) before it is timed or forked into workers."""
    from . import _core

    planes = conv2d(np.zeros((1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32),
                    padding=1, pad_mode="reflect")
    pixels = np.empty((4, 4, 1), np.uint8)
    _core.quantize(planes, False, 0.0, 1.0, 255.0, True, pixels)
    _core.png_filter_rows(pixels.reshape(4, 4), 1)


def max_pool2d(x, kernel, stride=None, padding=0, dilation=1) -> np.ndarray:
    """PyTorch's ``max_pool2d``: the largest value under each window of each channel
    (padding never wins).  `x` is (C, H, W) or (N, C, H, W); `stride` defaults to `kernel`."""
    from . import _core
    from .plan import int_pair

    x = np.asarray(x)
    dtype = compute_dtype(x)
    x = _as_float_array(x, "x", dtype)
    if x.ndim not in (3, 4):
        raise ParameterError(f"x must have shape (C, H, W) or (N, C, H, W), got {x.shape}")
    kernel = int_pair(kernel, "kernel")
    stride = kernel if stride is None else stride
    plan = make_plan(x.shape, (x.shape[-3], 1, *kernel), stride, padding, dilation,
                     x.shape[-3], "zeros", window="window")
    out = np.empty(plan.output_shape, dtype)
    _core.max_pool(x.reshape(plan.input_shape), plan.row_sources(), plan.col_sources(),
                   *kernel, *plan.stride, *plan.dilation, out)
    return out if x.ndim == 4 else out[0]
