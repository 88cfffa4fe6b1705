"""PNG and TIFF codecs for what Pillow degrades or does slowly.

Pillow reads 16-bit RGB(A) PNG and TIFF as 8 bits and cannot write them, nor float or
multi-channel TIFF.  convcli writes every PNG itself, band by band, rows filtered and
pieces deflated in parallel, and reads most PNGs itself once the compiled core is loaded;
other formats go through Pillow.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .errors import ImageError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types by channel count, and back.
_PNG_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}
_PNG_CHANNELS = {v: k for k, v in _PNG_COLOR_TYPES.items()}


def _png_chunks(stream: BinaryIO, path: Path):
    """(kind, body) of each chunk of a PNG file after its signature, checksums checked."""
    while True:
        head = stream.read(8)
        if len(head) < 8:
            raise ImageError(f"{path}: truncated PNG (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        body = stream.read(length)
        crc = stream.read(4)
        if len(body) != length or len(crc) != 4:
            raise ImageError(f"{path}: truncated PNG (chunk {kind.decode('latin-1')!r} is cut off)")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise ImageError(f"{path}: corrupt PNG (checksum of chunk "
                             f"{kind.decode('latin-1')!r} does not match)")
        yield kind, body
        if kind == b"IEND":
            return


#: Decompressed bytes unfiltered at a time while decoding (bounds the extra memory).
PNG_DECODE_STEP = 1 << 22
#: 8-bit images up to this many bytes may be decoded by Pillow (see `read_png`).
PNG_PILLOW_BYTES = 1 << 26


def read_png(path: Path, max_pixels: int | None = None):
    """Decode a non-interlaced 8- or 16-bit gray, gray+alpha, RGB or RGBA PNG straight into
    one (H, W, C) array, row band by row band, and return (array, ICC profile).

    Returns None for what Pillow should read instead (palette, 1–4-bit, interlaced, or with
    EXIF), and for 8-bit images Pillow reads as well, while the compiled core is not loaded
    and the image is small enough (`PNG_PILLOW_BYTES`) that holding a second copy is fine.
    16-bit colour is read with every bit, which Pillow alone would reduce to 8.
    """
    from .backend import jit_loaded

    with open(path, "rb") as stream:
        if stream.read(8) != PNG_SIGNATURE:
            return None
        chunks = _png_chunks(stream, path)
        kind, body = next(chunks)
        if kind != b"IHDR" or len(body) != 13:
            raise ImageError(f"{path}: corrupt PNG (no IHDR chunk)")
        width, height, depth, color_type, _, _, interlace = struct.unpack(">IIBBBBB", body)
        if depth not in (8, 16) or color_type not in _PNG_CHANNELS or interlace:
            return None
        if max_pixels is not None and width * height > max_pixels:
            raise ImageError(f"{path}: too big; Image size ({width * height} pixels) exceeds limit "
                             f"of {max_pixels} pixels, could be decompression bomb DOS attack.")
        channels = _PNG_CHANNELS[color_type]
        dtype = np.dtype(">u2" if depth == 16 else np.uint8)
        bpp = channels * dtype.itemsize
        row_bytes = width * bpp
        pillow_reads = depth == 8 and height * row_bytes <= PNG_PILLOW_BYTES and not jit_loaded()
        image = np.empty((height, width, channels), dtype)
        rows_out = image.reshape(height, row_bytes) if depth == 8 else \
            image.view(np.uint8).reshape(height, row_bytes)
        prior = np.zeros(row_bytes, np.uint8)
        decompressor = zlib.decompressobj()
        pending = b""
        done = 0
        icc = transparent = None
        for kind, body in chunks:
            if kind == b"eXIf":
                return None                       # Pillow applies the orientation
            if kind == b"iCCP":
                icc = zlib.decompress(body[body.index(b"\0") + 2:])
            elif kind == b"tRNS":
                transparent = np.frombuffer(body, ">u2").astype(dtype)
            elif kind == b"IDAT":
                if pillow_reads and transparent is None:
                    return None
                from ._core import png_unfilter

                data = body
                while data and done < height:
                    try:
                        pending += decompressor.decompress(data, PNG_DECODE_STEP)
                    except zlib.error as exc:
                        raise ImageError(f"{path}: corrupt PNG image data ({exc})") from None
                    data = decompressor.unconsumed_tail
                    count = min(len(pending) // (row_bytes + 1), height - done)
                    if count:
                        block = np.frombuffer(pending, np.uint8, count * (row_bytes + 1))
                        block = block.reshape(count, row_bytes + 1)
                        if block[:, 0].max() > 4:
                            raise ImageError(f"{path}: corrupt PNG (unknown row filter "
                                             f"{block[:, 0].max()})")
                        png_unfilter(block, bpp, prior, rows_out[done:done + count])
                        prior = rows_out[done + count - 1]
                        done += count
                        pending = pending[count * (row_bytes + 1):]
        if done < height:
            raise ImageError(f"{path}: truncated PNG (image data ends after {done} of "
                             f"{height} rows)")
    image = image.astype(image.dtype.newbyteorder("="), copy=False)
    if transparent is not None and channels in (1, 3) and transparent.size == channels:
        top = np.iinfo(image.dtype).max
        alpha = np.where((image == transparent).all(axis=2), 0, top).astype(image.dtype)
        image = np.dstack([image, alpha])
    return image, icc


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


class PngWriter:
    """Encode a PNG row band by row band: (H, W, C) uint8 or uint16, C in 1..4.

    Each row takes the filter with the most zero bytes and the data is deflated with
    run-length matching: about as small as ImageMagick's files for filtered images, and
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
        self._adler = zlib.adler32(b"")
        self._header = ZLIB_HEADER              # written before the first deflated piece
        out.write(PNG_SIGNATURE)
        out.write(_png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                  self._dtype.itemsize * 8,
                                                  _PNG_COLOR_TYPES[channels], 0, 0, 0)))
        if icc_profile:
            out.write(_png_chunk(b"iCCP", b"ICC profile\0\0" + zlib.compress(icc_profile)))

    def add(self, rows: np.ndarray) -> None:
        """Append rows (h, W, C) of the image."""
        from .backend import pixel_helpers
        from .threads import parallel_for

        raw = np.ascontiguousarray(rows, self._dtype).view(np.uint8).reshape(rows.shape[0], -1)
        filtered = pixel_helpers().png_filter_rows(raw, self._bpp, self._prior).reshape(-1)
        self._prior = raw[-1].copy()
        self._adler = zlib.adler32(filtered, self._adler)
        self._write(self._header + b"".join(parallel_for(_deflate_piece, filtered.size,
                                                         filtered)))
        self._header = b""

    def close(self) -> None:
        final = zlib.compressobj(6, zlib.DEFLATED, -15).flush()     # an empty last block
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
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15, 9, zlib.Z_RLE)
    return compressor.compress(data[start:stop]) + compressor.flush(zlib.Z_SYNC_FLUSH)


