"""Small jobs run without loading the compiled core, and give the same results."""

import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from convcli import _core_numpy, backend
from convcli._core import codecs as core_codecs, pixels as core_pixels
from convcli.algorithms import ALGORITHMS
from convcli.images import Picture, read_image, write_image
from convcli.plan import choose_algorithm, make_plan
from imagefiles import png_chunk
from naive import naive_png_filter_rows, naive_quantize

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def without_core(monkeypatch):
    """Make the library behave as in a one-shot process that has not loaded the compiled
    core."""
    monkeypatch.setattr(backend, "jit_loaded", lambda: False)
    monkeypatch.setattr(backend, "_forgone", 0.0)
    with backend.one_shot():
        yield


values = arrays(np.float32, st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 9)),
                elements=st.floats(-1e4, 1e4, width=32) | st.sampled_from([np.nan, np.inf, -np.inf]))


@settings(max_examples=150, deadline=None)
@given(planes=values, absolute=st.booleans(), offset=st.sampled_from([0.0, 127.5, 128.0]),
       scale=st.sampled_from([1.0, 0.5, 257.0, 1 / 255]),
       dtype=st.sampled_from([np.uint8, np.uint16, np.float32]),
       block=st.sampled_from([1, 7, _core_numpy.QUANTIZE_BLOCK]))
def test_numpy_pixel_helpers_match_the_reference_and_the_compiled_ones(planes, absolute, offset,
                                                                       scale, dtype, block):
    top = 1.0 if dtype == np.float32 else float(np.iinfo(dtype).max)
    rounding = dtype != np.float32
    shape = planes.shape[1:] + planes.shape[:1]
    reference, numpy_only = np.empty(shape, dtype), np.empty(shape, dtype)
    default, _core_numpy.QUANTIZE_BLOCK = _core_numpy.QUANTIZE_BLOCK, block   # rows a block
    try:
        got = _core_numpy.quantize(planes, absolute, offset, scale, top, rounding, numpy_only)
    finally:
        _core_numpy.QUANTIZE_BLOCK = default
    expected = naive_quantize(planes, absolute, offset, scale, top, rounding, reference)
    np.testing.assert_array_equal(numpy_only, reference)
    np.testing.assert_array_equal(np.array(got, float), np.array(expected, float))
    np.testing.assert_array_equal(np.array(_core_numpy.finite_range(planes), float),
                                  np.array(core_pixels.finite_range(planes), float))


def test_without_the_core_the_planner_picks_numpy_or_fft(without_core):
    rng = np.random.default_rng(5)
    small = make_plan((1, 3, 64, 64), (3, 1, 3, 3), padding=1, groups=3)
    assert choose_algorithm(small, rng.standard_normal((3, 1, 3, 3))) == "numpy"
    big = make_plan((1, 3, 2048, 2048), (3, 1, 5, 5), padding=2, groups=3)
    assert choose_algorithm(big, rng.standard_normal((3, 1, 5, 5))) != "numpy"
    for shape, weight in (((1, 3, 300, 300), (3, 3, 31, 31)), ((1, 8, 40, 40), (16, 8, 3, 3))):
        conv = make_plan(shape, weight, padding="same")
        assert choose_algorithm(conv, rng.standard_normal(weight), jit=False) in ("numpy", "fft")
    assert {name for name, a in ALGORITHMS.items() if a.compiled} < set(ALGORITHMS)


def _apply(args, tmp_path, name):
    """Run `convcli apply` in a fresh process; (whether it imported numba, output pixels)."""
    out = tmp_path / name
    code = ("import sys; from convcli.cli import cli; "
            f"code = cli.main({['apply', *map(str, args), '-o', str(out)]!r}, "
            "standalone_mode=False); sys.exit(code or (3 if 'numba' in sys.modules else 0))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode in (0, 3), result.stderr
    return result.returncode == 3, read_image(out)


@pytest.mark.parametrize("image, kernels", [
    ("astronaut.png", ["-k", "sobel_x"]),
    ("chelsea_alpha.png", ["-k", "gaussian:5", "-k", "sharpen", "--stride", "2"]),
    ("camera.png", ["-k", "box:7", "--pad-mode", "circular", "--range", "minmax"]),
])
def test_a_small_job_runs_without_the_core_and_matches_it(tmp_path, image, kernels):
    source = ROOT / "samples" / image
    jit, plain = _apply([source, *kernels], tmp_path, "plain.png")
    assert not jit
    jit, compiled = _apply([source, *kernels, "--algo", "direct"], tmp_path, "compiled.png")
    assert jit
    # float32 sums in another order: a value on a rounding boundary may move by one level
    difference = np.abs(plain.color.astype(int) - compiled.color)
    assert difference.max() <= 1 and np.count_nonzero(difference) < 1e-3 * difference.size
    assert (plain.alpha is None) == (compiled.alpha is None)
    if plain.alpha is not None:
        np.testing.assert_array_equal(plain.alpha, compiled.alpha)


def test_sixteen_bit_png_output_needs_no_core_and_matches_it(tmp_path):
    source = tmp_path / "in.tiff"           # read without the core (unlike 16-bit PNG)
    write_image(source, read_image(ROOT / "samples" / "astronaut_rgb16.png"))
    jit, plain = _apply([source, "-k", "box:3"], tmp_path, "plain.png")
    assert not jit and plain.color.dtype == np.uint16
    jit, compiled = _apply([source, "-k", "box:3", "--algo", "direct"], tmp_path, "compiled.png")
    assert jit
    assert np.abs(plain.color.astype(int) - compiled.color).max() <= 1


byte_rows = arrays(np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 40)),
                   elements=st.integers(0, 255) | st.integers(0, 3))
