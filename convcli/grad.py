"""Backward passes: the gradients of `conv2d`, pooling, ReLU, a dense layer and softmax
cross-entropy, with the arguments and results of PyTorch's ``torch.nn.grad``.

Both convolution gradients run on the forward engine (`convcli.conv.conv2d`, its planner
and algorithms):

- the input gradient is the transposed convolution (`convcli.conv_transpose2d`) of the
  output gradient onto the padded input, whose border is then folded back onto the pixels
  it copies through the same row and column source maps the forward pass pads with (so
  reflect, replicate, circular and symmetric padding get their gradients too);
- the weight gradient is a correlation of the padded input with the output gradient: the
  batch axis becomes the channel axis, the forward stride becomes the dilation and the
  forward dilation the stride.

With ``algo="gemm"`` both are products with the forward pass's patch matrix instead
(`gemm_backward`, Caffe's way): the weight gradient is the output gradient times the
patches, the input gradient the weights times the output gradient, added back onto the
pixels the patches copied (col2im).  Training uses it.
"""

from __future__ import annotations

import numpy as np

from .conv import (compute_dtype, conv2d, gemm_band_ranges, im2col, max_pool_planned,
                   padded_block, pool_plan)
from .errors import ParameterError
from .plan import ConvPlan, make_plan
from .transpose import conv_transpose2d


def _batched(array: np.ndarray, shape: tuple) -> np.ndarray:
    return array if array.ndim == 4 else array.reshape(1, *shape)


def _check_grad_output(grad_output, plan: ConvPlan, dtype) -> np.ndarray:
    grad_output = np.ascontiguousarray(grad_output, dtype)
    shape = plan.output_shape
    if grad_output.shape not in (shape, shape[1:]) or (grad_output.ndim == 3 and shape[0] != 1):
        raise ParameterError(f"grad_output must have the convolution's output shape {shape}, "
                             f"got {grad_output.shape}")
    return grad_output.reshape(shape)


def conv2d_input(input_shape, weight, grad_output, stride=1, padding=0, dilation=1, groups=1,
                 pad_mode="zeros", algo="auto") -> np.ndarray:
    """The gradient of `conv2d` with respect to its input (PyTorch's
    ``torch.nn.grad.conv2d_input``, plus `pad_mode`).

    Parameters
    ----------
    input_shape : tuple
        (N, Cin, H, W) or (Cin, H, W), the shape of the forward pass's input.
    weight : array_like
        (Cout, Cin/groups, kh, kw).
    grad_output : array_like
        The gradient of the loss with respect to conv2d's output.
    stride, padding, dilation, groups, pad_mode, algo
        As in `convcli.conv2d` (`algo` for the transposed convolution).

    Returns
    -------
    ndarray
        Of `input_shape`: float64 if weight or grad_output is, else float32.

    Examples
    --------
    With replicate padding the border pixels also receive the gradient of the padding
    that copies them:

    >>> import numpy as np
    >>> from convcli import conv2d_input
    >>> g = np.array([[[[1.0, 2.0, 3.0]]]])
    >>> conv2d_input((1, 1, 1, 3), np.ones((1, 1, 1, 3)), g, padding=(0, 1),
    ...              pad_mode="replicate")[0, 0]
    array([[4., 6., 8.]])
    """
    dtype = compute_dtype(weight, grad_output)
    weight = np.ascontiguousarray(weight, dtype)
    plan = make_plan(input_shape, weight.shape, stride, padding, dilation, groups, pad_mode)
    grad_output = _check_grad_output(grad_output, plan, dtype)
    if algo == "gemm":
        _, _, result = gemm_backward(plan, weight, grad_output, weight_grad=False)
        return result.reshape(tuple(int(v) for v in input_shape))
    # the output gradient scattered onto the padded grid (as far as the forward pass reads)
    padded = conv_transpose2d(grad_output, weight, stride=plan.stride, groups=plan.groups,
                              dilation=plan.dilation, algo=algo)
    result = fold_padding(padded, plan)
    return result.reshape(tuple(int(v) for v in input_shape))