def write_png(out: BinaryIO, image: np.ndarray, icc_profile: bytes | None = None) -> None:
    """Encode (H, W, C) uint8 or uint16, C in 1..4, as PNG (see `PngWriter`)."""
    writer = PngWriter(out, *image.shape, image.dtype, icc_profile)
    writer.add(image)
    writer.close()


_TIFF_TYPES = {1: "B", 2: "s", 3: "H", 4: "I", 7: "s", 11: "f", 12: "d", 16: "Q"}
_TIFF_DTYPES = {(1, 8): "u1", (1, 16): "u2", (1, 32): "u4", (3, 32): "f4", (3, 64): "f8"}


def read_tiff_tags(data: bytes, path: Path) -> tuple[dict, bool]:
    """The tags of a TIFF's first page as {tag: tuple of values}, and whether big-endian."""
    if data[:4] not in (b"II*\0", b"MM\0*"):
        raise ImageError(f"{path}: not a TIFF file")
    big = data[:2] == b"MM"
    order = ">" if big else "<"
    (offset,) = struct.unpack(order + "I", data[4:8])
    try:
        (count,) = struct.unpack(order + "H", data[offset:offset + 2])
        tags = {}
        for index in range(count):
            entry = data[offset + 2 + 12 * index: offset + 14 + 12 * index]
            tag, kind, n = struct.unpack(order + "HHI", entry[:8])
            if kind not in _TIFF_TYPES:
                continue
            fmt = _TIFF_TYPES[kind]
            size = struct.calcsize(fmt) * n
            where = entry[8:12] if size <= 4 else data[struct.unpack(order + "I", entry[8:12])[0]:][:size]
            if fmt == "s":
                tags[tag] = bytes(where[:n])
            else:
                tags[tag] = struct.unpack(f"{order}{n}{fmt}", where[:size])
    except struct.error:
        raise ImageError(f"{path}: corrupt or truncated TIFF (its directory is cut off)") from None
    return tags, big


