"""Hand-made image files for tests of bad input."""

import struct
import zlib


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png() -> bytes:
    """A tiny file that claims 30000×30000 pixels (900 megapixels)."""
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 30001)) + png_chunk(b"IEND", b""))


#: Adam7's passes: (first row, first column, row step, column step).
ADAM7 = [(0, 0, 8, 8), (0, 4, 8, 8), (4, 0, 8, 4), (0, 2, 4, 4), (2, 0, 4, 2), (0, 1, 2, 2),
         (1, 0, 2, 1)]


def interlaced_png(image) -> bytes:
    """An Adam7-interlaced PNG of (H, W, C) uint8 or uint16 pixels, C in 1..4, each pass's
    rows unfiltered, as the PNG specification lays it out."""
    height, width, channels = image.shape
    depth = image.dtype.itemsize * 8
    raw = b""
    for y0, x0, dy, dx in ADAM7:
        sub = image[y0::dy, x0::dx].astype(">u2" if depth == 16 else "u1")
        if sub.size:
            raw += b"".join(b"\0" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", width, height, depth, {1: 0, 2: 4, 3: 2, 4: 6}[channels],
                         0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header)
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


def opencv_read(path, channels: int):
    """An image of `channels` channels as OpenCV (libpng, libtiff) reads it, in convcli's
    order: (H, W, C) gray, gray + alpha, RGB or RGBA."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image.ndim == 2:
        return image[:, :, None]
    if channels == 2:
        return image[:, :, [0, 3]]                  # gray + alpha comes back as BGRA
    return image[:, :, [2, 1, 0, 3][:channels]]
