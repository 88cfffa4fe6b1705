"""Reading and writing images, bit depths, alpha, and mapping results to pixel values.

Pixels travel as a `Picture`: colour (H, W, C) and alpha (H, W), each uint8, uint16 or
float32, exactly as stored.  Convolution works in the stored units (0–255, 0–65535, or
the float values), and `map_range` turns its float results back into pixels.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .choices import FORMATS, RANGE_POLICIES
from .errors import ImageError, ParameterError

#: Formats that hold only 8 bits per sample.
EIGHT_BIT_ONLY = {"JPEG", "BMP", "WEBP"}
#: Formats without an alpha channel.
NO_ALPHA = {"JPEG"}
#: ITU-R BT.601 luma weights, as Pillow's convert("L") uses.
LUMA = np.array([0.299, 0.587, 0.114])


@dataclass
class Picture:
    """An image as stored: colour (H, W, C), alpha (H, W) or None, and metadata."""

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None

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


def image_format(path: Path) -> str:
    """The format an output path's extension names."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ParameterError(f"output {path}: unknown extension {suffix or '(none)'!r}; "
                             f"expected one of {', '.join(sorted(FORMATS))}")
    return FORMATS[suffix]


# ----------------------------------------------------------------------------------------
# Reading


def read_image(path) -> Picture:
    """Read PNG, JPEG, TIFF, BMP, WebP (anything Pillow reads) or an .npy array.

    8- and 16-bit images keep their depth (16-bit colour PNG/TIFF included, which Pillow
    alone would reduce to 8 bits); EXIF orientation is applied; the ICC profile is kept.

    Raises
    ------
    ImageError
        The file is missing, unreadable, empty, corrupt, truncated, not an image, or
        larger than Pillow's decompression-bomb limit.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if not os.access(path, os.R_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    if path.suffix.lower() == ".npy":
        return _read_npy(path)
    return _read_pillow(path)


def _read_npy(path: Path) -> Picture:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable .npy array ({exc})") from None
    if array.dtype.kind not in "biuf":
        raise ImageError(f"{path}: holds {array.dtype}; expected numbers")
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or 0 in array.shape:
        raise ImageError(f"{path}: has shape {array.shape}; expected H×W or H×W×C")
    return Picture(np.ascontiguousarray(array, np.float32))


def _read_pillow(path: Path) -> Picture:
    from PIL import Image, ImageOps, UnidentifiedImageError

    from . import codecs

    decoded = codecs.read_png(path, Image.MAX_IMAGE_PIXELS)   # most PNGs, without copies
    if decoded is not None:
        pixels, icc = decoded
        return _split_alpha(pixels, icc, has_alpha=pixels.shape[2] in (2, 4))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if _is_wide_color(im):
                    return _read_wide_color(path, im.format)
                im.load()
                im = ImageOps.exif_transpose(im)
                return _picture_from_pillow(im)
    except UnidentifiedImageError:
        if path.read_bytes()[:4] in (b"II*\0", b"MM\0*"):
            return _read_wide_color(path, "TIFF")       # float colour, 16-bit gray + alpha, …
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, TIFF, BMP, WebP, "
                         "…), or the file is corrupt") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: too big; {exc}") from None
    except PermissionError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc})") from None


def _is_wide_color(im) -> bool:
    """Whether Pillow would silently read this image's 16-bit colour as 8 bits."""
    args = im.tile[0].args if im.tile else None
    rawmode = args[0] if isinstance(args, tuple) else args
    return isinstance(rawmode, str) and ";16" in rawmode and im.mode in ("RGB", "RGBA", "LA")


def _read_wide_color(path: Path, fmt: str) -> Picture:
    """Read with convcli's own PNG/TIFF codecs what Pillow would degrade or refuse."""
    from . import codecs

    if fmt == "PNG":
        raise ImageError(f"{path}: interlaced 16-bit colour PNG is not supported (Pillow would "
                         "reduce it to 8 bits); save it without interlacing")
    if fmt == "TIFF":
        pixels, icc = codecs.read_tiff(path)
    else:
        raise ImageError(f"{path}: 16-bit colour {fmt} is not supported; save it as 16-bit "
                         "PNG or TIFF")
    if pixels.dtype.kind == "f" or pixels.dtype == np.uint32:
        pixels = pixels.astype(np.float32)
    return _split_alpha(pixels, icc, has_alpha=pixels.shape[2] in (2, 4))


def _split_alpha(pixels: np.ndarray, icc, has_alpha: bool) -> Picture:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if has_alpha:
        return Picture(np.ascontiguousarray(pixels[:, :, :-1]),
                       np.ascontiguousarray(pixels[:, :, -1]), icc)
    return Picture(np.ascontiguousarray(pixels), None, icc)


def _picture_from_pillow(im) -> Picture:
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in ("1", "L;2", "L;4"):
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("La", "RGBa"):
        im = im.convert(mode.upper())
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        im = im.convert("RGB")
    elif mode.startswith("I;16"):
        return Picture(np.asarray(im).astype(np.uint16)[:, :, None], None, icc)
    elif mode == "I":
        values = np.asarray(im)
        if values.min(initial=0) >= 0 and values.max(initial=0) <= 65535:
            return Picture(values.astype(np.uint16)[:, :, None], None, icc)
        return Picture(values.astype(np.float32)[:, :, None], None, icc)
    elif mode == "F":
        return Picture(np.asarray(im, np.float32)[:, :, None].copy(), None, icc)
    if im.mode not in ("L", "LA", "RGB", "RGBA"):
        raise ImageError(f"image mode {mode} is not supported")
    return _split_alpha(np.asarray(im), icc, has_alpha=im.mode in ("LA", "RGBA"))