def fold_padding(padded: np.ndarray, plan: ConvPlan) -> np.ndarray:
    """Sum a gradient on the padded input grid (its first rows and columns) onto the input
    pixels each padded position copies (`ConvPlan.row_sources`/`col_sources`; zero padding
    copies nothing)."""
    _, _, h, w = plan.input_shape
    top, _, left, _ = plan.padding
    rows = _fold_axis(padded, plan.row_sources()[:padded.shape[2]], top, h, 2)
    return _fold_axis(rows, plan.col_sources()[:padded.shape[3]], left, w, 3)


def _fold_axis(values: np.ndarray, sources: np.ndarray, before: int, length: int,
               axis: int) -> np.ndarray:
    """Along `axis`: the interior (positions before … before + length − 1, which copy
    themselves) as one slice, then each border position added to the pixel it copies."""
    shape = list(values.shape)
    shape[axis] = length
    out = np.zeros(shape, values.dtype)
    run = max(0, min(length, sources.size - before))
    target, source = [slice(None)] * 4, [slice(None)] * 4
    target[axis], source[axis] = slice(0, run), slice(before, before + run)
    out[tuple(target)] = values[tuple(source)]
    for position, index in enumerate(sources):
        if index < 0 or before <= position < before + run:
            continue
        target[axis], source[axis] = int(index), position
        out[tuple(target)] += values[tuple(source)]
    return out


def conv2d_weight(input, weight_shape, grad_output, stride=1, padding=0, dilation=1, groups=1,
                  pad_mode="zeros", algo="auto") -> np.ndarray:
    """The gradient of `conv2d` with respect to its weight (PyTorch's
    ``torch.nn.grad.conv2d_weight``, plus `pad_mode`), summed over the batch.

    Parameters
    ----------
    input : array_like
        (N, Cin, H, W) or (Cin, H, W), the forward pass's input.
    weight_shape : tuple
        (Cout, Cin/groups, kh, kw).
    grad_output : array_like
        The gradient of the loss with respect to conv2d's output.
    stride, padding, dilation, groups, pad_mode, algo
        As in `convcli.conv2d` (`algo` for the correlation).

    Returns
    -------
    ndarray
        Of `weight_shape`; the bias gradient is ``grad_output.sum(axis=(0, 2, 3))``.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import conv2d_weight
    >>> x = np.arange(4.0).reshape(1, 1, 1, 4)
    >>> conv2d_weight(x, (1, 1, 1, 2), np.ones((1, 1, 1, 3)))[0, 0]
    array([[3., 6.]])
    """
    dtype = compute_dtype(input, grad_output)
    x = np.ascontiguousarray(input, dtype)
    plan = make_plan(x.shape, weight_shape, stride, padding, dilation, groups, pad_mode)
    grad_output = _check_grad_output(grad_output, plan, dtype)
    x = _batched(x, plan.input_shape[1:])
    if algo == "gemm":
        return gemm_backward(plan, weight_shape, grad_output, x=x, input_grad=False)[0]
    n, cout, ho, wo = plan.output_shape
    _, cin_g, kh, kw = plan.weight_shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    # only the padded rows and columns the forward pass reads
    rows = plan.row_sources()[:sh * (ho - 1) + dh * (kh - 1) + 1]
    cols = plan.col_sources()[:sw * (wo - 1) + dw * (kw - 1) + 1]
    padded = padded_block(x, rows, cols)
    cout_g = cout // groups
    result = np.empty(tuple(weight_shape), dtype)
    for g in range(groups):
        inputs = np.ascontiguousarray(padded[:, g * cin_g:(g + 1) * cin_g].transpose(1, 0, 2, 3))
        kernels = np.ascontiguousarray(
            grad_output[:, g * cout_g:(g + 1) * cout_g].transpose(1, 0, 2, 3))
        # (cin_g, cout_g, kh, kw): batch as channels, stride and dilation swapped
        found = conv2d(inputs, kernels, None, (dh, dw), 0, (sh, sw), algo=algo)
        result[g * cout_g:(g + 1) * cout_g] = found.transpose(1, 0, 2, 3)
    return result