#: smooth rows (running sums of small steps), where the Up, Average and Paeth filters win
smooth_rows = arrays(np.int64, st.tuples(st.integers(1, 30), st.integers(1, 40)),
                     elements=st.integers(-2, 2)).map(
    lambda steps: (steps.cumsum(0).cumsum(1) % 256).astype(np.uint8))


@settings(max_examples=200, deadline=None)
@given(rows=byte_rows | smooth_rows,
       bpp=st.sampled_from([1, 2, 3, 4, 6, 8]), prior_seed=st.integers(0, 2),
       block=st.sampled_from([1, 17, _core_numpy.PNG_FILTER_BLOCK]))
def test_png_filters_with_and_without_the_core_match_the_specification(rows, bpp, prior_seed,
                                                                       block):
    """Both give, for every row, the filter with the most zero bytes (the first on ties),
    as a byte-by-byte reading of the PNG specification does; numpy in blocks of any size."""
    rows = rows[:, :rows.shape[1] // bpp * bpp]         # whole pixels of bpp bytes
    assume(rows.shape[1] > 0)
    prior = np.random.default_rng(prior_seed).integers(0, 4, rows.shape[1], dtype=np.uint8)
    expected = naive_png_filter_rows(rows, bpp, prior)
    default, _core_numpy.PNG_FILTER_BLOCK = _core_numpy.PNG_FILTER_BLOCK, block
    try:
        np.testing.assert_array_equal(_core_numpy.png_filter_rows(rows, bpp, prior), expected)
    finally:
        _core_numpy.PNG_FILTER_BLOCK = default
    np.testing.assert_array_equal(core_codecs.png_filter_rows(rows, bpp, prior), expected)


def _png(pixels: np.ndarray, transparent: bytes | None = None) -> bytes:
    height, width, channels = pixels.shape
    kind = {1: 0, 2: 4, 3: 2, 4: 6}[channels]
    raw = b"".join(b"\0" + row.tobytes() for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", width.to_bytes(4, "big") +
                                             height.to_bytes(4, "big") + bytes([8, kind, 0, 0, 0]))
            + (png_chunk(b"tRNS", transparent) if transparent else b"")
            + png_chunk(b"IDAT", zlib.compress(raw)) + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("channels, transparent", [(1, None), (2, None), (3, None), (4, None),
                                                   (3, b"\0\7\0\1\0\2"), (1, b"\0\7")])
def test_pillow_and_imagecodecs_decoders_read_the_same_picture(tmp_path, monkeypatch, channels,
                                                               transparent):
    from convcli import codecs

    pixels = np.random.default_rng(channels).integers(0, 8, (9, 7, channels), dtype=np.uint8)
    if transparent:
        pixels[0, 0] = np.frombuffer(transparent, ">u2")       # one transparent pixel
    path = tmp_path / "in.png"
    path.write_bytes(_png(pixels, transparent))
    plain = read_image(path)                                # small 8-bit: Pillow
    monkeypatch.setattr(codecs, "PNG_PILLOW_BYTES", 0)
    compiled = read_image(path)                             # as if large: imagecodecs
    np.testing.assert_array_equal(plain.color, compiled.color)
    assert (plain.alpha is None) == (compiled.alpha is None)
    if compiled.alpha is not None:
        np.testing.assert_array_equal(plain.alpha, compiled.alpha)
    if transparent:
        assert compiled.alpha is not None and compiled.alpha.min() == 0


@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_the_png_encoder_writes_the_same_file_with_or_without_the_core(tmp_path, monkeypatch,
                                                                       channels, dtype):
    rng = np.random.default_rng(channels)
    top = np.iinfo(dtype).max
    color = rng.integers(0, top, (33, 20, 1 if channels < 3 else 3), dtype=dtype, endpoint=True)
    alpha = (rng.integers(0, top, (33, 20), dtype=dtype, endpoint=True) if channels % 2 == 0
             else None)
    picture = Picture(color, alpha, b"not really a profile")
    write_image(tmp_path / "compiled.png", picture)
    monkeypatch.setattr(backend, "jit_loaded", lambda: False)
    write_image(tmp_path / "plain.png", picture)
    assert (tmp_path / "plain.png").read_bytes() == (tmp_path / "compiled.png").read_bytes()
    with Image.open(tmp_path / "plain.png") as im:
        assert im.info.get("icc_profile") == b"not really a profile"
    stored = read_image(tmp_path / "plain.png")
    np.testing.assert_array_equal(stored.color, color)
    if alpha is not None:
        np.testing.assert_array_equal(stored.alpha, alpha)
