"""Apply kernels to images: one kernel, a pipeline of them, or a whole file.

A 2-D kernel (or a bank of them) is applied to each channel on its own (depthwise); a
4-D (Cout, Cin/groups, kh, kw) kernel mixes channels as a CNN layer does; each is one
convolution (`Stage`).  A `Pipeline` plans its stages first, then computes band after band
of output rows, each band from just the rows of the stage before that it needs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .conv import correlation_weight, resolve_algorithm, run
from .errors import ParameterError
from .choices import ALPHA_POLICIES, RANGE_POLICIES
from .backend import jit_pays, png_saving
from .formats import format_of
from .images import read_image, write_image
from .kernels import Kernel
from .limits import MAX_WEIGHTS, check_convolution, check_size, product
from .pixels import (Picture, RangeReport, map_range, mapped_alpha, output_dtype, output_type,
                     to_gray, to_picture, value_scale)
from .plan import ConvPlan, int_pair, jit_saving, make_plan, padding_amounts, shape_text


@dataclass(frozen=True, kw_only=True)
class ConvOptions:
    """The `conv2d` options a command applies with every kernel of a pipeline."""

    stride: int | tuple = 1
    padding: int | str | tuple = "auto"     # "same" at stride 1, its amounts when strided
    dilation: int | tuple = 1
    groups: int = 1                  # for 4-D kernels; 2-D kernels are always depthwise
    pad_mode: str = "reflect"
    mode: str = "corr"
    bias: tuple[float, ...] | None = None
    normalize: bool = False
    algo: str = "auto"

    def as_dict(self) -> dict:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups, "pad_mode": self.pad_mode, "mode": self.mode,
                "bias": self.bias, "normalize": self.normalize, "algo": self.algo}


@dataclass(frozen=True)
class Convolution:
    """The one `conv2d` call that applies a kernel to an image of some channel count."""

    weight: np.ndarray               # (Cout, Cin/groups, kh, kw)
    bias: np.ndarray                 # (Cout,)
    groups: int
    padding: int | str | tuple
    options: ConvOptions

    def plan(self, input_shape) -> ConvPlan:
        o = self.options
        return make_plan(input_shape, self.weight.shape, o.stride, self.padding, o.dilation,
                         self.groups, o.pad_mode, o.mode)


def kernel_convolution(kernel: Kernel, channels: int, options: ConvOptions,
                 cout: int | None = None) -> Convolution:
    """The convolution that applies `kernel` to `channels` channels.

    A 2-D kernel (or bank) is applied to each channel on its own; with `cout`, a single
    2-D kernel instead becomes a CNN layer of `cout` filters, each that kernel on every
    input channel (of its group), summed.  A 4-D kernel is used as it is.
    """
    weights = kernel.weights
    if options.normalize:
        sums = weights.reshape(weights.shape[0], -1).sum(axis=1)
        if np.any(np.abs(sums) < 1e-12):
            raise ParameterError(f"cannot scale kernel {kernel.name} to sum 1: it sums "
                                 "to zero", parameter="normalize")
        weights = weights / sums.reshape((-1,) + (1,) * (weights.ndim - 1))
    bias = kernel.bias
    groups = options.groups
    if kernel.is_layer:
        if cout is not None:
            raise ParameterError(f"builds a layer from a 2-D kernel; kernel {kernel.name} "
                                 f"is already a layer of shape {weights.shape}", parameter="cout")
        expected = weights.shape[1] * groups
        if expected != channels:
            raise ParameterError(
                f"kernel {kernel.name} has shape {weights.shape} (Cout, Cin/groups, kh, kw) "
                f"with groups={groups}, so it needs {expected} input channel(s), but the image "
                f"has {channels}; convert with gray=True or rgb=True, or change groups=")
    elif cout is not None:
        if kernel.n_filters != 1:
            raise ParameterError(f"takes a single 2-D kernel; {kernel.name} is a bank of "
                                 f"{kernel.n_filters}", parameter="cout")
        if channels % groups or cout % groups:
            raise ParameterError(f"{groups} must divide the {channels} input channels "
                                 f"and cout={cout}", parameter="groups")
        shape = (cout, channels // groups, *kernel.size)
        check_size(f"{cout} filters of {shape_text(shape[1:])}", product(shape),
                   MAX_WEIGHTS, "weights", parameter="cout")
        weights = np.broadcast_to(weights, shape).copy()
        bias = np.zeros(cout)
    else:
        if groups != 1:
            raise ParameterError("applies to 4-D kernels (Cout, Cin/groups, kh, kw) and "
                                 "cout= layers; a 2-D kernel is already applied to each "
                                 "channel on its own", parameter="groups")
        check_size(f"kernel {kernel.name} on each of {channels} channels",
                   channels * weights.size, MAX_WEIGHTS, "weights")
        weights = np.tile(weights, (channels, 1, 1))[:, None]
        bias = np.tile(bias, channels)
        groups = channels
    if options.bias is not None:
        extra = np.asarray(options.bias, np.float64)
        if extra.size not in (1, weights.shape[0]):
            raise ParameterError(f"has {extra.size} values; give 1, or one per output "
                                 f"channel ({weights.shape[0]})", parameter="bias")
        bias = bias + extra
    return Convolution(weights, bias, groups, padding_for(kernel, options), options)


def combine_bank(out: np.ndarray, kernel: Kernel, channels: int) -> np.ndarray:
    """Reduce a bank's F maps per channel with the kernel's combine rule, if it has one."""
    if kernel.is_layer or kernel.n_filters == 1 or kernel.combine is None:
        return out
    maps = out.reshape(channels, kernel.n_filters, *out.shape[1:])
    if kernel.combine == "magnitude":
        return np.sqrt(np.einsum("cfhw,cfhw->chw", maps, maps))
    if kernel.combine == "max":
        return maps.max(axis=1)
    return maps.sum(axis=1)


def padding_for(kernel: Kernel, options: ConvOptions):
    """The padding to use: ``auto`` is "same" at stride 1, and the same amounts (centred,
    as a PyTorch user writes padding=k//2) when strided."""
    if options.padding != "auto":
        return options.padding
    return padding_amounts("same", kernel.size, int_pair(options.dilation, "dilation"), (1, 1))


def input_planes(picture: Picture, gray: bool = False, rgb: bool = False,
                 rows: slice = slice(None)) -> np.ndarray:
    """A picture's color (`rows` of it) as (C, H, W) float32 planes, converted to
    luminance (`gray`) or repeated into RGB (`rgb`) first."""
    color = picture.color[rows]
    if gray:
        color = to_gray(color)
    elif rgb:
        if color.shape[2] != 1:
            raise ParameterError(f"repeats a gray image into 3 channels; this image has "
                                 f"{color.shape[2]}", parameter="rgb")
        color = np.repeat(color, 3, axis=2)
    return np.ascontiguousarray(color.transpose(2, 0, 1), np.float32)


@dataclass
class Stage:
    """One kernel of a pipeline, planned for the image it will see."""

    kernel: Kernel
    conv: Convolution
    plan: ConvPlan
    algorithm: str
    output_shape: tuple[int, int, int]        # after the bank's combination
    weight: np.ndarray                        # float32, flipped for mode="conv"
    bias: np.ndarray                          # float32

    @classmethod
    def make(cls, kernel: Kernel, conv: Convolution, input_shape, jit: bool = True,
             rounding: tuple[float, float] | None = None) -> "Stage":
        """The stage, computed by the planner's choice among the compiled algorithms
        (`jit`) or those that need no compiled code; `rounding`, (step, magnitude), as in
        `convcli.plan.choose_algorithm`, when its result will be rounded to integers."""
        plan = conv.plan(input_shape)
        check_convolution(plan)
        weight = np.ascontiguousarray(correlation_weight(conv.weight, plan.mode), np.float32)
        algorithm = resolve_algorithm(conv.options.algo, plan, weight, jit,
                                      None if rounding is None else lambda: rounding)
        _, cout, ho, wo = plan.output_shape
        combined = input_shape[0] if (not kernel.is_layer and kernel.n_filters > 1
                                      and kernel.combine) else cout
        return cls(kernel, conv, plan, algorithm, (combined, ho, wo), weight,
                   conv.bias.astype(np.float32))

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return self.plan.input_shape[1:]

    def rows(self, first: int, stop: int, source) -> np.ndarray:
        """Output rows [first, stop), computing from `source(start, stop)`, which gives the
        input rows the band needs as (C, rows, W) float32."""
        band = self.plan.band(first, stop)
        x = source(*band.input_rows())
        out = np.empty(band.output_shape[1:], np.float32)
        run(self.algorithm, np.ascontiguousarray(x)[None], self.weight, self.bias, band,
            out[None])
        return combine_bank(out, self.kernel, self.input_shape[0])


def carry_stage(kernel: Kernel, options: ConvOptions, input_shape, jit: bool = True) -> Stage:
    """The stage that moves a plane (alpha) through a kernel's geometry without filtering
    it: each output pixel takes the input pixel under the kernel's centre (exactly: by an
    algorithm that multiplies, never by FFT)."""
    kh, kw = kernel.size
    delta = np.zeros((1, kh, kw))
    delta[0, (kh - 1) // 2, (kw - 1) // 2] = 1
    centre = Kernel(f"{kernel.name}-centre", delta, np.zeros(1))
    carry = replace(options, mode="corr", algo="direct" if jit else "numpy", bias=None,
                    normalize=False, groups=1)
    conv = Convolution(delta[None], np.zeros(1), 1, padding_for(kernel, options), carry)
    return Stage.make(centre, conv, input_shape)


class Pipeline:
    """Kernels applied one after another to a picture, planned before anything is computed
    and run band by band of output rows, so no whole-image float copy is ever made.

    The pipeline runs in the compiled core (`jit`) if it is loaded, or if the time it saves
    on the stages, plus `other_saving` seconds on the job's other steps, exceeds loading it;
    else in numpy alone.
    """

    def __init__(self, picture: Picture, kernels, options: ConvOptions, alpha: str = "keep",
                 gray: bool = False, rgb: bool = False, other_saving: float = 0.0,
                 output_step: float | None = None):
        if alpha not in ALPHA_POLICIES:
            raise ParameterError(f"alpha policy {alpha!r} is not one of "
                                 f"{', '.join(ALPHA_POLICIES)}")
        if not kernels:
            raise ParameterError("no kernel given; use -k NAME (see `convcli kernels`)")
        self.picture, self.gray, self.rgb = picture, gray, rgb
        self.notes: list[str] = []
        self.seconds: dict[int, float] = {}
        self.alpha_mode = alpha if picture.alpha is not None and alpha != "drop" else None
        channels = 1 if gray else 3 if rgb else picture.color.shape[2]
        shape = (channels + (self.alpha_mode == "filter"), *picture.color.shape[:2])
        self.stages: list[Stage] = []
        self.carry: list[Stage] = []
        carry_shape = (1, *picture.color.shape[:2])
        magnitude = picture.max_value         # a bound on |input| of the next stage
        for kernel in kernels:
            conv = kernel_convolution(kernel, shape[0], options)
            rounding = None if output_step is None or kernel is not kernels[-1] else \
                (output_step, magnitude)
            stage = Stage.make(kernel, conv, shape, rounding=rounding)
            magnitude *= float(np.abs(conv.weight).sum(axis=(1, 2, 3)).max())
            if self.alpha_mode == "filter" and stage.output_shape[0] != shape[0]:
                raise ParameterError(f"filter needs one output per channel; kernel "
                                     f"{kernel.name} makes {stage.output_shape[0]} from "
                                     f"{shape[0]}", parameter="alpha")
            self.stages.append(stage)
            shape = stage.output_shape
        self.jit = jit_pays(other_saving + sum(jit_saving(s.plan, s.weight) for s in self.stages))
        if not self.jit:
            last = self.stages[-1]
            self.stages = [replace(s, algorithm=resolve_algorithm(
                s.conv.options.algo, s.plan, s.weight, False,
                None if rounding is None or s is not last else lambda: rounding))
                for s in self.stages]
        if rounding is not None:
            self._warn_inexact(*rounding)
        if self.alpha_mode == "keep":
            for kernel in kernels:
                carried = carry_stage(kernel, options, carry_shape, self.jit)
                self.carry.append(carried)
                carry_shape = carried.output_shape
        color = shape[0] - (self.alpha_mode == "filter")
        if self.alpha_mode and color not in (1, 3):
            self.notes.append(f"alpha dropped: the result has {color} channels, not gray or RGB")
            self.alpha_mode = None
        self.output_shape = (color, *shape[1:])

    def _warn_inexact(self, step: float, magnitude: float) -> None:
        """One warning when a forced inexact algorithm (fft, separable) may round the last
        stage's integer output to the wrong level (see `convcli.plan.rounding_error`)."""
        import warnings

        from .plan import ROUNDING_MARGIN, rounding_error

        last = self.stages[-1]
        error = rounding_error(last.algorithm, last.plan, last.weight, magnitude)
        if last.conv.options.algo == last.algorithm and error >= ROUNDING_MARGIN * step:
            warnings.warn(f"algo {last.algorithm!r} may be off by up to {error / step:.2g} "
                          f"output levels with kernel {last.kernel.name} on this image (float32"
                          " rounding); algo 'direct' sums every product as defined",
                          RuntimeWarning, stacklevel=2)

    def _source(self, start: int, stop: int) -> np.ndarray:
        planes = input_planes(self.picture, self.gray, self.rgb, slice(start, stop))
        if self.alpha_mode == "filter":             # premultiplied, as compositing needs
            alpha = self._alpha_source(start, stop)
            planes = np.concatenate([planes * (alpha / self.picture.max_value), alpha])
        return planes

    def _alpha_source(self, start: int, stop: int) -> np.ndarray:
        return self.picture.alpha[start:stop].astype(np.float32)[None]

    def _chain(self, stages: list[Stage], first: int, stop: int, source) -> np.ndarray:
        """Rows of the last of `stages`, from the rows of those before it; each stage's own
        seconds (its input's time not counted) add up in `seconds`."""
        if not stages:
            return source(first, stop)
        *earlier, last = stages
        ready = []

        def below(a: int, b: int) -> np.ndarray:
            planes = self._chain(earlier, a, b, source)
            ready.append(time.perf_counter())
            return planes

        planes = last.rows(first, stop, below)
        self.seconds[id(last)] = self.seconds.get(id(last), 0.0) + time.perf_counter() - ready[0]
        return planes

    def stage_seconds(self) -> list[float]:
        """Seconds each of `stages` has computed for so far (its inputs not counted)."""
        return [self.seconds.get(id(stage), 0.0) for stage in self.stages]

    def rows(self, first: int, stop: int):
        """(color (C, rows, Wo), alpha (rows, Wo) or None) of output rows [first, stop)."""
        planes = self._chain(self.stages, first, stop, self._source)
        if self.alpha_mode == "filter":
            color, alpha = planes[:-1], planes[-1]
            coverage = alpha / self.picture.max_value
            covered = coverage > 1e-6
            color = np.divide(color, coverage, out=np.zeros_like(color), where=covered)
            return color, alpha
        if self.alpha_mode == "keep":
            return planes, self._chain(self.carry, first, stop, self._alpha_source)[0]
        return planes, None

    def bands(self, band_rows: int | None = None):
        """Yield (first row, color, alpha) band after band, top to bottom."""
        _, ho, wo = self.output_shape
        band_rows = band_rows or max(16, BAND_VALUES // max(1, wo * self.output_shape[0]))
        for first in range(0, ho, band_rows):
            yield (first, *self.rows(first, min(ho, first + band_rows)))

    def result(self, range_policy: str = "auto") -> "FilterResult":
        """All output rows at once, as float32."""
        color = np.empty(self.output_shape, np.float32)
        alpha = np.empty(self.output_shape[1:], np.float32) if self.alpha_mode else None
        for first, planes, alpha_rows in self.bands():
            color[:, first:first + planes.shape[1]] = planes
            if alpha is not None:
                alpha[first:first + planes.shape[1]] = alpha_rows
        return FilterResult(color, alpha, self.range_policy(range_policy), self.stages,
                            self.notes)

    def range_policy(self, requested: str) -> str:
        if requested not in RANGE_POLICIES:
            raise ParameterError(f"range policy {requested!r} is not one of "
                                 f"{', '.join(RANGE_POLICIES)}")
        return self.stages[-1].kernel.range_hint() if requested == "auto" else requested


#: Output values computed per band (bounds the memory of a run, whatever the image size).
BAND_VALUES = 2**21


@dataclass
class FilterResult:
    """Float results of a pipeline, before they become pixels."""

    planes: np.ndarray              # (C, Ho, Wo) float32
    alpha: np.ndarray | None        # (Ho, Wo) float32, in source units
    range_policy: str               # the policy `auto` resolved to
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def stream_png(pipeline: Pipeline, source: Picture, path: Path, policy: str, times: dict):
    """Compute, map and encode band after band straight into a PNG file (written
    atomically): neither the float result nor the whole output image is ever held.
    Returns (RangeReport, notes, output shape, whether alpha was written)."""
    from .codecs import PngWriter
    from .files import atomic_write

    _, dtype, notes = output_type(source.color.dtype, "PNG", policy, policy, False)
    channels, ho, wo = pipeline.output_shape
    alpha = pipeline.alpha_mode is not None
    if channels + alpha > 4:
        raise ParameterError(f"{channels + alpha} output channels do not fit in PNG; write .npy "
                             "or .tiff (one page per channel), or use grid=True")
    low, high, clipped = np.inf, -np.inf, 0.0
    times.update(convolve=0.0, write=0.0)

    def write(out) -> None:
        nonlocal low, high, clipped
        writer = PngWriter(out, ho, wo, channels + alpha, dtype, source.icc_profile)
        bands = pipeline.bands()
        while True:
            start = time.perf_counter()
            band = next(bands, None)
            times["convolve"] += time.perf_counter() - start
            if band is None:
                break
            start = time.perf_counter()
            _, planes, alpha_rows = band
            pixels, report = map_range(planes, policy, source.max_value, dtype)
            low, high = min(low, report.minimum), max(high, report.maximum)
            clipped += report.clipped * planes.size
            if alpha:
                alpha_pixels = mapped_alpha(alpha_rows, "PNG", policy, source.max_value, dtype,
                                            notes)
                pixels = np.dstack([pixels, alpha_pixels])
            writer.add(pixels)
            times["write"] += time.perf_counter() - start
        writer.close()

    atomic_write(path, write)
    report = RangeReport(policy, low, high, clipped / (channels * ho * wo))
    return report, notes, (ho, wo, channels), alpha


@dataclass(frozen=True, kw_only=True)
class ApplyJob:
    """Everything `convcli apply` does to one file, apart from which file."""

    kernels: tuple[Kernel, ...]
    options: ConvOptions = ConvOptions()
    range_policy: str = "auto"
    alpha: str = "keep"
    gray: bool = False
    rgb: bool = False
    quality: int | None = None
    grid: bool = False
    fmt: str | None = None            # output extension; None keeps the input's
    page: int | None = None           # of a multi-page input; None: the first, with a note

    def output_name(self, source: Path) -> str:
        """NAME_KERNEL.EXT: the input's stem, the kernels' names, the output extension."""
        suffix = f".{self.fmt.lower().lstrip('.')}" if self.fmt else Path(source).suffix
        return f"{Path(source).stem}_{'+'.join(k.name for k in self.kernels)}{suffix}"

    def run(self, source_path, output_path, details: bool = False) -> dict:
        """Read an image, apply the kernels, write the result atomically; return a report
        (with each kernel's weights and conv-vs-dense comparison if `details`).

        Streaming output (PNG) is computed and encoded band by band; other outputs are
        assembled."""
        source_path, output_path = Path(source_path), Path(output_path)
        streaming, fmt = format_of(output_path).streaming, format_of(output_path).name
        times = {}
        start = time.perf_counter()
        picture = read_image(source_path, self.page)
        times["read"] = time.perf_counter() - start
        pages = []
        if self.page is None and picture.pages > 1:
            pages.append(f"{source_path} has {picture.pages} pages; page 1 was used")
        encoder_saving = png_saving(picture.color.size * output_dtype(
            picture.color.dtype, fmt, "clip").itemsize) if streaming else 0.0
        integer_out = output_dtype(picture.color.dtype, fmt, "clip")
        step = picture.max_value / value_scale(integer_out) if integer_out.kind in "ui" else None
        pipeline = Pipeline(picture, self.kernels, self.options, self.alpha, self.gray, self.rgb,
                            encoder_saving, step)
        # a grid shows feature maps: auto stretches each one (as `forward` does), unless the
        # kernel's catalogue entry names its range
        requested = self.range_policy
        if self.grid and requested == "auto" and not self.kernels[-1].range:
            requested = "minmax"
        policy = pipeline.range_policy(requested)
        if streaming and not self.grid and policy not in ("minmax", "float"):
            report, notes, shape, has_alpha = stream_png(pipeline, picture, output_path, policy,
                                                         times)
            dtype = output_dtype(picture.color.dtype, fmt, policy)
        else:
            start = time.perf_counter()
            result = pipeline.result(requested)
            times["convolve"] = time.perf_counter() - start
            start = time.perf_counter()
            out, report, notes = to_picture(result.planes, result.alpha, result.range_policy,
                                            picture.color.dtype, fmt, requested,
                                            self.grid, picture.icc_profile)
            notes += write_image(output_path, out, self.quality)
            times["write"] = time.perf_counter() - start
            shape, dtype, has_alpha = out.color.shape, out.color.dtype, out.alpha is not None
        return {
            "input": str(source_path), "output": str(output_path),
            "input_shape": list(picture.color.shape), "input_dtype": str(picture.color.dtype),
            "input_alpha": picture.alpha is not None,
            "output_shape": list(shape), "output_dtype": str(dtype), "output_alpha": has_alpha,
            "kernels": [k.name for k in self.kernels], "options": self.options.as_dict(),
            "stages": [dict(stage_report(stage), seconds=seconds) for stage, seconds
                       in zip(pipeline.stages, pipeline.stage_seconds())] if details else [],
            "range": report.as_dict(), "times": times, "notes": pages + pipeline.notes + notes,
        }


def stage_report(stage: Stage) -> dict:
    """What one kernel of a pipeline did, with its conv-vs-dense comparison."""
    from .matrix import conv_vs_dense

    conv, plan = stage.conv, stage.plan
    return {
        "kernel": stage.kernel.name, "weights": stage.kernel.weights.tolist(),
        "bias": stage.kernel.bias.tolist(), "combine": stage.kernel.combine,
        "layer_weight_shape": list(conv.weight.shape), "groups": conv.groups,
        "padding": list(plan.padding), "pad_mode": plan.pad_mode, "mode": plan.mode,
        "input_shape": list(stage.input_shape), "output_shape": list(stage.output_shape),
        "algorithm": stage.algorithm,
        "conv_vs_dense": conv_vs_dense(plan.input_shape[1:], conv.weight, plan.stride,
                                       plan.padding, plan.dilation, plan.groups,
                                       plan.pad_mode, plan.mode, bool(np.any(conv.bias))),
    }
