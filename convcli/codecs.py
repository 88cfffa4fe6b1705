"""Image codecs: convcli's own PNG writer, and the libraries that read PNG and TIFF and
write TIFF where Pillow degrades or refuses them.

- PNG is written by convcli, band by band: rows filtered and pieces deflated (zlib-ng) in
  parallel, so neither the float result nor the whole image need ever be held.
- 16-bit PNG (every layout, interlaced included) and large 8-bit PNG are read by
  imagecodecs (libpng) into one array; smaller 8-bit PNG by Pillow.
- TIFF is read and written by tifffile (with imagecodecs' compressors): 8/16/32-bit and
  float samples, strips or tiles, chunky or planar, any compression it knows, BigTIFF,
  several pages.  convcli writes deflate with a predictor.
"""

from __future__ import annotations

import os
import struct
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
from zlib_ng import zlib_ng

from .errors import ImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count, and back.
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_PNG_CHANNELS = {v: k for k, v in _PNG_COLOR_TYPES.items()}
#: 8-bit images up to this many bytes are decoded by Pillow (see `read_png`).
PNG_PILLOW_BYTES = 1 << 26
#: The EXIF / TIFF tags convcli reads.
ORIENTATION, ICC_PROFILE = 274, 34675


def _png_header(stream: BinaryIO, path: Path) -> dict:
    """The chunks of a PNG before its image data, by kind, checksums checked (IHDR
    first), or None if the file is not a PNG."""
    if stream.read(8) != PNG_SIGNATURE:
        return None
    chunks = {}
    while True:
        head = stream.read(8)
        if len(head) < 8:
            raise ImageError(f"{path}: truncated PNG (no image data)")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IDAT":
            break
        body, crc = stream.read(length), stream.read(4)
        if len(body) != length or len(crc) != 4:
            raise ImageError(f"{path}: truncated PNG (chunk {kind.decode('latin-1')!r} is cut off)")
        if struct.unpack(">I", crc)[0] != zlib_ng.crc32(kind + body) & 0xFFFFFFFF:
            raise ImageError(f"{path}: corrupt PNG (checksum of chunk "
                             f"{kind.decode('latin-1')!r} does not match)")
        if not chunks and (kind != b"IHDR" or length != 13):
            raise ImageError(f"{path}: corrupt PNG (no IHDR chunk)")
        chunks[kind] = body
    return chunks


def read_png(path: Path, max_pixels: int | None = None):
    """Decode a 16-bit PNG (any colour type, interlaced or not), or a large 8-bit one, with
    imagecodecs into one (H, W, C) array; return (array, ICC profile), the EXIF
    orientation applied.

    Returns None for what Pillow reads as well and holding its second copy costs little:
    palette and 1–4-bit images, and 8-bit ones of at most `PNG_PILLOW_BYTES`.  The
    compressed file is held in memory while it is decoded.
    """
    import imagecodecs

    with open(path, "rb") as stream:
        chunks = _png_header(stream, path)
    if chunks is None:
        return None
    width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    if color_type not in _PNG_CHANNELS or depth < 8:
        return None
    if depth == 8 and height * width * _PNG_CHANNELS[color_type] <= PNG_PILLOW_BYTES:
        return None
    if max_pixels is not None and width * height > max_pixels:
        raise ImageError(f"{path}: too big; Image size ({width * height} pixels) exceeds limit "
                         f"of {max_pixels} pixels, could be decompression bomb DOS attack.")
    data = Path(path).read_bytes()
    try:
        with _quiet_libpng(interlace):
            image = imagecodecs.png_decode(data)
    except imagecodecs.PngError as exc:
        raise ImageError(f"{path}: corrupt or truncated PNG ({exc})") from None
    del data
    icc = None
    if b"iCCP" in chunks:
        body = chunks[b"iCCP"]
        icc = zlib_ng.decompress(body[body.index(b"\0") + 2:])
    image = image[:, :, None] if image.ndim == 2 else image
    return orient(image, exif_orientation(chunks.get(b"eXIf"))), icc


@contextmanager
def _quiet_libpng(interlaced: bool):
    """Silence, for an interlaced PNG, the warning libpng prints on the process's stderr
    about interlace handling (it handles the interlace itself: the warning is spurious)."""
    if not interlaced:
        yield
        return
    import ctypes

    flush = ctypes.CDLL(None).fflush            # libpng's stderr may be buffered: flush it
    flush(None)                                 # here, while it still goes nowhere
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        flush(None)
        os.dup2(saved, 2)
        os.close(saved)