def gemm_backward(plan: ConvPlan, weight, grad_output: np.ndarray, x=None, patches=None,
                  weight_grad: bool = True, input_grad: bool = True,
                  channel_major: bool = False):
    """Both gradients of a planned convolution from patch matrices, band by band as the
    forward gemm path runs (`convcli.conv.gemm_band_ranges`, or `image_chunks` for
    channel-major data).

    Parameters
    ----------
    plan : ConvPlan
        The forward convolution.
    weight : ndarray or tuple
        The weights (Cout, Cin/groups, kh, kw), or only their shape if `input_grad` is
        False.
    grad_output : ndarray
        (N, Cout, Ho, Wo), C-contiguous.
    x : ndarray, optional
        The forward input (N, Cin, H, W), for the weight gradient's patches.
    patches : ndarray, optional
        The forward pass's patch matrix of the whole batch in one band (what
        `convcli.conv.gemm_channel_major` returns), used instead of building it again.
    weight_grad, input_grad : bool
        Which gradients to compute.
    channel_major : bool
        Whether x and grad_output are (Cin, N, H, W) and (Cout, N, Ho, Wo) and the input
        gradient is to be (Cin, N, H, W), the layout training keeps
        (`convcli.conv.gemm_channel_major`).

    Returns
    -------
    tuple
        (weight gradient, bias gradient, input gradient), None for those not asked for.
    """
    from ._core import conv as core
    from .conv import image_chunks

    n, cout, ho, wo = plan.output_shape
    _, cin_g, kh, kw = plan.weight_shape
    groups, cout_g, k = plan.groups, cout // plan.groups, cin_g * kh * kw
    dtype = grad_output.dtype
    gw = np.zeros((groups, cout_g, k), dtype) if weight_grad else None
    gb = np.zeros(cout, dtype) if weight_grad else None
    shape = plan.input_shape
    gx = np.zeros((shape[1], shape[0], *shape[2:]) if channel_major else shape, dtype) \
        if input_grad else None
    if input_grad:
        matrices = np.ascontiguousarray(
            np.asarray(weight, dtype).reshape(groups, cout_g, k).transpose(0, 2, 1))
    if channel_major:
        bands = [(n0, n1, 0, ho) for n0, n1 in image_chunks(plan)]
        flat = grad_output.reshape(groups, cout_g, n * ho * wo)
    else:
        bands = list(gemm_band_ranges(plan))
    for n0, n1, first, last in bands:
        # (groups, Cout/groups, images · rows · Wo): the patch matrix's column order
        g = flat[:, :, n0 * ho * wo:n1 * ho * wo] if channel_major else np.ascontiguousarray(
            grad_output[n0:n1, :, first:last].transpose(1, 0, 2, 3)).reshape(groups, cout_g, -1)
        if weight_grad:
            band = patches if patches is not None and len(bands) == 1 else im2col(
                x, plan, slice(first, last), channel_major=channel_major, images=(n0, n1))
            gw += np.matmul(g, band.reshape(groups, k, -1).transpose(0, 2, 1))
            gb += g.sum(axis=2).reshape(cout)
        if input_grad:
            columns = np.matmul(matrices, g).reshape(groups * k, -1)
            core.col2im(columns, plan.row_sources(), plan.col_sources(), kh, kw, *plan.stride,
                        *plan.dilation, first, wo, channel_major, n0, n1 - n0, gx)
    return (None if gw is None else gw.reshape(plan.weight_shape)), gb, gx


# ----------------------------------------------------------------------------------------
# Pooling


