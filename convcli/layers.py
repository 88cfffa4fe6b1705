"""Layers as shape arithmetic: output shapes, parameter counts and multiply-accumulates.

Counts compose upward: a network's parameters are the sum of its layers', and a layer's
are its weights plus its bias, computed from its shapes — never by a separate formula.
Pure Python; `convcli.plan` does the convolution arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ParameterError
from .plan import ConvPlan, make_plan

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
class Conv:
    """A 2-D convolution layer: `out` filters of `kernel` size over `in/groups` channels."""

    out: int
    kernel: tuple[int, int]
    stride: int | tuple = 1
    padding: int | str | tuple = 0
    dilation: int | tuple = 1
    groups: int = 1
    bias: bool = True
    pad_mode: str = "zeros"

    kind = "conv"

    def plan(self, shape: Shape) -> ConvPlan:
        if len(shape) != 3:
            raise ParameterError(f"conv needs a C×H×W input, got {'×'.join(map(str, shape))}")
        channels = shape[0]
        if channels % self.groups:
            raise ParameterError(f"groups={self.groups} does not divide the {channels} input "
                                 "channels")
        weight_shape = (self.out, channels // self.groups, *self.kernel)
        return make_plan(shape, weight_shape, self.stride, self.padding, self.dilation,
                         self.groups, self.pad_mode)

    def output_shape(self, shape: Shape) -> Shape:
        return self.plan(shape).output_shape[1:]

    def params(self, shape: Shape) -> Params:
        return Params(_product(self.plan(shape).weight_shape), self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        plan = self.plan(shape)
        return _product(plan.output_shape[1:]) * _product(plan.weight_shape[1:])


@dataclass(frozen=True)
class Dense:
    """A fully connected layer from every input value to `out` outputs."""

    out: int
    bias: bool = True

    kind = "dense"

    def output_shape(self, shape: Shape) -> Shape:
        return (self.out,)

    def params(self, shape: Shape) -> Params:
        return Params(_product(shape) * self.out, self.out if self.bias else 0)

    def macs(self, shape: Shape) -> int:
        return _product(shape) * self.out
