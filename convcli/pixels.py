"""Results to pixels: the output's bit depth, range mapping, alpha, gray, display RGB.

Pixels travel as a `Picture`: colour (H, W, C) and alpha (H, W), each uint8, uint16 or
float32, exactly as stored.  Convolution works in the stored units (0–255, 0–65535, or
the float values), and `map_range` turns its float results back into pixels.  Everything
here takes plain arrays and format names (`convcli.formats`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .backend import pixel_helper
from .choices import RANGE_POLICIES
from .errors import ParameterError
from .formats import BY_NAME

#: ITU-R BT.601 luma weights, as Pillow's convert("L") uses.
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass
class Picture:
    """An image as stored: colour (H, W, C), alpha (H, W) or None, and metadata."""

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    pages: int = 1                  # how many pages the file it came from holds

    @property
    def max_value(self) -> float:
        """The value of white: 255, 65535, or 1.0 for float images."""
        return value_scale(self.color.dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.color.shape


def value_scale(dtype) -> float:
    """The value of white for a pixel dtype (1.0 for floats)."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


@dataclass
class RangeReport:
    """What `map_range` did: the policy, the values before it, and the share clipped."""

    policy: str
    minimum: float
    maximum: float
    clipped: float          # fraction of values outside the output range after the policy

    def as_dict(self) -> dict:
        return {"policy": self.policy, "min": self.minimum, "max": self.maximum,
                "clipped_fraction": self.clipped}


def output_dtype(source_dtype, fmt: str, policy: str):
    """The dtype an output gets: the source's bit depth where the format holds it, else
    8 bits; float32 for raw formats, for ``float`` and for float sources where it fits."""
    source_dtype = np.dtype(source_dtype)
    depths = BY_NAME[fmt].depths
    if BY_NAME[fmt].raw or policy == "float":
        if "float32" not in depths:
            raw = " or ".join(f.extensions[-1] for f in BY_NAME.values() if "float32" in f.depths)
            raise ParameterError(f"float keeps raw values, which only {raw} output can hold, "
                                 f"not {fmt}", parameter="range_policy")
        return np.dtype(np.float32)
    wanted = "float32" if source_dtype.kind == "f" else source_dtype.name
    return np.dtype(wanted if wanted in depths else np.uint8)


def output_type(source_dtype, fmt: str, policy: str, range_policy: str, grid: bool):
    """(policy, dtype, notes) of an output: raw formats keep raw values; a format keeps the
    source's bit depth where it can (saying so where it cannot)."""
    source_dtype = np.dtype(source_dtype)
    if BY_NAME[fmt].raw:
        if range_policy not in ("auto", "float") or grid:
            raise ParameterError(f"range_policy={range_policy}{' grid=True' * grid}: .npy output "
                                 "keeps the raw values; use another format to map them to "
                                 "pixels")
        policy = "float"
    dtype = output_dtype(source_dtype, fmt, policy)
    notes = []
    bits = source_dtype.itemsize * 8
    if dtype.kind == "u" and source_dtype.kind == "u" and dtype.itemsize * 8 < bits:
        notes.append(f"{fmt} holds 8 bits per sample; the {bits}-bit result is scaled to 8 bits "
                     "(write PNG or TIFF to keep 16 bits)")
    return policy, dtype, notes


def map_range(planes: np.ndarray, policy: str, source_max: float, dtype) -> tuple[np.ndarray, RangeReport]:
    """Map float results (C, H, W), in the source's units (white = `source_max`), to
    `dtype` pixels (H, W, C).

    clip: clip to [0, white]; abs: |v| then clip; offset: add mid-grey then clip;
    minmax: stretch min..max to 0..white; float: keep the values (float32 output only).
    Integer outputs are rounded to nearest, not truncated.
    """
    from ._core_numpy import quantize

    dtype = np.dtype(dtype)
    planes = np.ascontiguousarray(planes, np.float32)
    if policy not in RANGE_POLICIES or policy == "auto":
        raise ParameterError(f"range policy {policy!r} is not one of {', '.join(RANGE_POLICIES[1:])}")
    if policy in ("float", "minmax"):
        low, high = (float(v) for v in pixel_helper("finite_range")(planes))
    if policy == "float":
        return planes.transpose(1, 2, 0).copy(), RangeReport(policy, low, high, 0.0)
    white = value_scale(dtype)
    scale = white / source_max
    offset = 0.0
    if policy == "offset":
        offset = (source_max / 2 if dtype.kind == "f" else (source_max + 1) / 2) * scale
    elif policy == "minmax":
        span = high - low
        scale = white / span if span > 0 else 0.0
        offset = -low * scale if span > 0 else 0.0
    out = np.empty(planes.shape[1:] + planes.shape[:1], dtype)
    outside, low, high = quantize(planes, policy == "abs", offset, scale, white,
                                  dtype.kind != "f", out)
    return out, RangeReport(policy, float(low), float(high),
                            outside / planes.size if planes.size else 0.0)