def max_pool2d_backward(x, grad_output, kernel, stride=None, padding=0, dilation=1
                        ) -> np.ndarray:
    """The gradient of `convcli.conv.max_pool2d` with respect to `x`: each window's
    gradient goes to its largest value (the first of equal ones, as PyTorch does)."""
    dtype = compute_dtype(x, grad_output)
    x = np.ascontiguousarray(x, dtype)
    plan = pool_plan(x.shape, kernel, stride, padding, dilation)
    grad_output = _check_grad_output(grad_output, plan, dtype)
    _, where = max_pool_planned(x.reshape(plan.input_shape), plan, indices=True)
    return max_unpool(grad_output, where, plan).reshape(x.shape)


def max_unpool(grad_output: np.ndarray, where: np.ndarray, plan: ConvPlan, pooled=None
               ) -> np.ndarray:
    """Each pooled gradient added to the input pixel its window's maximum came from
    (`where`, from `convcli.conv.max_pool_planned`); given the `pooled` values, only those
    above 0 pass their gradient (the backward pass of a ReLU before the pooling too)."""
    from ._core import conv as core

    out = np.zeros(plan.input_shape, grad_output.dtype)
    pooled = np.empty((0, 0, 0, 0), grad_output.dtype) if pooled is None else pooled
    if out.size and grad_output.size:
        core.max_unpool(np.ascontiguousarray(grad_output), where, pooled, out)
    return out


def mean_weight(channels: int, kernel, dtype=np.float32) -> np.ndarray:
    """Average pooling as a depthwise convolution's weights (padding counted in the mean,
    PyTorch's default)."""
    return np.full((channels, 1, *kernel), 1 / (kernel[0] * kernel[1]), dtype)


def avg_pool2d_backward(input_shape, grad_output, kernel, stride=None, padding=0, dilation=1
                        ) -> np.ndarray:
    """The gradient of average pooling: the input gradient of the depthwise convolution
    with `mean_weight`."""
    from .plan import int_pair

    kernel = int_pair(kernel, "kernel")
    channels = input_shape[-3]
    return conv2d_input(input_shape, mean_weight(channels, kernel, compute_dtype(grad_output)),
                        grad_output, kernel if stride is None else stride, padding, dilation,
                        channels)


# ----------------------------------------------------------------------------------------
# Element-wise and dense layers, and the loss


def relu_backward(x, grad_output) -> np.ndarray:
    """The gradient of ``max(x, 0)``: `grad_output` where x > 0, else 0."""
    from ._core import conv as core

    dtype = compute_dtype(x, grad_output)
    x, grad_output = (np.ascontiguousarray(a, dtype) for a in (x, grad_output))
    if x.shape != grad_output.shape:
        raise ParameterError(f"grad_output must have the shape of x {x.shape}, got "
                             f"{grad_output.shape}")
    return core.relu_backward(x, grad_output, np.empty(x.shape, dtype))


def dense_backward(x, weight, grad_output) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of ``x @ weight.T + bias`` (PyTorch's ``linear``; weight is
    (out, in), x is (N, in)): returns (grad_x, grad_weight, grad_bias)."""
    grad_output = np.asarray(grad_output)
    return grad_output @ weight, grad_output.T @ x, grad_output.sum(axis=0)


def softmax(logits) -> np.ndarray:
    """Softmax over the last axis, shifted by the maximum so that it cannot overflow."""
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def softmax_cross_entropy(logits, labels) -> tuple[float, np.ndarray]:
    """The mean cross-entropy of softmax(logits) against integer `labels` (PyTorch's
    ``cross_entropy``) and its gradient with respect to the logits."""
    logits = np.asarray(logits)
    labels = np.asarray(labels)
    n = logits.shape[0]
    if labels.shape != (n,) or labels.dtype.kind not in "iu":
        raise ParameterError(f"labels must be {n} whole numbers, got shape {labels.shape} "
                             f"of {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ParameterError(f"labels must lie in 0 … {logits.shape[1] - 1}")
    shifted = logits - np.max(logits, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -float(log_probs[np.arange(n), labels].mean())
    grad = np.exp(log_probs)
    grad[np.arange(n), labels] -= 1
    return loss, (grad / n).astype(logits.dtype)