# ----------------------------------------------------------------------------------------
# Values → pixels


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
    """The dtype an output gets: the source's bit depth where the format holds it."""
    source_dtype = np.dtype(source_dtype)
    if fmt == "NPY" or policy == "float":
        if fmt not in ("NPY", "TIFF"):
            raise ParameterError(f"float keeps raw values, which only .tiff or .npy "
                                 f"output can hold, not {fmt}", parameter="range_policy")
        return np.dtype(np.float32)
    if fmt in EIGHT_BIT_ONLY:
        return np.dtype(np.uint8)
    if source_dtype.kind == "f":
        return np.dtype(np.float32) if fmt == "TIFF" else np.dtype(np.uint8)
    return source_dtype


def map_range(planes: np.ndarray, policy: str, source_max: float, dtype) -> tuple[np.ndarray, RangeReport]:
    """Map float results (C, H, W), in the source's units (white = `source_max`), to
    `dtype` pixels (H, W, C).

    clip: clip to [0, white]; abs: |v| then clip; offset: add mid-grey then clip;
    minmax: stretch min..max to 0..white; float: keep the values (float32 output only).
    Integer outputs are rounded to nearest, not truncated.
    """
    from .plan import pixel_helpers

    helpers = pixel_helpers()
    dtype = np.dtype(dtype)
    planes = np.ascontiguousarray(planes, np.float32)
    if policy not in RANGE_POLICIES or policy == "auto":
        raise ParameterError(f"range policy {policy!r} is not one of {', '.join(RANGE_POLICIES[1:])}")
    if policy in ("float", "minmax"):
        low, high = (float(v) for v in helpers.finite_range(planes))
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
    outside, low, high = helpers.quantize(planes, policy == "abs", offset, scale, white,
                                          dtype.kind != "f", out)
    return out, RangeReport(policy, float(low), float(high),
                            outside / planes.size if planes.size else 0.0)


def to_gray(color: np.ndarray) -> np.ndarray:
    """Luminance (BT.601) of (H, W, 3) colour as (H, W, 1) float32; gray passes through."""
    if color.shape[2] == 1:
        return color.astype(np.float32)
    if color.shape[2] != 3:
        raise ParameterError(f"needs a gray or RGB image, got {color.shape[2]} channels",
                             parameter="gray")
    return (color.astype(np.float32) @ LUMA.astype(np.float32))[:, :, None]


# ----------------------------------------------------------------------------------------
# Writing


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside `path`, then rename it over
    `path`; on any failure the temporary file is removed and `path` is left as it was.  A
    read-only `path` is not replaced."""
    path = Path(path)
    if path.exists() and not path.stat().st_mode & 0o222:
        raise ImageError(f"{path}: the output exists and is read-only; not replaced")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = _create_temporary(path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(temp, path)
    except OSError as exc:
        raise ImageError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        if temp.exists():
            temp.unlink()


def write_image(path, picture: Picture, quality: int | None = None) -> list[str]:
    """Write a picture atomically in the format its extension names.

    Returns warnings (for example an alpha channel the format cannot hold).
    """
    fmt = image_format(path)
    notes: list[str] = []
    atomic_write(path, lambda out: _encode(out, fmt, picture, quality, notes))
    return notes


def save_pillow(image, path) -> None:
    """Write a Pillow image (a picture made by `convcli.render`) atomically."""
    fmt = image_format(path)
    if fmt == "NPY":
        raise ParameterError(f"{path}: a picture needs an image format such as .png, not .npy")
    atomic_write(path, lambda out: image.save(out, format=fmt))


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create ``.NAME.RANDOM.part`` beside `path` (mode from the umask, like any new file)."""
    while True:
        temp = path.with_name(f".{path.name}.{os.urandom(4).hex()}.part")
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue


def _encode(out, fmt: str, picture: Picture, quality: int | None, notes: list[str]) -> None:
    from . import codecs

    color, alpha = picture.color, picture.alpha
    if fmt == "NPY":
        planes = color if alpha is None else np.dstack([color, alpha])
        np.save(out, planes[:, :, 0] if planes.shape[2] == 1 else planes, allow_pickle=False)
        return
    pixels = color if alpha is None else np.dstack([color, alpha])
    channels = pixels.shape[2]
    if fmt == "TIFF":
        pages = [pixels] if channels <= 4 else [pixels[:, :, [c]] for c in range(channels)]
        codecs.write_tiff(out, pages, picture.icc_profile)
        return
    if channels > 4:
        raise ParameterError(f"{channels} output channels do not fit in {fmt}; write .npy or "
                             ".tiff (one page per channel), or use grid=True")
    if fmt == "PNG":
        codecs.write_png(out, pixels, picture.icc_profile)
        return
    if pixels.dtype != np.uint8:
        raise ImageError(f"{fmt} holds 8-bit pixels, got {pixels.dtype}")
    if fmt == "JPEG" and channels == 2:
        pixels = pixels[:, :, :1]
    if fmt == "BMP" and channels == 2:
        notes.append("BMP has no gray+alpha; written as RGBA")
        pixels = np.dstack([pixels[:, :, :1]] * 3 + [pixels[:, :, 1:]])
    _pillow_save(out, pixels, fmt, picture.icc_profile, quality)


def _pillow_save(out, pixels: np.ndarray, fmt: str, icc_profile: bytes | None,
                 quality: int | None) -> None:
    """Save (H, W, C) uint8 through Pillow (mode from the array)."""
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    options = {}
    if icc_profile and fmt in ("JPEG", "WEBP"):
        options["icc_profile"] = icc_profile
    if fmt in ("JPEG", "WEBP"):
        options["quality"] = 92 if quality is None else quality
    im.save(out, format=fmt, **options)
