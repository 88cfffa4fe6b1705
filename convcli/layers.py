"""Operations of a network, one class per kind: output shapes, parameter counts,
multiply-accumulates, the receptive-field window of each axis, and the forward pass.

Counts compose upward: a network's parameters are the sum of its layers', and a layer's
are its weights plus its bias, computed from its shapes — never by a separate formula.
Multiply-accumulates are counted as torchinfo counts mult-adds: a convolution's weights
once per output position, a dense layer's weights once; pooling, activations and merges
count none.  `convcli.plan` does the convolution arithmetic; `run` computes an operation
on (C, H, W) or (N, C, H, W) arrays with `convcli.conv` (loaded only when run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .plan import ConvPlan, check_window_padding, int_pair, make_plan, shape_text, source_index

Shape = tuple  # (C, H, W), or (features,) after flatten


def _product(values) -> int:
    total = 1
    for v in values:
        total *= int(v)
    return total


@dataclass(frozen=True)
class Params:
    """A layer's parameter count, split into weights and bias."""

    weights: int = 0
    bias: int = 0

    @property
    def total(self) -> int:
        return self.weights + self.bias


@dataclass(frozen=True)
class Window:
    """How one spatial axis of a layer reads its input: output i sees inputs
    i·stride − padding … + (kernel − 1)·dilation."""

    kernel: int = 1
    stride: int = 1
    padding: int = 0                 # before (top or left)
    dilation: int = 1

    @property
    def span(self) -> int:
        return self.dilation * (self.kernel - 1) + 1


IDENTITY = (Window(), Window())


class Op:
    """What every operation offers.  One-input operations (`arity` 1) take one shape;
    merges (`arity` None) take the tuple of their inputs' shapes."""

    kind = "op"
    arity: int | None = 1
    spatial = True                   # False for flatten and dense: no receptive field per pixel

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape) -> Params:
        return Params()

    def macs(self, shape: Shape) -> int:
        return 0

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        return IDENTITY

    def run(self, inputs: list, weights: dict):
        """The output of this operation on `inputs` (arrays), with `weights` (a dict of
        arrays, from `convcli.net.Node.weights`)."""
        raise NotImplementedError(f"{self.kind} is not computed by forward")

    @staticmethod
    def _spatial_input(shape: Shape) -> None:
        if len(shape) != 3:
            raise ParameterError(f"needs a C×H×W input, got {shape_text(shape)} (after flatten)")