def read_tiff(path: Path) -> tuple[np.ndarray, bytes | None]:
    """Read a TIFF's first page as (H, W, C) — uint8, uint16, uint32 or float — and its ICC
    profile: chunky samples, uncompressed, LZW or deflate, with or without horizontal
    prediction.

    For what Pillow reads wrongly (16-bit colour: as 8 bits) or not at all (float colour,
    16-bit gray + alpha); anything else it cannot read is refused clearly.
    """
    data = Path(path).read_bytes()
    tags, big = read_tiff_tags(data, path)
    try:
        width, height = tags[256][0], tags[257][0]
        offsets, sizes = tags[273], tags[279]
    except KeyError:
        raise ImageError(f"{path}: unsupported TIFF (tiled, or no strips)") from None
    channels = tags.get(277, (1,))[0]
    bits = tags.get(258, (1,))[0]
    sample_format = tags.get(339, (1,))[0]
    compression = tags.get(259, (1,))[0]
    predictor = tags.get(317, (1,))[0]
    dtype = _TIFF_DTYPES.get((sample_format, bits))
    if (dtype is None or tags.get(284, (1,))[0] != 1 or compression not in (1, 5, 8, 32946)
            or predictor not in (1, 2) or (predictor == 2 and sample_format != 1)):
        raise ImageError(
            f"{path}: this TIFF ({bits}-bit samples, sample format {sample_format}, compression "
            f"{compression}, predictor {predictor}) is not supported; save it uncompressed, "
            "LZW- or deflate-compressed, or as PNG")
    dtype = np.dtype(dtype).newbyteorder(">" if big else "<")
    rows_per_strip = tags.get(278, (height,))[0]
    strips = []
    for index, (offset, size) in enumerate(zip(offsets, sizes)):
        raw = data[offset:offset + size]
        rows = min(rows_per_strip, height - index * rows_per_strip)
        count = rows * width * channels
        if compression == 5:
            from ._core import tiff_lzw_decode

            raw = tiff_lzw_decode(np.frombuffer(raw, np.uint8), count * dtype.itemsize).tobytes()
        elif compression != 1:
            try:
                raw = zlib.decompress(raw)
            except zlib.error as exc:
                raise ImageError(f"{path}: corrupt TIFF strip {index + 1} ({exc})") from None
        if len(raw) < count * dtype.itemsize:
            raise ImageError(f"{path}: truncated TIFF (strip {index + 1} is short)")
        strips.append(np.frombuffer(raw, dtype, count).reshape(rows, width, channels))
    image = np.concatenate(strips).astype(dtype.newbyteorder("="))
    if predictor == 2:
        image = np.cumsum(image, axis=1, dtype=image.dtype)
    return image, tags.get(34675)


# TIFF field types and sample formats used by `write_tiff`.
_SHORT, _LONG, _UNDEFINED = 3, 4, 7
_TIFF_SAMPLE_FORMAT = {"u": 1, "f": 3}
_STRIP_OFFSETS = 273


def _tiff_fields(page: np.ndarray, data_size: int, icc_profile: bytes | None):
    """(tag, type, payload bytes, count) of one page's IFD, in tag order."""
    height, width, channels = page.shape
    color = channels >= 3
    shorts = {258: [page.dtype.itemsize * 8] * channels, 259: [1], 262: [2 if color else 1],
              277: [channels], 284: [1],
              339: [_TIFF_SAMPLE_FORMAT[page.dtype.kind]] * channels}
    extra = channels - (3 if color else 1)
    if extra:
        shorts[338] = [2] * extra           # unassociated alpha
    longs = {256: [width], 257: [height], _STRIP_OFFSETS: [0], 278: [height], 279: [data_size]}
    fields = [(t, _SHORT, struct.pack(f"<{len(v)}H", *v), len(v)) for t, v in shorts.items()]
    fields += [(t, _LONG, struct.pack(f"<{len(v)}I", *v), len(v)) for t, v in longs.items()]
    if icc_profile:
        fields.append((34675, _UNDEFINED, bytes(icc_profile), len(icc_profile)))
    return sorted(fields)


def write_tiff(out: BinaryIO, pages: list[np.ndarray], icc_profile: bytes | None = None) -> None:
    """Write uncompressed little-endian baseline TIFF, one page per (H, W, C) array.

    dtype uint8, uint16 or float32; C = 1 (gray), 2 (gray + alpha), 3 (RGB), 4 (RGBA);
    alpha is declared unassociated (ExtraSamples = 2).  The ICC profile goes on page 1.
    """
    out.write(b"II*\0" + struct.pack("<I", 8))
    pos = 8
    for index, page in enumerate(pages):
        data = np.ascontiguousarray(page, page.dtype.newbyteorder("<")).tobytes()
        fields = _tiff_fields(page, len(data), icc_profile if index == 0 else None)
        # Layout: the IFD, then the values too long to sit in it, then the pixels.
        cursor = pos + 2 + 12 * len(fields) + 4
        entries, blobs = [], []
        for tag, kind, payload, count in fields:
            if len(payload) <= 4:
                entries.append([tag, kind, count, payload.ljust(4, b"\0")])
            else:
                entries.append([tag, kind, count, struct.pack("<I", cursor)])
                blobs.append(payload + b"\0" * (len(payload) % 2))
                cursor += len(blobs[-1])
        for entry in entries:
            if entry[0] == _STRIP_OFFSETS:
                entry[3] = struct.pack("<I", cursor)
        data += b"\0" * (len(data) % 2)
        next_ifd = cursor + len(data) if index + 1 < len(pages) else 0
        out.write(struct.pack("<H", len(entries)))
        out.write(b"".join(struct.pack("<HHI", t, k, c) + v for t, k, c, v in entries))
        out.write(struct.pack("<I", next_ifd))
        out.write(b"".join(blobs))
        out.write(data)
        pos = next_ifd
