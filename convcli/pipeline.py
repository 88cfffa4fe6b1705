"""Apply kernels to images: one kernel, a pipeline of them, or a whole file.

A 2-D kernel (or a bank of them) is applied to each channel on its own (depthwise); a
4-D (Cout, Cin/groups, kh, kw) kernel mixes channels as a CNN layer does.  All of it is
one `conv2d` call per kernel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conv import conv2d
from .errors import ParameterError
from .choices import ALPHA_POLICIES, RANGE_POLICIES
from .images import (NO_ALPHA, Picture, RangeReport, image_format, map_range, output_dtype,
                     read_image, to_gray, value_scale, write_image)
from .kernels import Kernel
from .plan import ConvPlan, int_pair, make_plan, padding_amounts
from .render import tile_maps


@dataclass(frozen=True)
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
class KernelLayer:
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

    def __call__(self, planes: np.ndarray) -> np.ndarray:
        o = self.options
        return conv2d(planes, self.weight.astype(np.float32), self.bias.astype(np.float32),
                      o.stride, self.padding, o.dilation, self.groups, o.pad_mode, o.mode,
                      o.algo)

    def algorithm(self, input_shape) -> str:
        """The algorithm conv2d runs for this layer on this input."""
        from .conv import resolve_algorithm

        weight = self.weight[:, :, ::-1, ::-1] if self.options.mode == "conv" else self.weight
        return resolve_algorithm(self.options.algo, self.plan(input_shape), weight)


def kernel_layer(kernel: Kernel, channels: int, options: ConvOptions,
                 cout: int | None = None) -> KernelLayer:
    """The layer that applies `kernel` to `channels` channels.

    A 2-D kernel (or bank) is applied to each channel on its own; with `cout`, a single
    2-D kernel instead becomes a CNN layer of `cout` filters, each that kernel on every
    input channel (of its group), summed.  A 4-D kernel is used as it is.
    """
    weights = kernel.weights
    if options.normalize:
        sums = weights.reshape(weights.shape[0], -1).sum(axis=1)
        if np.any(np.abs(sums) < 1e-12):
            raise ParameterError(f"--normalize: kernel {kernel.name} sums to zero, so it cannot "
                                 "be scaled to sum 1")
        weights = weights / sums.reshape((-1,) + (1,) * (weights.ndim - 1))
    bias = kernel.bias
    groups = options.groups
    if kernel.is_layer:
        if cout is not None:
            raise ParameterError(f"--cout builds a layer from a 2-D kernel; kernel {kernel.name} "
                                 f"is already a layer of shape {weights.shape}")
        expected = weights.shape[1] * groups
        if expected != channels:
            raise ParameterError(
                f"kernel {kernel.name} has shape {weights.shape} (Cout, Cin/groups, kh, kw) "
                f"with groups={groups}, so it needs {expected} input channel(s), but the image "
                f"has {channels}; convert with --gray or --rgb, or change --groups")
    elif cout is not None:
        if kernel.n_filters != 1:
            raise ParameterError(f"--cout takes a single 2-D kernel; {kernel.name} is a bank of "
                                 f"{kernel.n_filters}")
        if channels % groups or cout % groups:
            raise ParameterError(f"--groups {groups} must divide the {channels} input channels "
                                 f"and --cout {cout}")
        weights = np.broadcast_to(weights, (cout, channels // groups, *kernel.size)).copy()
        bias = np.zeros(cout)
    else:
        if groups != 1:
            raise ParameterError("--groups applies to 4-D kernels (Cout, Cin/groups, kh, kw) and "
                                 "--cout layers; a 2-D kernel is already applied to each "
                                 "channel on its own")
        weights = np.tile(weights, (channels, 1, 1))[:, None]
        bias = np.tile(bias, channels)
        groups = channels
    if options.bias is not None:
        extra = np.asarray(options.bias, np.float64)
        if extra.size not in (1, weights.shape[0]):
            raise ParameterError(f"--bias has {extra.size} values; give 1, or one per output "
                                 f"channel ({weights.shape[0]})")
        bias = bias + extra
    return KernelLayer(weights, bias, groups, padding_for(kernel, options), options)


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


@dataclass
class Stage:
    """One kernel of a pipeline as it ran: its layer and the shapes around it."""

    kernel: Kernel
    layer: KernelLayer
    input_shape: tuple[int, int, int]
    output_shape: tuple[int, int, int]


def apply_kernel(planes: np.ndarray, kernel: Kernel, options: ConvOptions,
                 stages: list[Stage] | None = None) -> np.ndarray:
    """Apply one kernel to (C, H, W) planes; returns (C', Ho, Wo) float32.  The stage is
    appended to `stages` if given."""
    layer = kernel_layer(kernel, planes.shape[0], options)
    out = combine_bank(layer(planes), kernel, planes.shape[0])
    if stages is not None:
        stages.append(Stage(kernel, layer, planes.shape, out.shape))
    return out


def carry_plane(plane: np.ndarray, kernel: Kernel, options: ConvOptions) -> np.ndarray:
    """Move a (H, W) plane (alpha) through a kernel's geometry without filtering it: each
    output pixel takes the input pixel under the kernel's centre."""
    kh, kw = kernel.size
    delta = np.zeros((1, 1, kh, kw), np.float32)
    delta[0, 0, (kh - 1) // 2, (kw - 1) // 2] = 1
    return conv2d(plane[None].astype(np.float32), delta, None, options.stride,
                  padding_for(kernel, options), options.dilation, 1, options.pad_mode, "corr")[0]


def input_planes(picture: Picture, gray: bool = False, rgb: bool = False) -> np.ndarray:
    """A picture's colour as (C, H, W) float32 planes, converted to luminance (`gray`) or
    repeated into RGB (`rgb`) first."""
    color = picture.color
    if gray:
        color = to_gray(color)
    elif rgb:
        if color.shape[2] != 1:
            raise ParameterError(f"--rgb repeats a gray image into 3 channels; this image has "
                                 f"{color.shape[2]}")
        color = np.repeat(color, 3, axis=2)
    return np.ascontiguousarray(color.transpose(2, 0, 1), np.float32)


@dataclass
class FilterResult:
    """Float results of a pipeline, before they become pixels."""

    planes: np.ndarray              # (C, Ho, Wo) float32
    alpha: np.ndarray | None        # (Ho, Wo) float32, in source units
    range_policy: str               # the policy `auto` resolved to
    stages: list[Stage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_pipeline(picture: Picture, kernels: list[Kernel], options: ConvOptions,
                 alpha: str = "keep", gray: bool = False, rgb: bool = False,
                 range_policy: str = "auto") -> FilterResult:
    """Apply `kernels` one after another to a picture's colour (and alpha, by policy)."""
    if alpha not in ALPHA_POLICIES:
        raise ParameterError(f"alpha policy {alpha!r} is not one of {', '.join(ALPHA_POLICIES)}")
    if range_policy not in RANGE_POLICIES:
        raise ParameterError(f"range policy {range_policy!r} is not one of "
                             f"{', '.join(RANGE_POLICIES)}")
    if not kernels:
        raise ParameterError("no kernel given; use -k NAME (see `convcli kernels`)")
    planes = input_planes(picture, gray, rgb)
    notes: list[str] = []
    stages: list[Stage] = []
    alpha_plane = None if picture.alpha is None or alpha == "drop" else picture.alpha.astype(np.float32)
    for kernel in kernels:
        if alpha == "filter" and alpha_plane is not None:
            stacked = np.concatenate([planes, alpha_plane[None]])
            out = apply_kernel(stacked, kernel, options, stages)
            if out.shape[0] != stacked.shape[0]:
                raise ParameterError(f"--alpha filter needs one output per channel; kernel "
                                     f"{kernel.name} makes {out.shape[0]} from {stacked.shape[0]}")
            planes, alpha_plane = out[:-1], out[-1]
        else:
            if alpha_plane is not None:
                alpha_plane = carry_plane(alpha_plane, kernel, options)
            planes = apply_kernel(planes, kernel, options, stages)
    if alpha_plane is not None and planes.shape[0] not in (1, 3):
        notes.append(f"alpha dropped: the result has {planes.shape[0]} channels, not gray or RGB")
        alpha_plane = None
    policy = kernels[-1].range_hint() if range_policy == "auto" else range_policy
    return FilterResult(planes, alpha_plane, policy, stages, notes)


def to_picture(result: FilterResult, source: Picture, fmt: str, range_policy: str = "auto",
               grid: bool = False):
    """Map a pipeline's float results to pixels for format `fmt`.

    With `grid`, every output channel becomes one tile of a single gray image (each mapped
    on its own, so ``minmax`` stretches each map).  Returns (Picture, RangeReport, notes).
    """
    policy = result.range_policy
    if fmt == "NPY":
        if range_policy not in ("auto", "float") or grid:
            raise ParameterError(f"--range {range_policy}{' --grid' * grid}: .npy output keeps "
                                 "the raw values; use another format to map them to pixels")
        policy = "float"
    dtype = output_dtype(source.color.dtype, fmt, policy)
    notes = []
    if dtype.kind == "u" and source.color.dtype.kind == "u" and dtype.itemsize < source.color.dtype.itemsize:
        notes.append(f"{fmt} holds 8 bits per sample; the {source.color.dtype.itemsize * 8}-bit "
                     "result is scaled to 8 bits (write PNG or TIFF to keep 16 bits)")
    if grid:
        maps, reports = zip(*(map_range(plane[None], policy, source.max_value, dtype)
                              for plane in result.planes))
        tiled = tile_maps(np.stack([m[:, :, 0] for m in maps]),
                          fill=value_scale(dtype) / 2 if dtype.kind == "f" else int(value_scale(dtype)) // 2)
        if result.alpha is not None:
            notes.append("alpha dropped: --grid writes one gray tile per channel")
        report = RangeReport(policy, min(r.minimum for r in reports),
                             max(r.maximum for r in reports),
                             float(np.mean([r.clipped for r in reports])))
        return Picture(tiled[:, :, None], None, source.icc_profile), report, notes
    pixels, report = map_range(result.planes, policy, source.max_value, dtype)
    alpha = None
    if result.alpha is not None and fmt in NO_ALPHA:
        notes.append(f"{fmt} has no alpha channel; alpha dropped")
    elif result.alpha is not None:
        alpha, _ = map_range(result.alpha[None], "clip" if policy != "float" else "float",
                             source.max_value, dtype)
        alpha = alpha[:, :, 0]
    return Picture(pixels, alpha, source.icc_profile), report, notes


@dataclass(frozen=True)
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

    def output_name(self, source: Path) -> str:
        """NAME_KERNEL.EXT: the input's stem, the kernels' names, the output extension."""
        suffix = f".{self.fmt.lower().lstrip('.')}" if self.fmt else Path(source).suffix
        return f"{Path(source).stem}_{'+'.join(k.name for k in self.kernels)}{suffix}"

    def run(self, source_path, output_path, details: bool = False) -> dict:
        """Read an image, apply the kernels, write the result atomically; return a report
        (with each kernel's weights and conv-vs-dense comparison if `details`)."""
        source_path, output_path = Path(source_path), Path(output_path)
        fmt = image_format(output_path)
        times = {}
        start = time.perf_counter()
        picture = read_image(source_path)
        times["read"] = time.perf_counter() - start
        start = time.perf_counter()
        result = run_pipeline(picture, list(self.kernels), self.options, self.alpha, self.gray,
                              self.rgb, self.range_policy)
        times["convolve"] = time.perf_counter() - start
        start = time.perf_counter()
        out, report, notes = to_picture(result, picture, fmt, self.range_policy, self.grid)
        notes = result.notes + notes + write_image(output_path, out, self.quality)
        times["write"] = time.perf_counter() - start
        return {
            "input": str(source_path), "output": str(output_path),
            "input_shape": list(picture.color.shape), "input_dtype": str(picture.color.dtype),
            "input_alpha": picture.alpha is not None,
            "output_shape": list(out.color.shape), "output_dtype": str(out.color.dtype),
            "output_alpha": out.alpha is not None,
            "kernels": [k.name for k in self.kernels], "options": self.options.as_dict(),
            "stages": [stage_report(stage) for stage in result.stages] if details else [],
            "range": report.as_dict(), "times": times, "notes": notes,
        }


def stage_report(stage: Stage) -> dict:
    """What one kernel of a pipeline did, with its conv-vs-dense comparison."""
    from .report import conv_vs_dense

    layer = stage.layer
    plan = layer.plan(stage.input_shape)
    return {
        "kernel": stage.kernel.name, "weights": stage.kernel.weights.tolist(),
        "bias": stage.kernel.bias.tolist(), "combine": stage.kernel.combine,
        "layer_weight_shape": list(layer.weight.shape), "groups": layer.groups,
        "padding": list(plan.padding), "pad_mode": plan.pad_mode, "mode": plan.mode,
        "input_shape": list(stage.input_shape), "output_shape": list(stage.output_shape),
        "algorithm": layer.algorithm(stage.input_shape),
        "conv_vs_dense": conv_vs_dense(plan, layer.weight, bias=bool(np.any(layer.bias))),
    }

