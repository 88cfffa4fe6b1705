"""Layers as shape arithmetic: output shapes, parameter counts, multiply-accumulates and
the receptive-field parameters of each axis.

Counts compose upward: a network's parameters are the sum of its layers', and a layer's
are its weights plus its bias, computed from its shapes — never by a separate formula.
Pure Python; `convcli.plan` does the convolution arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParameterError
from .plan import ConvPlan, int_pair, make_plan, shape_text

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


class Layer:
    """What every layer offers; spatial layers map C×H×W to C×H×W."""

    kind = "layer"
    spatial = True                   # False from flatten on: no receptive field per pixel

    def output_shape(self, shape: Shape) -> Shape:
        return shape

    def params(self, shape: Shape) -> Params:
        return Params()

    def macs(self, shape: Shape) -> int:
        return 0

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        return IDENTITY

    def _spatial_input(self, shape: Shape) -> None:
        if len(shape) != 3:
            raise ParameterError(f"needs a C×H×W input, got {shape_text(shape)} (after flatten)")


@dataclass(frozen=True)
class _Sliding(Layer):
    """A layer that slides a window: convolution or pooling."""

    kernel: tuple[int, int] = (1, 1)
    stride: int | tuple = 1
    padding: int | str | tuple = 0
    dilation: int | tuple = 1

    def plan(self, shape: Shape) -> ConvPlan:
        raise NotImplementedError

    def output_shape(self, shape: Shape) -> Shape:
        return self.plan(shape).output_shape[1:]

    def windows(self, shape: Shape) -> tuple[Window, Window]:
        plan = self.plan(shape)
        return tuple(Window(k, s, p, d) for k, s, p, d in zip(
            plan.weight_shape[2:], plan.stride, plan.padding[::2], plan.dilation))


@dataclass(frozen=True)
class Conv(_Sliding):
    """A 2-D convolution layer: `out` filters of `kernel` size over `in/groups` channels."""

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
        return make_plan(shape, weight_shape, self.stride, self.padding, self.dilation,
                         self.groups, self.pad_mode)

    def params(self, shape: Shape) -> Params:
        return Params(_product(self.plan(shape).weight_shape), self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        plan = self.plan(shape)
        return _product(plan.output_shape[1:]) * _product(plan.weight_shape[1:])


@dataclass(frozen=True)
class Pool(_Sliding):
    """Max or average pooling over each channel; the stride defaults to the window."""

    stride: int | tuple | None = None
    kind_name: str = "maxpool"

    @property
    def kind(self) -> str:
        return self.kind_name

    def plan(self, shape: Shape) -> ConvPlan:
        self._spatial_input(shape)
        stride = self.kernel if self.stride is None else int_pair(self.stride, "s")
        return make_plan(shape, (shape[0], 1, *self.kernel), stride, self.padding,
                         self.dilation, shape[0], "zeros", window="window")

    def macs(self, shape: Shape) -> int:
        return _product(self.output_shape(shape)) * _product(self.kernel)


@dataclass(frozen=True)
class ReLU(Layer):
    kind = "relu"


@dataclass(frozen=True)
class BatchNorm(Layer):
    """Batch normalisation: a scale and a shift per channel (identity when applied here)."""

    kind = "batchnorm"

    def params(self, shape: Shape) -> Params:
        return Params(shape[0], shape[0])          # per channel (or feature after flatten)


@dataclass(frozen=True)
class Flatten(Layer):
    kind = "flatten"
    spatial = False

    def output_shape(self, shape: Shape) -> Shape:
        return (_product(shape),)


@dataclass(frozen=True)
class Softmax(Layer):
    """The classifier's head: class probabilities from the scores before it (no parameters;
    training folds it into the cross-entropy loss)."""

    kind = "softmax"
    spatial = False


@dataclass(frozen=True)
class Dense(Layer):
    """A fully connected layer from every input value to `out` outputs."""

    out: int = 1
    bias: bool = True

    kind = "dense"
    spatial = False

    def output_shape(self, shape: Shape) -> Shape:
        return (self.out,)

    def params(self, shape: Shape) -> Params:
        return Params(_product(shape) * self.out, self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        return _product(shape) * self.out