def auto_padding(shape: Shape, kernel, stride, dilation, upper: bool) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of TensorFlow's 'SAME' (ONNX auto_pad SAME_UPPER, the odd
    pixel after) or SAME_LOWER (the odd pixel before): ⌈size/stride⌉ outputs per axis."""
    amounts = []
    for size, k, s, d in zip(shape[1:], kernel, int_pair(stride, "stride"),
                             int_pair(dilation, "dilation")):
        total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
        small = total // 2
        amounts += [small, total - small] if upper else [total - small, small]
    return tuple(amounts)


@dataclass(frozen=True)
class _Sliding(Op):
    """An operation that slides a window: convolution or pooling.  `padding` is anything
    `convcli.conv2d` takes, or same_upper / same_lower (see `auto_padding`)."""

    kernel: tuple[int, int] = (1, 1)
    stride: int | tuple = 1
    padding: int | str | tuple = 0
    dilation: int | tuple = 1

    def plan(self, shape: Shape) -> ConvPlan:
        raise NotImplementedError

    def _padding(self, shape: Shape, stride):
        if self.padding in ("same_upper", "same_lower"):
            return auto_padding(shape, self.kernel, stride, self.dilation,
                                self.padding == "same_upper")
        return self.padding

    def output_shape(self, shape: Shape) -> Shape:
        return self.plan(shape).output_shape[1:]

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        plan = self.plan(shape)
        return tuple(Window(k, s, p, d) for k, s, p, d in zip(
            plan.weight_shape[2:], plan.stride, plan.padding[::2], plan.dilation))


@dataclass(frozen=True)
class ConvOp(_Sliding):
    """A 2-D convolution: `out` filters of `kernel` size over `in/groups` channels."""

    out: int = 1
    groups: int = 1
    bias: bool = True
    pad_mode: str = "zeros"

    kind = "conv"

    def plan(self, shape: Shape) -> ConvPlan:
        self._spatial_input(shape)
        channels = shape[0]
        if channels % self.groups or self.out % self.groups:
            raise ParameterError(f"groups={self.groups} must divide the {channels} input channels "
                                 f"and the {self.out} outputs")
        weight_shape = (self.out, channels // self.groups, *self.kernel)
        return make_plan(shape, weight_shape, self.stride, self._padding(shape, self.stride),
                         self.dilation, self.groups, self.pad_mode)

    def params(self, shape: Shape) -> Params:
        return Params(_product(self.plan(shape).weight_shape), self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        plan = self.plan(shape)
        return _product(plan.output_shape[1:]) * _product(plan.weight_shape[1:])

    def run(self, inputs, weights):
        from .conv import conv2d

        x = inputs[0]
        plan = self.plan(x.shape[-3:])
        return conv2d(x, weights["weight"], weights["bias"], plan.stride, plan.padding,
                      plan.dilation, self.groups, self.pad_mode)


@dataclass(frozen=True)
class PoolOp(_Sliding):
    """Max or average pooling over each channel; the stride defaults to the window.
    Average pooling divides by the whole window (`count_include_pad`, PyTorch's default)
    or by the pixels of it inside the image (ONNX's default)."""

    stride: int | tuple | None = None
    kind_name: str = "maxpool"
    count_include_pad: bool = True

    @property
    def kind(self) -> str:
        return self.kind_name

    def plan(self, shape: Shape) -> ConvPlan:
        self._spatial_input(shape)
        stride = self.kernel if self.stride is None else int_pair(self.stride, "s")
        padding = self._padding(shape, stride)
        plan = make_plan(shape, (shape[0], 1, *self.kernel), stride, padding, self.dilation,
                         shape[0], "zeros", window="window")
        check_window_padding(plan.weight_shape[2:], plan.padding, padding)
        return plan

    def run(self, inputs, weights):
        from .conv import conv2d, max_pool2d

        x = inputs[0]
        plan = self.plan(x.shape[-3:])
        if self.kind == "maxpool":
            return max_pool2d(x, self.kernel, plan.stride, plan.padding, plan.dilation)
        channels = x.shape[-3]
        ones = np.ones((channels, 1, *self.kernel), x.dtype)
        sums = conv2d(x, ones, None, plan.stride, plan.padding, plan.dilation, channels)
        if self.count_include_pad:
            return sums / x.dtype.type(_product(self.kernel))
        counts = conv2d(np.ones((1, *x.shape[-2:]), x.dtype), ones[:1], None, plan.stride,
                        plan.padding, plan.dilation)
        return sums / counts


@dataclass(frozen=True)
class GlobalAvgPoolOp(Op):
    """The mean of each channel: C×H×W → C×1×1, one window as large as the input."""

    kind = "global_avgpool"

    def output_shape(self, shape: Shape) -> Shape:
        self._spatial_input(shape)
        return (shape[0], 1, 1)

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        return Window(shape[1]), Window(shape[2])

    def run(self, inputs, weights):
        return inputs[0].mean(axis=(-2, -1), keepdims=True)


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


#: Element-wise activations: name → (function of x and the settings, default settings).
#: softmax, the one that is not element-wise, normalises over the channels.
ACTIVATIONS = {
    "relu": (lambda x: np.maximum(x, 0), {}),
    "relu6": (lambda x: np.clip(x, 0, 6), {}),
    "clip": (lambda x, min, max: np.clip(x, min, max), {"min": -math.inf, "max": math.inf}),
    "leaky_relu": (lambda x, alpha: np.where(x >= 0, x, alpha * x), {"alpha": 0.01}),
    "elu": (lambda x, alpha: np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))),
            {"alpha": 1.0}),
    "selu": (lambda x, alpha, gamma: gamma * np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0))),
             {"alpha": 1.67326319217681884765625, "gamma": 1.05070102214813232421875}),
    "sigmoid": (lambda x: 1 / (1 + np.exp(-x)), {}),
    "hard_sigmoid": (lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1),
                     {"alpha": 0.2, "beta": 0.5}),
    "hard_swish": (lambda x: x * np.clip(x / 6 + 0.5, 0, 1), {}),
    "silu": (lambda x: x / (1 + np.exp(-x)), {}),
    "tanh": (np.tanh, {}),
    "softplus": (lambda x: np.logaddexp(x, 0), {}),
    "softsign": (lambda x: x / (1 + np.abs(x)), {}),
    "softmax": (lambda x: _softmax(x, -3 if x.ndim >= 3 else -1), {}),
}


