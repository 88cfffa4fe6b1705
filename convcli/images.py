"""Reading and writing images through the one table of formats (`convcli.formats`).

8- and 16-bit images keep their depth, float TIFF and .npy their values; what a format
cannot hold is refused or noted.  Turning results into pixels is `convcli.pixels`.
"""

from __future__ import annotations

import os
import stat
import warnings
from pathlib import Path

import numpy as np

from .errors import FileFormatError, ImageError, ParameterError
from .files import atomic_write
from .formats import Format, format_of
from .pixels import Picture

#: The first bytes of a TIFF: little- or big-endian, classic or BigTIFF.
TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


def _file_kind(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    kinds = [(stat.S_ISFIFO, "a pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    return next((word for test, word in kinds if test(mode)), "not a regular file")


# ----------------------------------------------------------------------------------------
# Reading


def read_image(path, page: int | None = None) -> Picture:
    """Read PNG, JPEG, TIFF, BMP, WebP (anything Pillow reads) or an .npy array.

    8- and 16-bit images keep their depth (16-bit colour PNG/TIFF included, which Pillow
    alone would reduce to 8 bits); EXIF orientation is applied; the ICC profile is kept.

    Parameters
    ----------
    path : str or Path
        The file.
    page : int, optional
        Which page of a multi-page file (TIFF) to read, counting from 1; by default the
        first.  The picture's ``pages`` says how many the file holds.

    Returns
    -------
    Picture
        ``color`` (H, W, C) uint8, uint16 or float32, ``alpha`` (H, W) or None, and
        ``icc_profile``.

    Raises
    ------
    ImageError
        The file is missing, unreadable, empty, corrupt, truncated, not an image, larger
        than Pillow's decompression-bomb limit, or has no such page.
    ParameterError
        `page` is not a positive int.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from convcli import read_image, write_image
    >>> from convcli.pixels import Picture
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "ramp.png"
    >>> ramp = np.arange(0, 65536, 4096, dtype=np.uint16).reshape(4, 4, 1)
    >>> write_image(path, Picture(ramp))
    []
    >>> picture = read_image(path)
    >>> picture.color.dtype, picture.shape, bool((picture.color == ramp).all())
    (dtype('uint16'), (4, 4, 1), True)
    """
    path = Path(path)
    if page is not None and (not isinstance(page, (int, np.integer)) or isinstance(page, bool)
                             or page < 1):
        raise ParameterError(f"must be a page number from 1, got {page!r}", parameter="page")
    try:
        info = path.stat()
        if not os.access(path, os.R_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror})") from None
    if path.is_dir():
        raise ImageError(f"{path}: is a directory, not an image")
    if not stat.S_ISREG(info.st_mode):
        raise ImageError(f"{path}: is {_file_kind(info.st_mode)}, not an image file")
    size = info.st_size
    if size == 0:
        raise ImageError(f"{path}: the file is empty (0 bytes)")
    if path.suffix.lower() == ".npy":
        _one_page(path, page)
        picture = _read_npy(path)
    else:
        picture = _read_file(path, page)
    if picture.color.dtype.kind == "f":
        bad = picture.color.size - int(np.count_nonzero(np.isfinite(picture.color)))
        if bad:
            raise FileFormatError(f"{path}: {bad:,} of its values "
                                  f"{'is' if bad == 1 else 'are'} NaN or infinity; every "
                                  "pixel must be a finite number")
    return picture


def _one_page(path: Path, page: int | None) -> None:
    if page not in (None, 1):
        raise ImageError(f"{path}: has 1 page; there is no page {page}")


def _read_npy(path: Path) -> Picture:
    from .limits import MAX_VALUES, check_size, product

    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: not a readable .npy array ({exc})") from None
    check_size(f"{path}: an array of shape {shape}", product(shape), MAX_VALUES)
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


def _read_file(path: Path, page: int | None) -> Picture:
    from PIL import Image, ImageOps, UnidentifiedImageError

    from . import codecs

    with open(path, "rb") as stream:
        magic = stream.read(4)
    if magic in TIFF_MAGIC:
        decoded = codecs.read_tiff(path, page or 1, Image.MAX_IMAGE_PIXELS)
        if decoded is not None:
            pixels, icc, pages = decoded
            return _split_alpha(pixels, icc, has_alpha=pixels.shape[2] in (2, 4), pages=pages)
    else:
        decoded = codecs.read_png(path, Image.MAX_IMAGE_PIXELS)    # 16-bit or large PNG
        if decoded is not None:
            _one_page(path, page)
            pixels, icc = decoded
            return _split_alpha(pixels, icc, has_alpha=pixels.shape[2] in (2, 4))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                pages = getattr(im, "n_frames", 1)
                if page is not None and page > pages:
                    raise ImageError(f"{path}: has {pages} page{'s' * (pages > 1)}; "
                                     f"there is no page {page}")
                if page is not None:
                    im.seek(page - 1)
                im.load()
                im = ImageOps.exif_transpose(im)
                picture = _picture_from_pillow(im)
                picture.pages = pages
                return picture
    except UnidentifiedImageError:
        raise ImageError(f"{path}: not an image Pillow can read (PNG, JPEG, TIFF, BMP, WebP, "
                         "…), or the file is corrupt") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{path}: too big; {exc}") from None
    except PermissionError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageError(f"{path}: corrupt or truncated image ({exc})") from None


def _split_alpha(pixels: np.ndarray, icc, has_alpha: bool, pages: int = 1) -> Picture:
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if has_alpha:
        return Picture(np.ascontiguousarray(pixels[:, :, :-1]),
                       np.ascontiguousarray(pixels[:, :, -1]), icc, pages)
    return Picture(np.ascontiguousarray(pixels), None, icc, pages)


def _picture_from_pillow(im) -> Picture:
    icc = im.info.get("icc_profile")
    mode = im.mode
    if mode in ("1", "L;2", "L;4"):
        im = im.convert("L")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("L", "RGB") and "transparency" in im.info:
        im = im.convert(mode + "A")
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
# Writing


def write_image(path, picture: Picture, quality: int | None = None) -> list[str]:
    """Write a picture atomically in the format its extension names.

    Parameters
    ----------
    path : str or Path
        .png, .jpg/.jpeg, .tif/.tiff, .bmp, .webp or .npy.
    picture : Picture
        What to write (see `read_image`).
    quality : int, optional
        JPEG/WebP quality.

    Returns
    -------
    list of str
        Warnings (for example an alpha channel the format cannot hold).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import numpy as np
    >>> from convcli import write_image
    >>> from convcli.images import Picture
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> rgba = Picture(np.zeros((2, 2, 3), np.uint8), np.full((2, 2), 255, np.uint8))
    >>> write_image(folder / "out.png", rgba)
    []
    >>> sorted(p.name for p in folder.iterdir())
    ['out.png']
    """
    fmt = format_of(path)
    notes: list[str] = []
    atomic_write(path, lambda out: _encode(out, fmt, picture, quality, notes))
    return notes


def save_pillow(image, path) -> None:
    """Write a Pillow image (a picture made by `convcli.render`) atomically."""
    fmt = format_of(path)
    if fmt.raw:
        raise ParameterError(f"{path}: a picture needs an image format such as .png, not "
                             f"{fmt.extensions[0]}")
    atomic_write(path, lambda out: image.save(out, format=fmt.name))


def _encode(out, fmt: Format, picture: Picture, quality: int | None, notes: list[str]) -> None:
    """Check a picture against what `fmt` holds, then write it with the format's codec."""
    color, alpha = picture.color, picture.alpha
    if alpha is not None and not fmt.alpha:
        notes.append(f"{fmt.name} has no alpha channel; alpha dropped")
        alpha = None
    pixels = color if alpha is None else np.dstack([color, alpha])
    channels = pixels.shape[2]
    if fmt.max_channels is not None and channels > fmt.max_channels:
        raise ParameterError(f"{channels} output channels do not fit in {fmt.name}; write .npy "
                             "or .tiff (one page per channel), or use grid=True")
    if pixels.dtype.name not in fmt.depths and not fmt.raw:
        raise ImageError(f"{fmt.name} holds {', '.join(fmt.depths)} pixels, got {pixels.dtype}")
    ENCODERS[fmt.writer](out, pixels, fmt, picture.icc_profile if fmt.icc else None, quality,
                         notes)


def _write_npy(out, pixels, fmt, icc_profile, quality, notes) -> None:
    np.save(out, pixels[:, :, 0] if pixels.shape[2] == 1 else pixels, allow_pickle=False)


def _write_png(out, pixels, fmt, icc_profile, quality, notes) -> None:
    from .codecs import write_png

    write_png(out, pixels, icc_profile)


def _write_tiff(out, pixels, fmt, icc_profile, quality, notes) -> None:
    from .codecs import write_tiff

    channels = pixels.shape[2]
    pages = [pixels] if channels <= 4 else [pixels[:, :, [c]] for c in range(channels)]
    if pixels.dtype.kind == "f" and 1 < channels <= 4:
        notes.append(f"a {channels}-channel float TIFF: convcli, tifffile and OpenCV read it "
                     "back, but Pillow and most viewers cannot; write .npy for raw values, "
                     "or .png for viewable pixels")
    write_tiff(out, pages, icc_profile)


def _write_pillow(out, pixels, fmt, icc_profile, quality, notes) -> None:
    """Save (H, W, C) uint8 through Pillow (mode from the array)."""
    from PIL import Image

    if fmt.name == "BMP" and pixels.shape[2] == 2:
        notes.append("BMP has no gray+alpha; written as RGBA")
        pixels = np.dstack([pixels[:, :, :1]] * 3 + [pixels[:, :, 1:]])
    im = Image.fromarray(np.ascontiguousarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels))
    options = {}
    if icc_profile:
        options["icc_profile"] = icc_profile
    if fmt.quality:
        options["quality"] = 92 if quality is None else quality
    im.save(out, format=fmt.name, **options)


#: The codecs that write images, by the name `convcli.formats.Format.writer` gives.
ENCODERS = {"numpy": _write_npy, "convcli": _write_png, "tifffile": _write_tiff,
            "pillow": _write_pillow}
