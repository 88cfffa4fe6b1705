"""The one table of image formats: what each extension reads and writes with, which bit
depths and channels it holds, and what else it keeps.

Pure Python, light enough for ``--help``: the CLI's ``--format`` choice, the batch's
default input glob, output validation (`convcli.pixels.output_dtype`) and the image
writers (`convcli.images`) all read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError


@dataclass(frozen=True, kw_only=True)
class Format:
    """One image format, as convcli reads and writes it."""

    name: str                       # what messages call it, and Pillow's format name
    extensions: tuple[str, ...]     # the first is the one convcli writes by default
    reader: str                     # the library that reads it
    writer: str                     # the codec that writes it (a key of images.ENCODERS)
    depths: tuple[str, ...]         # the sample dtypes it holds (numpy names)
    alpha: bool                     # whether it holds an alpha channel
    max_channels: int | None        # channels it holds in one image (None: any number)
    quality: bool = False           # whether quality= means something
    icc: bool = False               # whether the ICC profile is written
    streaming: bool = False         # whether it is written band by band

    @property
    def raw(self) -> bool:
        """Whether it holds only raw float values (no pixel mapping)."""
        return self.depths == ("float32",)


FORMATS = (
    Format(name="PNG", extensions=(".png",), reader="Pillow, imagecodecs",
           writer="convcli", depths=("uint8", "uint16"), alpha=True,
           max_channels=4, icc=True, streaming=True),
    Format(name="JPEG", extensions=(".jpg", ".jpeg"), reader="Pillow", writer="pillow",
           depths=("uint8",), alpha=False, max_channels=4, quality=True, icc=True),
    Format(name="TIFF", extensions=(".tif", ".tiff"), reader="tifffile",
           writer="tifffile", depths=("uint8", "uint16", "float32"), alpha=True,
           max_channels=None, icc=True),
    Format(name="BMP", extensions=(".bmp",), reader="Pillow", writer="pillow",
           depths=("uint8",), alpha=True, max_channels=4),
    Format(name="WEBP", extensions=(".webp",), reader="Pillow", writer="pillow",
           depths=("uint8",), alpha=True, max_channels=4, quality=True, icc=True),
    Format(name="NPY", extensions=(".npy",), reader="numpy", writer="numpy",
           depths=("float32",), alpha=True, max_channels=None),
)

#: Each extension (lower case, with its dot) and its format.
BY_EXTENSION = {ext: fmt for fmt in FORMATS for ext in fmt.extensions}
#: Each format by name.
BY_NAME = {fmt.name: fmt for fmt in FORMATS}


def extensions() -> list[str]:
    """Every extension convcli reads and writes, without the dot (the ``--format`` choice)."""
    return sorted(ext[1:] for ext in BY_EXTENSION)


def input_globs() -> tuple[str, ...]:
    """The file patterns a folder's images match by default (``*.png``, …)."""
    return tuple(f"*{ext}" for ext in BY_EXTENSION)


def format_of(path) -> Format:
    """The format an output path's extension names.

    Raises
    ------
    ParameterError
        The extension is none of `BY_EXTENSION`.
    """
    suffix = Path(path).suffix.lower()
    if not suffix:
        raise ParameterError(f"output {path} has no extension; give one of "
                             f"{', '.join(sorted(BY_EXTENSION))}, or write {path}/ for a folder")
    if suffix not in BY_EXTENSION:
        raise ParameterError(f"output {path}: unknown extension {suffix!r}; "
                             f"expected one of {', '.join(sorted(BY_EXTENSION))}")
    return BY_EXTENSION[suffix]
