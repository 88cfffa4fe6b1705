"""Standard input and output as image files: ``-`` reads an image from a pipe (its format
sniffed from its first bytes), ``FORMAT:-`` (or ``-``) writes one to a pipe, as ImageMagick
does.  Pure Python: the pipe's bytes go through a file in a private temporary folder.
"""

from __future__ import annotations

from pathlib import Path

from .errors import ParameterError
from .formats import BY_EXTENSION

#: The name that means standard input (as INPUT) or standard output (as -o).
DASH = "-"
#: The most a pipe may bring in (read in chunks, refused past this, before any decoding).
MAX_STDIN_BYTES = 2**31
#: First bytes of each format convcli reads, and the extension that names it.
SIGNATURES = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"),
              (b"II*\x00", ".tiff"), (b"MM\x00*", ".tiff"), (b"II+\x00", ".tiff"),
              (b"MM\x00+", ".tiff"), (b"BM", ".bmp"), (b"\x93NUMPY", ".npy"))


def sniff_extension(head: bytes) -> str:
    """The extension of the format whose signature `head` starts with.

    Raises
    ------
    ParameterError
        No format convcli reads starts so.
    """
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    for signature, extension in SIGNATURES:
        if head.startswith(signature):
            return extension
    raise ParameterError(f"standard input is not an image convcli reads (it starts with "
                         f"{head[:8]!r}); pipe PNG, JPEG, TIFF, BMP, WebP or .npy")


def read_stream(stream, folder: Path, limit: int = MAX_STDIN_BYTES) -> Path:
    """Copy a binary stream (standard input) into `folder`, named by its sniffed format;
    returns the file.  The format is sniffed from the first bytes before the rest is read,
    which then goes to the file a chunk at a time (memory stays one chunk).

    Raises
    ------
    ParameterError
        The stream is empty, not an image, or larger than `limit` bytes.
    """
    head = b""
    while len(head) < 16:
        chunk = stream.read(16 - len(head))
        if not chunk:
            break
        head += chunk
    if not head:
        raise ParameterError("standard input is empty (0 bytes); pipe an image into it")
    path = folder / f"stdin{sniff_extension(head)}"
    size = len(head)
    with open(path, "wb") as out:
        out.write(head)
        while size <= limit:
            chunk = stream.read(min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            out.write(chunk)
            size += len(chunk)
    if size > limit:
        raise ParameterError(f"standard input holds more than {limit:,} bytes; convcli reads "
                             "at most that from a pipe (give a file instead)")
    return path


def stdout_extension(output: str, fmt: str | None, source: Path) -> str | None:
    """The extension to write standard output in, if `output` names it (``-`` or
    ``FORMAT:-``), else None: FORMAT, else `fmt` (the ``--format``), else the input's.

    Raises
    ------
    ParameterError
        An unknown FORMAT.
    """
    if output != DASH and not output.endswith(":" + DASH):
        return None
    name = output[:-2] if output != DASH else (fmt or source.suffix.lstrip("."))
    extension = "." + name.lower().lstrip(".")
    if extension not in BY_EXTENSION:
        raise ParameterError(f"{output}: unknown format {name!r} for standard output; expected "
                             f"one of {', '.join(sorted(e[1:] for e in BY_EXTENSION))} "
                             "(e.g. png:-)")
    return extension