def exif_orientation(exif: bytes | None) -> int:
    """The orientation (1–8) in an EXIF block (a TIFF structure), 1 if it has none."""
    if not exif:
        return 1
    from PIL import Image

    data = Image.Exif()
    data.load(exif if exif.startswith(b"Exif") else b"Exif\0\0" + exif)
    value = data.get(ORIENTATION, 1)
    return value if value in range(1, 9) else 1


def orient(image: np.ndarray, orientation: int) -> np.ndarray:
    """An (H, W, …) image turned upright from EXIF/TIFF `orientation` (1–8), as Pillow's
    ``ImageOps.exif_transpose`` does."""
    if orientation in (5, 6, 7, 8):
        image = image.swapaxes(0, 1)            # 5: transposed; the others from it
    if orientation in (2, 3, 6, 7):
        image = image[:, ::-1]
    if orientation in (3, 4, 7, 8):
        image = image[::-1]
    return np.ascontiguousarray(image)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib_ng.crc32(kind + body) & 0xFFFFFFFF)


class PngWriter:
    """Encode a PNG row band by row band: (H, W, C) uint8 or uint16, C in 1..4.

    Each row takes the filter with the most zero bytes and the data is deflated (zlib-ng)
    with run-length matching: about as small as ImageMagick's files for filtered images, and
    several times faster to write than adaptive filtering with full deflate.  Rows are
    filtered, and pieces of each band deflated, in parallel: run-length matches reach back
    one byte, so independent pieces, each ended by a sync flush, lose nothing.
    """

    def __init__(self, out: BinaryIO, height: int, width: int, channels: int, dtype,
                 icc_profile: bytes | None = None):
        self._out = out
        self._dtype = np.dtype(dtype).newbyteorder(">")
        self._bpp = channels * self._dtype.itemsize
        self._prior = np.zeros(width * self._bpp, np.uint8)
        self._adler = zlib_ng.adler32(b"")
        self._header = ZLIB_HEADER              # written before the first deflated piece
        out.write(PNG_SIGNATURE)
        out.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                  self._dtype.itemsize * 8,
                                                  _PNG_COLOR_TYPES[channels], 0, 0, 0)))
        if icc_profile:
            # stdlib zlib for this small chunk: the same bytes convcli always wrote
            out.write(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))

    def add(self, rows: np.ndarray) -> None:
        """Append rows (h, W, C) of the image."""
        from .backend import pixel_helper
        from .threads import parallel_for

        raw = np.ascontiguousarray(rows, self._dtype).view(np.uint8).reshape(rows.shape[0], -1)
        filtered = pixel_helper("png_filter_rows")(raw, self._bpp, self._prior).reshape(-1)
        self._prior = raw[-1].copy()
        self._adler = zlib_ng.adler32(filtered, self._adler)
        self._write(self._header + b"".join(parallel_for(_deflate_piece, filtered.size,
                                                         filtered)))
        self._header = b""

    def close(self) -> None:
        final = zlib_ng.compressobj(6, zlib_ng.DEFLATED, -15).flush()     # an empty last block
        self._write(self._header + final + struct.pack(">I", self._adler))
        self._out.write(_png_chunk(b"IEND", b""))

    def _write(self, data: bytes) -> None:
        if data:
            self._out.write(_png_chunk(b"IDAT", data))


#: A zlib stream's first two bytes: deflate with a 32 KiB window, no preset dictionary.
ZLIB_HEADER = b"\x78\x01"


def _deflate_piece(data: np.ndarray, start: int, stop: int) -> bytes:
    """data[start:stop] as raw deflate blocks (run-length matching), ended by a sync flush
    so that the next piece can follow it in the same stream."""
    compressor = zlib_ng.compressobj(6, zlib_ng.DEFLATED, -15, 9, zlib_ng.Z_RLE)
    return compressor.compress(data[start:stop]) + compressor.flush(zlib_ng.Z_SYNC_FLUSH)


