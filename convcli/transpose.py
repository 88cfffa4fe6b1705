"""`conv_transpose2d`: PyTorch's ``torch.nn.functional.conv_transpose2d`` on numpy arrays.

A transposed convolution is computed as the guide to convolution arithmetic (Dumoulin &
Visin, section 4) explains it: a direct convolution, on the same engine as `conv2d`, over
the input dilated by the stride (s − 1 zeros between its values), padded by d·(k − 1) − p
on each side (plus output_padding at the bottom and right), with each kernel flipped and
the weight's two channel axes swapped.  Padding larger than d·(k − 1) crops the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .plan import int_pair, output_length, padding_amounts, shape_text


@dataclass(frozen=True)
class TransposedPlan:
    """A checked transposed convolution and the direct convolution equal to it."""

    input_shape: tuple[int, int, int, int]      # N, Cin, H, W
    weight_shape: tuple[int, int, int, int]     # Cin, Cout/groups, kh, kw (PyTorch's)
    stride: tuple[int, int]
    padding: tuple[int, int, int, int]          # top, bottom, left, right
    output_padding: tuple[int, int]
    dilation: tuple[int, int]
    groups: int

    @property
    def dilated_size(self) -> tuple[int, int]:
        """Height and width of the input once s − 1 zeros are put between its values."""
        return tuple((n - 1) * s + 1 for n, s in zip(self.input_shape[2:], self.stride))

    @property
    def direct_padding(self) -> tuple[int, int, int, int]:
        """Padding (top, bottom, left, right) of the equivalent direct convolution over the
        dilated input: d·(k − 1) − p, plus output_padding at the bottom and right; negative
        where p > d·(k − 1) (those rows or columns are cropped)."""
        (dh, dw), (kh, kw) = self.dilation, self.weight_shape[2:]
        top, bottom, left, right = self.padding
        oh, ow = self.output_padding
        return (dh * (kh - 1) - top, dh * (kh - 1) - bottom + oh,
                dw * (kw - 1) - left, dw * (kw - 1) - right + ow)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        """(N, Cout, Ho, Wo): Ho = (H − 1)·s − pt − pb + d·(k − 1) + output_padding + 1."""
        n, _, _, _ = self.input_shape
        _, cout_g, kh, kw = self.weight_shape
        top, bottom, left, right = self.direct_padding
        (h, w), (dh, dw) = self.dilated_size, self.dilation
        return (n, cout_g * self.groups, output_length(h, top + bottom, kh, 1, dh),
                output_length(w, left + right, kw, 1, dw))


def transposed_plan(input_shape, weight_shape, stride=1, padding=0, output_padding=0,
                    groups=1, dilation=1) -> TransposedPlan:
    """Check a transposed convolution's shapes and options (as `conv_transpose2d` takes
    them) and resolve them into a `TransposedPlan`.

    Raises
    ------
    ParameterError
        A ValueError naming the parameter, what was given and what is allowed.
    """
    given = tuple(int(v) for v in input_shape)
    input_shape = (1, *given) if len(given) == 3 else given
    if len(input_shape) != 4 or min(input_shape) < 1:
        raise ParameterError(f"must have shape (Cin, H, W) or (N, Cin, H, W) with no empty "
                             f"axis, got {input_shape}", parameter="input")
    weight_shape = tuple(int(v) for v in weight_shape)
    if len(weight_shape) != 4 or min(weight_shape) < 1:
        raise ParameterError(f"must have shape (Cin, Cout/groups, kh, kw) with no empty axis, "
                             f"got {weight_shape}", parameter="weight")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ParameterError(f"must be a positive int, got {groups!r}", parameter="groups")
    cin = input_shape[1]
    if weight_shape[0] != cin:
        raise ParameterError(f"has {weight_shape[0]} input channels (its first axis, "
                             f"layout (Cin, Cout/groups, kh, kw)) but the input has {cin}",
                             parameter="weight")
    if cin % groups:
        raise ParameterError(f"must divide the input channels ({cin}), got {groups}",
                             parameter="groups")
    if isinstance(padding, str):
        raise ParameterError(f"must be an int, (ph, pw) or (top, bottom, left, right) for a "
                             f"transposed convolution, got {padding!r}", parameter="padding")
    stride = int_pair(stride, "stride")
    dilation = int_pair(dilation, "dilation")
    extra = int_pair(output_padding, "output_padding", minimum=0)
    for axis, op, s, d in zip(("height", "width"), extra, stride, dilation):
        if op >= max(s, d):
            raise ParameterError(
                f"must be smaller than stride or dilation in each direction (as in PyTorch), "
                f"got {op} in {axis} with stride {s} and dilation {d}",
                parameter="output_padding")
    pads = padding_amounts(padding, weight_shape[2:], dilation, stride)
    plan = TransposedPlan(input_shape, weight_shape, stride, pads, extra, dilation,
                          int(groups))
    if min(plan.output_shape[2:]) < 1:
        raise ParameterError(f"{pads} leaves no output: the {shape_text(input_shape[2:])} "
                             f"input with stride {stride} gives "
                             f"{shape_text(plan.output_shape[2:])}", parameter="padding")
    return plan


def equivalent_weight(weight: np.ndarray, groups: int) -> np.ndarray:
    """The (Cout, Cin/groups, kh, kw) weight of the direct convolution equal to a
    transposed one with `weight` (Cin, Cout/groups, kh, kw): channel axes swapped within
    each group, every kernel flipped in both axes."""
    cin, cout_g, kh, kw = weight.shape
    grouped = weight.reshape(groups, cin // groups, cout_g, kh, kw).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(
        grouped.reshape(groups * cout_g, cin // groups, kh, kw)[:, :, ::-1, ::-1])


def stride_dilated(x: np.ndarray, stride: tuple[int, int]) -> np.ndarray:
    """(N, C, H, W) with s − 1 zeros between neighbouring values along each axis."""
    (sh, sw), (n, c, h, w) = stride, x.shape
    if (sh, sw) == (1, 1):
        return x
    out = np.zeros((n, c, (h - 1) * sh + 1, (w - 1) * sw + 1), x.dtype)
    out[:, :, ::sh, ::sw] = x
    return out


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, algo="auto") -> np.ndarray:
    """2-D transposed convolution with the semantics of PyTorch's
    ``torch.nn.functional.conv_transpose2d``: the adjoint (gradient with respect to the
    input) of `convcli.conv2d` with the same stride, padding, dilation and groups.

    Each input value scatters its kernel, scaled by the value, into the output at its
    position times the stride; overlapping contributions add up.

    Parameters
    ----------
    input : array_like
        (Cin, H, W) or (N, Cin, H, W).
    weight : array_like
        (Cin, Cout/groups, kh, kw), PyTorch's layout for transposed convolutions (the
        first two axes are the other way round from conv2d's).
    bias : array_like, optional
        (Cout,).
    stride, dilation : int or (int, int)
    padding : int, (ph, pw) or (top, bottom, left, right)
        Removed from the borders of the full result, d·(k − 1) − p of padding in the
        equivalent direct convolution.
    output_padding : int or (int, int)
        Extra rows at the bottom and columns at the right, to pick one of the input sizes
        a strided conv2d maps to the same output size; smaller than stride or dilation.
    groups : int
        Input and output channels are split into this many groups.
    algo : str
        The algorithm of the underlying direct convolution, as in `convcli.conv2d`.

    Returns
    -------
    ndarray
        (Cout, Ho, Wo) or (N, Cout, Ho, Wo) with
        Ho = (H − 1)·s − (pt + pb) + d·(kh − 1) + output_padding + 1 (likewise Wo);
        float64 if input or weight is float64, else float32.

    Raises
    ------
    ValueError
        For any input or option that is not allowed; the message names it.

    Examples
    --------
    Stride 2 with a 2×2 kernel of ones spreads each input value over its own 2×2 block:

    >>> import numpy as np
    >>> from convcli import conv_transpose2d
    >>> conv_transpose2d(np.array([[[1.0, 2.0], [3.0, 4.0]]]), np.ones((1, 1, 2, 2)), stride=2)
    array([[[1., 1., 2., 2.],
            [1., 1., 2., 2.],
            [3., 3., 4., 4.],
            [3., 3., 4., 4.]]])
    """
    from .conv import _as_float_array, compute_dtype, conv2d

    dtype = compute_dtype(input, weight)
    x = _as_float_array(input, "input", dtype)
    weight = _as_float_array(weight, "weight", dtype)
    if x.ndim not in (3, 4):
        raise ParameterError(f"must have shape (Cin, H, W) or (N, Cin, H, W), got {x.shape}",
                             parameter="input")
    plan = transposed_plan(x.shape, weight.shape, stride, padding, output_padding, groups,
                           dilation)
    pads = plan.direct_padding
    crops = [max(0, -p) for p in pads]
    out = conv2d(stride_dilated(x.reshape(plan.input_shape), plan.stride),
                 equivalent_weight(weight, plan.groups), bias, padding=[max(0, p) for p in pads],
                 dilation=plan.dilation, groups=plan.groups, algo=algo)
    ho, wo = plan.output_shape[2:]
    out = np.ascontiguousarray(out[:, :, crops[0]:crops[0] + ho, crops[2]:crops[2] + wo])
    return out if x.ndim == 4 else out[0]
