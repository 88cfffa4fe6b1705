"""Reading and writing images: bit depths, alpha, metadata, atomic writes, bad files."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from convcli.codecs import read_png, write_png, write_tiff
from convcli.errors import ImageError
from convcli.images import Picture, read_image, write_image
from convcli.pixels import map_range
from imagefiles import bomb_png, opencv_read, png_chunk

RNG = np.random.default_rng(0)
GRAY16 = RNG.integers(0, 65536, (13, 17, 1), dtype=np.uint16)
RGB16 = RNG.integers(0, 65536, (13, 17, 3), dtype=np.uint16)
ALPHA16 = RNG.integers(0, 65536, (13, 17), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (13, 17, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", ["a.png", "a.tif", "a.tiff"])
@pytest.mark.parametrize("color, alpha", [(GRAY16, None), (RGB16, None), (RGB16, ALPHA16),
                                          (GRAY16, ALPHA16), (RGB8, None), (RGB8[:, :, :1], None)])
def test_lossless_formats_round_trip_every_bit(tmp_path, name, color, alpha):
    write_image(tmp_path / name, Picture(color, alpha))
    back = read_image(tmp_path / name)
    assert back.color.dtype == color.dtype
    np.testing.assert_array_equal(back.color, color)
    if alpha is None:
        assert back.alpha is None
    else:
        np.testing.assert_array_equal(back.alpha, alpha)


def test_16_bit_rgb_png_reads_what_libpng_wrote_not_pillows_8_bits(tmp_path):
    import cv2
    path = tmp_path / "rgb16.png"
    cv2.imwrite(str(path), RGB16[:, :, ::-1].copy())        # OpenCV writes BGR with libpng
    np.testing.assert_array_equal(read_image(path).color, RGB16)


def test_png16_decoder_handles_every_row_filter(tmp_path):
    # Hand-built PNG: each row uses another filter type (0..4), checked against the raw data.
    height, width = 5, 6
    image = RNG.integers(0, 65536, (height, width, 3), dtype=np.uint16)
    raw = image.astype(">u2").view(np.uint8).reshape(height, -1).astype(np.int32)
    bpp = 6
    rows = []
    for y in range(height):
        line, prior = raw[y], raw[y - 1] if y else np.zeros_like(raw[0])
        left = np.concatenate([np.zeros(bpp, np.int32), line[:-bpp]])
        corner = np.concatenate([np.zeros(bpp, np.int32), prior[:-bpp]])
        kind = y % 5
        if kind == 0:
            predictor = np.zeros_like(line)
        elif kind == 1:
            predictor = left
        elif kind == 2:
            predictor = prior
        elif kind == 3:
            predictor = (left + prior) // 2
        else:
            p = left + prior - corner
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - corner)
            predictor = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, corner))
        rows.append(bytes([kind]) + ((line - predictor) % 256).astype(np.uint8).tobytes())

    data = (b"\x89PNG\r\n\x1a\n"
            + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
            + png_chunk(b"IDAT", zlib.compress(b"".join(rows))) + png_chunk(b"IEND", b""))
    (tmp_path / "f.png").write_bytes(data)
    decoded, _ = read_png(tmp_path / "f.png")
    np.testing.assert_array_equal(decoded, image)


@pytest.mark.parametrize("compression", [1, 5, 8])          # none, LZW, deflate (libtiff codes)
@pytest.mark.parametrize("color", [RGB16, np.dstack([RGB16, ALPHA16])], ids=["rgb", "rgba"])
def test_16_bit_colour_tiff_written_by_libtiff_reads_every_bit(tmp_path, compression, color):
    import cv2
    path = tmp_path / "rgb16.tif"
    bgr = color[:, :, [2, 1, 0, 3][:color.shape[2]]].copy()
    cv2.imwrite(str(path), bgr, [cv2.IMWRITE_TIFF_COMPRESSION, compression])
    picture = read_image(path)
    np.testing.assert_array_equal(picture.color, color[:, :, :3])
    if color.shape[2] == 4:
        np.testing.assert_array_equal(picture.alpha, color[:, :, 3])


def test_lzw_decoder_on_a_large_image_with_table_resets(tmp_path):
    import cv2
    image = np.random.default_rng(5).integers(0, 65536, (300, 257, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "big.tif"), image, [cv2.IMWRITE_TIFF_COMPRESSION, 5])
    np.testing.assert_array_equal(read_image(tmp_path / "big.tif").color, image[:, :, ::-1])


def test_icc_profile_is_kept(tmp_path):
    profile = b"\0\0\0\x10fake icc profile"
    Image.fromarray(RGB8).save(tmp_path / "in.png", icc_profile=profile)
    picture = read_image(tmp_path / "in.png")
    assert picture.icc_profile == profile
    for name in ("out.png", "out.jpg", "out.tif"):
        write_image(tmp_path / name, picture)
        with Image.open(tmp_path / name) as im:
            assert im.info.get("icc_profile") == profile, name
    write_image(tmp_path / "out16.png", Picture(RGB16, None, profile))
    assert read_image(tmp_path / "out16.png").icc_profile == profile


def test_exif_orientation_is_applied(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = 255                          # top-left marker
    exif = Image.Exif()
    exif[0x0112] = 6                           # rotate 90° clockwise to display
    Image.fromarray(image).save(tmp_path / "o.jpg", exif=exif, quality=100)
    picture = read_image(tmp_path / "o.jpg")
    assert picture.color.shape == (6, 4, 3)
    assert picture.color[0, -1].mean() > 200   # the marker is now top-right


def test_float_tiff_and_npy_keep_raw_values(tmp_path):
    values = RNG.standard_normal((5, 4, 3)).astype(np.float32) * 1000
    write_image(tmp_path / "f.tif", Picture(values))
    write_image(tmp_path / "f.npy", Picture(values))
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), values)
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif").color, values)
    import cv2                                          # a third-party reader agrees
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "f.tif"), cv2.IMREAD_UNCHANGED)[:, :, ::-1],
                                  values)
    pages = RNG.standard_normal((5, 4, 6)).astype(np.float32)
    write_image(tmp_path / "m.tif", Picture(pages))
    with Image.open(tmp_path / "m.tif") as im:
        assert im.n_frames == 6 and im.mode == "F"
        im.seek(4)
        np.testing.assert_array_equal(np.asarray(im), pages[:, :, 4])


def test_map_range_policies():
    values = np.array([[[-300.0, -0.5, 0.4, 100.6, 300.0]]])          # (C, H, W) = (1, 1, 5)
    pixels, report = map_range(values, "clip", 255, np.uint8)
    assert pixels.ravel().tolist() == [0, 0, 0, 101, 255]
    # −0.5 rounds to 0 anyway: only −300 and 300 count as clipped
    assert report.minimum == -300 and report.maximum == 300 and report.clipped == pytest.approx(0.4)
    assert map_range(values, "abs", 255, np.uint8)[0].ravel().tolist() == [255, 0, 0, 101, 255]
    assert map_range(values, "offset", 255, np.uint8)[0].ravel().tolist() == [0, 128, 128, 229, 255]
    # minmax: (v + 300) / 600 · 255
    assert map_range(values, "minmax", 255, np.uint8)[0].ravel().tolist() == [0, 127, 128, 170, 255]
    # 8-bit units into 16 bits: scaled by 65535/255 = 257 before rounding
    assert map_range(values, "clip", 255, np.uint16)[0].ravel().tolist() == [0, 0, 103, 25854, 65535]
    floats, _ = map_range(values, "float", 255, np.float32)
    np.testing.assert_array_equal(floats, values.transpose(1, 2, 0).astype(np.float32))
    nan, report = map_range(np.array([[[np.nan, 7.0, -np.inf, 9.0, np.inf]]]), "clip", 255, np.uint8)
    assert nan.ravel().tolist() == [0, 7, 0, 9, 255]
    assert (report.minimum, report.maximum) == (7, 9)      # the finite values


def test_write_is_atomic_and_leaves_no_temporary_on_failure(tmp_path):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")
    with pytest.raises(Exception):
        write_image(target, Picture(np.zeros((4, 4, 9), np.uint8)))   # 9 channels: not PNG
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def truncated(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def png_bytes():
    buffer = io.BytesIO()
    Image.fromarray(RGB8).save(buffer, format="PNG")
    return buffer.getvalue()


def jpeg_bytes():
    buffer = io.BytesIO()
    Image.fromarray(np.repeat(np.repeat(RGB8, 8, 0), 8, 1)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, data, words", [
    ("empty.png", b"", "empty"),
    ("text.png", b"this is not an image\n", "not an image"),
    ("truncated.png", truncated(png_bytes()), "truncated"),
    ("truncated.jpg", truncated(jpeg_bytes()), "truncated"),
    ("corrupt.png", png_bytes()[:60] + b"\xff" * 40 + png_bytes()[100:], "corrupt"),
    ("bomb.png", bomb_png(), "too big"),
    ("bad.npy", b"\x93NUMPY garbage", "not a readable .npy"),
])
def test_bad_image_files_raise_image_error_naming_the_file(tmp_path, name, data, words):
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(ImageError, match=words) as info:
        read_image(path)
    assert name in str(info.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ImageError, match="cannot read it"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="directory"):
        read_image(tmp_path)


def test_png16_writer_output_is_read_by_pillow_as_16_bit_gray(tmp_path):
    buffer = io.BytesIO()
    write_png(buffer, np.dstack([GRAY16[:, :, 0], ALPHA16]))
    (tmp_path / "la.png").write_bytes(buffer.getvalue())
    back = read_image(tmp_path / "la.png")
    np.testing.assert_array_equal(back.color[:, :, 0], GRAY16[:, :, 0])
    np.testing.assert_array_equal(back.alpha, ALPHA16)


def test_tiff_writer_multi_page_is_valid_for_pillow(tmp_path):
    buffer = io.BytesIO()
    write_tiff(buffer, [RGB8, RGB8[:, :, :1]])
    (tmp_path / "p.tif").write_bytes(buffer.getvalue())
    with Image.open(tmp_path / "p.tif") as im:
        assert im.n_frames == 2 and im.mode == "RGB"
        np.testing.assert_array_equal(np.asarray(im), RGB8)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_writer_output_reads_the_same_in_opencv(tmp_path, channels, dtype):
    top = np.iinfo(dtype).max
    smooth = np.linspace(0, top, 40 * 30 * channels).reshape(40, 30, channels)
    noisy = RNG.integers(0, top + 1, (40, 30, channels))
    image = np.where(np.arange(40)[:, None, None] < 20, smooth, noisy).astype(dtype)
    buffer = io.BytesIO()
    write_png(buffer, image)
    path = tmp_path / "w.png"
    path.write_bytes(buffer.getvalue())
    np.testing.assert_array_equal(opencv_read(path, channels), image)


def test_png_writer_bands_and_parallel_pieces_make_one_valid_stream(tmp_path):
    """Bands of several heights, each deflated in independent pieces: libpng (OpenCV),
    Pillow and zlib itself read back every row."""
    import cv2

    from convcli.codecs import PngWriter

    image = np.concatenate([np.repeat(RGB8, 10, axis=0), RNG.integers(0, 256, (57, 17, 3))],
                           axis=0).astype(np.uint8)
    buffer = io.BytesIO()
    writer = PngWriter(buffer, image.shape[0], image.shape[1], 3, np.uint8)
    for start, stop in ((0, 1), (1, 100), (100, 101), (101, image.shape[0])):
        writer.add(image[start:stop])
    writer.close()
    data = buffer.getvalue()
    path = tmp_path / "bands.png"
    path.write_bytes(data)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1], image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    stream, at = b"", 8
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        stream += data[at + 8:at + 8 + length] if kind == b"IDAT" else b""
        at += 12 + length
    assert len(zlib.decompress(stream)) == image.shape[0] * (1 + image.shape[1] * 3)
