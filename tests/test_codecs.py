"""The codecs convcli reads and writes with: 16-bit PNG of every layout (imagecodecs),
TIFF of every layout tifffile knows, pages, orientation, TIFF compression, the PNG
encoder's zlib-ng stream, and the one table of formats."""

import io
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image, ImageOps

from convcli import formats
from convcli.codecs import TIFF_COMPRESSION, orient, write_png
from convcli.errors import ImageError, ParameterError
from convcli.images import Picture, read_image, write_image
from convcli.pixels import output_dtype
from imagefiles import interlaced_png, opencv_read

RNG = np.random.default_rng(13)
RGB16 = RNG.integers(0, 65536, (21, 19, 3), dtype=np.uint16)


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_interlaced_16_bit_png_reads_every_bit_as_libpng_does(tmp_path, channels):
    image = RNG.integers(0, 65536, (21, 19, channels), dtype=np.uint16)
    path = tmp_path / "adam7.png"
    path.write_bytes(interlaced_png(image))
    np.testing.assert_array_equal(opencv_read(path, channels), image)     # libpng through OpenCV
    picture = read_image(path)
    colour = 1 if channels < 3 else 3
    assert picture.color.dtype == np.uint16
    np.testing.assert_array_equal(picture.color, image[:, :, :colour])
    if channels in (2, 4):
        np.testing.assert_array_equal(picture.alpha, image[:, :, -1])
    # libpng's spurious interlace warning (written to a buffered stderr, so seen at exit at
    # the latest) is hushed
    code = f"from convcli.images import read_image; read_image({str(path)!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""


@pytest.mark.parametrize("options", [
    {"tile": (16, 16), "compression": "zlib"},
    {"tile": (16, 32), "compression": "lzw", "predictor": True},
    {"planarconfig": "separate"},
    {"compression": "packbits"},
    {"compression": "zstd"},
    {"bigtiff": True},
], ids=["tiled-deflate", "tiled-lzw-predictor", "planar", "packbits", "zstd", "bigtiff"])
def test_16_bit_tiff_of_other_layouts_reads_every_bit(tmp_path, options):
    import tifffile

    path = tmp_path / "x.tif"
    options = dict(options)
    planar = options.get("planarconfig") == "separate"          # then given as (S, Y, X)
    with tifffile.TiffWriter(path, bigtiff=options.pop("bigtiff", False)) as tif:
        tif.write(RGB16.transpose(2, 0, 1) if planar else RGB16, photometric="rgb", **options)
    np.testing.assert_array_equal(read_image(path).color, RGB16)
    if options.get("tile") and options.get("compression") == "zlib":     # libtiff agrees
        import cv2

        np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[:, :, ::-1],
                                      RGB16)


def test_tiled_8_bit_tiff_reads_as_pillow_reads_it(tmp_path):
    import tifffile

    image = RNG.integers(0, 256, (40, 35, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "t.tif", image, photometric="rgb", tile=(16, 16),
                     compression="zlib")
    with Image.open(tmp_path / "t.tif") as im:
        np.testing.assert_array_equal(read_image(tmp_path / "t.tif").color, np.asarray(im))


@pytest.fixture
def three_pages(tmp_path):
    import tifffile

    pages = [RNG.integers(0, 65536, (9, 11, 3), dtype=np.uint16) for _ in range(3)]
    path = tmp_path / "pages.tif"
    with tifffile.TiffWriter(path) as tif:
        for page in pages:
            tif.write(page, photometric="rgb")
    return path, pages


def test_read_image_takes_any_page_and_says_how_many_there_are(three_pages):
    path, pages = three_pages
    first = read_image(path)
    assert first.pages == 3
    np.testing.assert_array_equal(first.color, pages[0])
    for number, page in enumerate(pages, start=1):
        np.testing.assert_array_equal(read_image(path, page=number).color, page)
    with pytest.raises(ImageError, match="has 3 pages; there is no page 4"):
        read_image(path, page=4)
    with pytest.raises(ParameterError, match="page"):
        read_image(path, page=0)


def test_a_page_past_one_of_a_single_image_is_refused(tmp_path):
    write_image(tmp_path / "one.png", Picture(RGB16))
    assert read_image(tmp_path / "one.png", page=1).pages == 1
    with pytest.raises(ImageError, match="has 1 page; there is no page 2"):
        read_image(tmp_path / "one.png", page=2)


def test_apply_page_picks_the_page_and_notes_the_others(run, three_pages, tmp_path):
    path, pages = three_pages
    result = run("apply", path, "-k", "identity", "-o", tmp_path / "p2.tif", "--page", "2")
    assert result.exit_code == 0, result.stderr
    assert "pages" not in result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "p2.tif").color, pages[1])
    result = run("apply", path, "-k", "identity", "-o", tmp_path / "p1.tif")
    assert result.exit_code == 0
    assert f"{path} has 3 pages; page 1 was used" in result.stderr
    np.testing.assert_array_equal(read_image(tmp_path / "p1.tif").color, pages[0])
    result = run("apply", path, "-k", "identity", "-o", tmp_path / "p9.tif", "--page", "9")
    assert result.exit_code == 1 and "there is no page 9" in result.stderr
    assert not (tmp_path / "p9.tif").exists()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_tiff_orientation_is_applied_as_pillow_applies_exif(tmp_path, orientation):
    import tifffile

    image = RNG.integers(0, 256, (5, 8, 3), dtype=np.uint8)
    path = tmp_path / "o.tif"
    tifffile.imwrite(path, image, photometric="rgb", extratags=[(274, 3, 1, orientation, True)])
    with Image.open(path) as im:
        upright = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(read_image(path).color, upright)
    np.testing.assert_array_equal(orient(image, orientation), upright)