def write_png(out: BinaryIO, image: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Encode (H, W, C) uint8 or uint16, C in 1..4, as PNG (see `PngWriter`)."""
    writer = PngWriter(out, *image.shape, image.dtype, icc_profile)
    writer.add(image)
    writer.close()


#: TIFF photometric interpretations convcli reads with tifffile (others go to Pillow,
#: which converts palette, bilevel, min-is-white and CMYK images to gray or RGB).
_TIFF_PHOTOMETRICS = (1, 2, 6)                  # min-is-black, RGB, YCbCr
#: TIFF compression of JPEG (YCbCr is read through it as RGB).
_TIFF_JPEG = (6, 7)


def read_tiff(path: Path, page: int = 1, max_pixels: int | None = None):
    """Read page `page` (counting from 1) of a TIFF with tifffile, as (H, W, C) — uint8,
    uint16, or float32 for float and other integer samples — with its ICC profile and
    orientation applied, and the number of pages: (array, icc, pages).

    Returns None for what Pillow reads better (palette, bilevel, min-is-white, CMYK).
    """
    import tifffile

    with _tiff_errors(path):
        with tifffile.TiffFile(path) as tif:
            pages = len(tif.pages)
            if not 1 <= page <= pages:
                raise ImageError(f"{path}: has {pages} page{'s' * (pages > 1)}; there is no "
                                 f"page {page}")
            ifd = tif.pages[page - 1]
            jpeg = ifd.compression in _TIFF_JPEG
            if (ifd.photometric not in _TIFF_PHOTOMETRICS or ifd.bitspersample < 8
                    or (ifd.photometric == 6 and not jpeg)):
                return None
            if max_pixels is not None and ifd.imagewidth * ifd.imagelength > max_pixels:
                raise ImageError(f"{path}: too big; Image size "
                                 f"({ifd.imagewidth * ifd.imagelength} pixels) exceeds limit "
                                 f"of {max_pixels} pixels, could be decompression bomb DOS "
                                 "attack.")
            image = ifd.asarray()
            axes = ifd.axes
            tag = ifd.tags.get(ICC_PROFILE)
            icc = bytes(tag.value) if tag is not None else None
            tag = ifd.tags.get(ORIENTATION)
            orientation = int(tag.value) if tag is not None else 1
    if axes == "SYX":
        image = image.transpose(1, 2, 0)
    elif axes == "YX":
        image = image[:, :, None]
    elif axes != "YXS":
        raise ImageError(f"{path}: page {page} has axes {axes}; expected an image "
                         "(rows × columns × samples)")
    if image.dtype not in (np.uint8, np.uint16):
        image = image.astype(np.float32)
    return orient(image, orientation), icc, pages


@contextmanager
def _tiff_errors(path: Path):
    """tifffile's and its codecs' errors as one `ImageError` naming the file, and its
    logged warnings about broken tags held back (the error says what matters)."""
    import logging

    import tifffile

    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    except (tifffile.TiffFileError, ValueError, EOFError, RuntimeError, struct.error) as exc:
        raise ImageError(f"{path}: corrupt, truncated or unsupported TIFF ({exc})") from None
    finally:
        logger.setLevel(level)


#: How convcli compresses TIFF: deflate (level 1) after a horizontal (integers) or
#: floating-point predictor, which every TIFF reader that knows deflate reads.
TIFF_COMPRESSION = {"compression": "zlib", "compressionargs": {"level": 1}, "predictor": True}


def write_tiff(out: BinaryIO, pages: list[np.ndarray], icc_profile: bytes | None = None) -> None:
    """Write little-endian TIFF with tifffile, one page per (H, W, C) array, compressed
    as `TIFF_COMPRESSION`.

    dtype uint8, uint16 or float32; C = 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA);
    alpha is declared unassociated (ExtraSamples = 2).  The ICC profile goes on page 1.
    """
    import tifffile

    # A name of its own: tifffile reads the stream's, which is a number for a descriptor.
    with tifffile.TiffWriter(tifffile.FileHandle(out, name="output.tif")) as tif:
        for index, page in enumerate(pages):
            color = page.shape[2] >= 3
            extra = page.shape[2] - (3 if color else 1)
            tif.write(np.ascontiguousarray(page if page.shape[2] > 1 else page[:, :, 0]),
                      photometric="rgb" if color else "minisblack", planarconfig="contig",
                      extrasamples=("unassalpha",) * extra or None, metadata=None,
                      iccprofile=icc_profile if index == 0 else None, **TIFF_COMPRESSION)