@dataclass(frozen=True)
class ActivationOp(Op):
    """An activation from `ACTIVATIONS`, with its settings as (name, value) pairs."""

    function: str = "relu"
    settings: tuple = ()

    @property
    def kind(self) -> str:
        return self.function

    def run(self, inputs, weights):
        function, defaults = ACTIVATIONS[self.function]
        x = inputs[0]
        values = {**defaults, **dict(self.settings)}
        return function(x, **values).astype(x.dtype, copy=False)


@dataclass(frozen=True)
class BatchNormOp(Op):
    """Batch normalisation: a scale and a shift per channel (the identity unless the
    weights say otherwise)."""

    kind = "batchnorm"

    def params(self, shape: Shape) -> Params:
        return Params(shape[0], shape[0])          # per channel (or feature after flatten)

    def run(self, inputs, weights):
        x = inputs[0]
        if not weights:
            return x
        scale, shift = (np.asarray(weights[k], x.dtype) for k in ("scale", "shift"))
        if x.ndim >= 3:
            scale, shift = scale[:, None, None], shift[:, None, None]
        return x * scale + shift


@dataclass(frozen=True)
class PadOp(Op):
    """Padding of (top, bottom, left, right) pixels by a `convcli.plan` pad mode (zeros
    with `value` for a constant other than 0)."""

    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    pad_mode: str = "zeros"
    value: float = 0.0

    kind = "pad"

    def output_shape(self, shape: Shape) -> Shape:
        self._spatial_input(shape)
        top, bottom, left, right = self.padding
        return (shape[0], shape[1] + top + bottom, shape[2] + left + right)

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        return Window(padding=self.padding[0]), Window(padding=self.padding[2])

    def run(self, inputs, weights):
        x = inputs[0]
        top, bottom, left, right = self.padding
        rows = source_index(x.shape[-2], top, bottom, self.pad_mode)
        cols = source_index(x.shape[-1], left, right, self.pad_mode)
        out = x[..., rows.clip(0), :][..., cols.clip(0)]
        if self.pad_mode == "zeros":
            out[..., rows < 0, :] = self.value
            out[..., cols < 0] = self.value
        return out


@dataclass(frozen=True)
class AddOp(Op):
    """The element-wise sum of two or more inputs of one shape."""

    kind = "add"
    arity = None

    def output_shape(self, shapes) -> Shape:
        for shape in shapes[1:]:
            if shape != shapes[0]:
                raise ParameterError(f"inputs {shape_text(shapes[0])} and {shape_text(shape)} "
                                     "differ; add needs one shape")
        return shapes[0]

    def run(self, inputs, weights):
        return sum(inputs[1:], inputs[0])


@dataclass(frozen=True)
class ConcatOp(Op):
    """Inputs stacked along the channels (features after flatten); H×W must match."""

    kind = "concat"
    arity = None

    def output_shape(self, shapes) -> Shape:
        first = shapes[0]
        for shape in shapes[1:]:
            if len(shape) != len(first) or shape[1:] != first[1:]:
                raise ParameterError(f"inputs {shape_text(first)} and {shape_text(shape)} differ "
                                     "in H×W; concat stacks channels of one size")
        return (sum(shape[0] for shape in shapes), *first[1:])

    def run(self, inputs, weights):
        return np.concatenate(inputs, axis=-3 if inputs[0].ndim >= 3 else -1)


@dataclass(frozen=True)
class FlattenOp(Op):
    """All values in one vector; `features`, where given, is the length it must have."""

    features: int | None = None

    kind = "flatten"
    spatial = False

    def output_shape(self, shape: Shape) -> Shape:
        if self.features is not None and self.features != _product(shape):
            raise ParameterError(f"reshapes {shape_text(shape)} to {self.features} values; "
                                 "only a flatten is supported")
        return (_product(shape),)


@dataclass(frozen=True)
class DenseOp(Op):
    """A fully connected layer from every input value to `out` outputs; `features`, where
    given (by the weights of a model file), is how many inputs it takes."""

    out: int = 1
    bias: bool = True
    features: int | None = None

    kind = "dense"
    spatial = False

    def output_shape(self, shape: Shape) -> Shape:
        if self.features is not None and self.features != _product(shape):
            raise ParameterError(f"takes {self.features} inputs (its weights), got "
                                 f"{shape_text(shape)}")
        return (self.out,)

    def params(self, shape: Shape) -> Params:
        return Params(_product(shape) * self.out, self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        return _product(shape) * self.out