def test_tiff_output_is_deflated_with_a_predictor_and_libtiff_reads_it(tmp_path):
    import cv2
    import tifffile

    smooth = np.linspace(0, 65535, 64 * 80 * 3).reshape(64, 80, 3).astype(np.uint16)
    write_image(tmp_path / "s.tif", Picture(smooth))
    with tifffile.TiffFile(tmp_path / "s.tif") as tif:
        page = tif.pages[0]
        assert (page.compression, page.predictor) == (8, 2)       # deflate, horizontal
        assert TIFF_COMPRESSION["compression"] == "zlib"
    assert (tmp_path / "s.tif").stat().st_size < smooth.nbytes / 4
    np.testing.assert_array_equal(cv2.imread(str(tmp_path / "s.tif"), cv2.IMREAD_UNCHANGED),
                                  smooth[:, :, ::-1])


def test_colour_float_tiff_warns_that_pillow_cannot_read_it_back(tmp_path):
    values = RNG.standard_normal((6, 5, 3)).astype(np.float32)
    notes = write_image(tmp_path / "f.tif", Picture(values))
    assert len(notes) == 1 and ".npy" in notes[0] and "Pillow" in notes[0]
    with pytest.raises(OSError):                # the warning is still true of Pillow
        with Image.open(tmp_path / "f.tif") as im:
            im.load()
    np.testing.assert_array_equal(read_image(tmp_path / "f.tif").color, values)
    assert write_image(tmp_path / "g.tif", Picture(values[:, :, :1])) == []    # Pillow's "F"
    with Image.open(tmp_path / "g.tif") as im:
        np.testing.assert_array_equal(np.asarray(im), values[:, :, 0])


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_files_are_the_bytes_stdlib_zlib_wrote_before(monkeypatch, dtype):
    """zlib-ng deflates the pieces: the file is byte for byte the one zlib gave before."""
    from convcli import codecs

    top = np.iinfo(dtype).max
    image = np.concatenate([np.linspace(0, top, 60 * 40 * 3).reshape(60, 40, 3),
                            RNG.integers(0, top, (60, 40, 3))]).astype(dtype)
    with_ng, with_zlib = io.BytesIO(), io.BytesIO()
    write_png(with_ng, image, b"a profile")
    monkeypatch.setattr(codecs, "zlib_ng", zlib)
    write_png(with_zlib, image, b"a profile")
    assert with_ng.getvalue() == with_zlib.getvalue()


def test_the_format_table_drives_the_choice_the_glob_and_the_depths(run):
    assert formats.extensions() == sorted(e[1:] for f in formats.FORMATS for e in f.extensions)
    assert "*.tiff" in formats.input_globs() and "*.npy" in formats.input_globs()
    help_text = run("apply", "--help").stdout
    assert "bmp|jpeg|jpg|npy|png|tif|tiff|webp" in help_text.replace("\n", "").replace(" ", "")
    for fmt in formats.FORMATS:
        for dtype in ("uint8", "uint16", "float32"):
            got = output_dtype(np.dtype(dtype), fmt.name, "clip")
            assert got.name in fmt.depths
            assert (got.name == dtype) == (dtype in fmt.depths)
    with pytest.raises(ParameterError, match="unknown extension '.gif'"):
        formats.format_of("x.gif")


@pytest.mark.parametrize("compression", [None, "zlib", "lzw"])
@pytest.mark.parametrize("keep", ["two thirds", 300])       # 300 bytes: inside the tags
def test_a_truncated_tiff_is_one_error_naming_the_file(tmp_path, compression, keep):
    import tifffile

    buffer = io.BytesIO()
    image = np.tile(RGB16, (3, 3, 1))
    tifffile.imwrite(buffer, image, photometric="rgb", compression=compression, rowsperstrip=8)
    data = buffer.getvalue()
    path = tmp_path / "cut.tif"
    path.write_bytes(data[:keep if isinstance(keep, int) else len(data) * 2 // 3])
    with pytest.raises(ImageError, match="cut.tif: corrupt, truncated or unsupported TIFF"):
        read_image(path)
    code = ("from convcli.errors import ImageError\nfrom convcli.images import read_image\n"
            f"try:\n    read_image({str(path)!r})\nexcept ImageError:\n    pass\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == ""    # no tifffile log lines besides


def test_a_truncated_16_bit_png_is_one_error_naming_the_file(tmp_path):
    write_image(tmp_path / "whole.png", Picture(RGB16))
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:len(data) * 2 // 3])
    with pytest.raises(ImageError, match="cut.png: corrupt or truncated PNG"):
        read_image(tmp_path / "cut.png")