def mapped_alpha(alpha, fmt: str, policy: str, source_max: float, dtype, notes: list[str]):
    """Alpha rows (H, W) as pixels (clipped, never stretched), or None (noting a format
    without alpha in `notes`)."""
    if alpha is None:
        return None
    if not BY_NAME[fmt].alpha:
        if f"{fmt} has no alpha channel; alpha dropped" not in notes:
            notes.append(f"{fmt} has no alpha channel; alpha dropped")
        return None
    pixels, _ = map_range(alpha[None], "clip" if policy != "float" else "float", source_max, dtype)
    return pixels[:, :, 0]


def to_picture(planes: np.ndarray, alpha: np.ndarray | None, policy: str, source_dtype,
               fmt: str, range_policy: str = "auto", grid: bool = False,
               icc_profile: bytes | None = None):
    """Map float results — colour (C, H, W) and alpha (H, W) or None, in the units of a
    `source_dtype` image, `policy` what ``auto`` resolved to — to pixels for format `fmt`.

    With `grid`, every output channel becomes one tile of a single gray image (each mapped
    on its own, so ``minmax`` stretches each map).  Returns (Picture, RangeReport, notes).
    """
    from .render import tile_maps

    policy, dtype, notes = output_type(source_dtype, fmt, policy, range_policy, grid)
    source_max = value_scale(source_dtype)
    if grid:
        maps, reports = zip(*(map_range(plane[None], policy, source_max, dtype)
                              for plane in planes))
        tiled = tile_maps(np.stack([m[:, :, 0] for m in maps]),
                          fill=value_scale(dtype) / 2 if dtype.kind == "f" else int(value_scale(dtype)) // 2)
        if alpha is not None:
            notes.append("alpha dropped: a grid holds one gray tile per channel")
        report = RangeReport(policy, min(r.minimum for r in reports),
                             max(r.maximum for r in reports),
                             float(np.mean([r.clipped for r in reports])))
        return Picture(tiled[:, :, None], None, icc_profile), report, notes
    pixels, report = map_range(planes, policy, source_max, dtype)
    alpha = mapped_alpha(alpha, fmt, policy, source_max, dtype, notes)
    return Picture(pixels, alpha, icc_profile), report, notes


def to_gray(color: np.ndarray) -> np.ndarray:
    """Luminance (BT.601) of (H, W, 3) colour as (H, W, 1) float32; gray passes through."""
    if color.shape[2] == 1:
        return color.astype(np.float32)
    if color.shape[2] != 3:
        raise ParameterError(f"needs a gray or RGB image, got {color.shape[2]} channels",
                             parameter="gray")
    return (color.astype(np.float32) @ LUMA.astype(np.float32))[:, :, None]


def display_rgb(color: np.ndarray) -> np.ndarray:
    """An 8-bit RGB view of colour (H, W, C), for drawing on: integers scaled from their
    white, floats stretched from their min..max; gray repeated, channels past 3 dropped."""
    values = color.astype(np.float64)
    if color.dtype.kind == "f":
        low, high = float(values.min()), float(values.max())
        values = (values - low) / (high - low or 1) * 255
    else:
        values = values * (255 / value_scale(color.dtype))
    values = np.rint(values).clip(0, 255).astype(np.uint8)
    return np.repeat(values, 3, axis=2) if values.shape[2] == 1 else values[:, :, :3]
