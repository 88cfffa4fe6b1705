"""`convcli apply`: every option against conv2d and hand-computed values, formats, bad input."""

import numpy as np
import pytest
from PIL import Image

from convcli import conv2d
from convcli.images import read_image
from convcli.kernels import Catalogue, gaussian_kernel
from imagefiles import bomb_png

RNG = np.random.default_rng(3)


@pytest.fixture
def gray(tmp_path):
    """A 23×31 8-bit gray PNG of random values, and its pixels."""
    pixels = RNG.integers(0, 256, (23, 31), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "gray.png")
    return tmp_path / "gray.png", pixels.astype(np.float64)


@pytest.fixture
def npy(tmp_path):
    values = RNG.standard_normal((19, 22, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", values)
    return tmp_path / "x.npy", values


def applied(run, *args):
    result = run("apply", *args)
    assert result.exit_code == 0, result.output
    return result


def ref(image, kernel, **options):
    """conv2d of a (H, W) image with a 2-D kernel, as (H', W') float64."""
    options.setdefault("padding", "same")
    options.setdefault("pad_mode", "reflect")
    return conv2d(image[None], np.asarray(kernel, np.float64)[None, None], **options)[0]


def as_uint8(values):
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("options, expected_options", [
    ([], {}),
    (["--stride", "2"], {"stride": 2, "padding": (1, 1, 1, 1)}),       # auto: centred when strided
    (["--stride", "2", "--padding", "same"], None),
    (["--stride", "2x3", "--padding", "valid"], {"stride": (2, 3), "padding": 0}),
    (["--padding", "full"], {"padding": "full"}),
    (["--padding", "2x1"], {"padding": (2, 1)}),
    (["--padding", "0,2,1,3", "--pad-mode", "circular"], {"padding": (0, 2, 1, 3), "pad_mode": "circular"}),
    (["--pad-mode", "scipy:reflect"], {"pad_mode": "symmetric"}),
    (["--pad-mode", "BORDER_CONSTANT"], {"pad_mode": "zeros"}),
    (["--pad-mode", "edge"], {"pad_mode": "replicate"}),
    (["--dilation", "2"], {"dilation": 2}),
    (["--dilation", "1x3", "--padding", "1,1,3,3"], {"dilation": (1, 3), "padding": (1, 1, 3, 3)}),
    (["--mode", "conv"], {"mode": "conv"}),
])
def test_conv_options_match_conv2d(run, gray, tmp_path, options, expected_options):
    path, image = gray
    kernel = [[1, 2, 0], [0, 3, -1], [2, 0, 1]]
    out = tmp_path / "o.npy"
    if expected_options is None:            # PyTorch refuses padding='same' with a stride
        result = run("apply", path, "-k", "[[1,2,0],[0,3,-1],[2,0,1]]", "-o", out, *options)
        assert result.exit_code == 2 and "needs stride 1" in result.stderr
        return
    applied(run, path, "-k", "[[1,2,0],[0,3,-1],[2,0,1]]", "-o", out, *options)
    np.testing.assert_allclose(np.load(out), ref(image, kernel, **expected_options), rtol=1e-5)


def test_bias_is_added_to_each_output(run, gray, tmp_path):
    path, image = gray
    out = tmp_path / "o.npy"
    applied(run, path, "-k", "box:3", "--bias", "10.5", "-o", out)
    np.testing.assert_allclose(np.load(out), ref(image, np.full((3, 3), 1 / 9)) + 10.5, rtol=1e-5)


def test_normalize_scales_weights_to_sum_one(run, gray, tmp_path):
    path, image = gray
    out = tmp_path / "o.npy"
    applied(run, path, "-k", "1 2 1; 2 4 2; 1 2 1", "--normalize", "-o", out)
    np.testing.assert_allclose(np.load(out), ref(image, np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16),
                               rtol=1e-5)
    result = run("apply", path, "-k", "sobel_x", "--normalize", "-o", tmp_path / "p.png")
    assert result.exit_code == 2 and "sums to zero" in result.stderr


def test_pipeline_applies_kernels_in_order(run, gray, tmp_path):
    path, image = gray
    out = tmp_path / "o.npy"
    applied(run, path, "-k", "gaussian:sigma=1", "-k", "laplacian", "-o", out)
    lap = Catalogue.load(use_env=False).get("laplacian").weights[0]
    expected = ref(ref(image, gaussian_kernel(1)), lap)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-3)


def test_range_policies_by_hand(run, tmp_path):
    step = np.zeros((6, 6), np.uint8)
    step[:, 3:] = 100
    Image.fromarray(step).save(tmp_path / "step.png")
    values = {}
    for policy in ("clip", "abs", "offset", "minmax"):
        out = tmp_path / f"{policy}.png"
        applied(run, tmp_path / "step.png", "-k", "1 -1", "--padding", "valid", "--range", policy, "-o", out)
        values[policy] = read_image(out).color[0, :, 0].tolist()
    # 1·x[j] − 1·x[j+1] along a row 0 0 0 100 100 100: 0 0 −100 0 0
    assert values["clip"] == [0, 0, 0, 0, 0]
    assert values["abs"] == [0, 0, 100, 0, 0]
    assert values["offset"] == [128, 128, 28, 128, 128]
    assert values["minmax"] == [255, 255, 0, 255, 255]


def test_range_auto_follows_the_kernel_and_reports_clipping(run, tmp_path):
    step = np.zeros((6, 6), np.uint8)
    step[:, 3:] = 100
    Image.fromarray(step).save(tmp_path / "step.png")
    result = applied(run, tmp_path / "step.png", "-k", "sobel_x", "-o", tmp_path / "s.png")
    assert "values 0 … 400 before --range abs" in result.stdout
    assert "clipped" in result.stdout
    assert read_image(tmp_path / "s.png").color[0, :, 0].tolist() == [0, 0, 255, 255, 0, 0]


def test_float_range_keeps_raw_values_in_tiff(run, gray, tmp_path):
    path, image = gray
    out = tmp_path / "o.tif"
    applied(run, path, "-k", "sobel_x", "--range", "float", "-o", out)
    expected = ref(image, [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_allclose(read_image(out).color[:, :, 0], expected, rtol=1e-5)
    result = run("apply", path, "-k", "sobel_x", "--range", "float", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and ".tiff or .npy" in result.stderr


@pytest.mark.parametrize("seed", range(8))
def test_npy_path_is_exactly_conv2d(run, npy, tmp_path, seed):
    path, x = npy
    rng = np.random.default_rng(seed)
    groups = int(rng.choice([1, 3]))
    cout = groups * int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    weight = rng.standard_normal((cout, 3 // groups, kh, kw)).astype(np.float32)
    np.save(tmp_path / "w.npy", weight)
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    padding = tuple(int(v) for v in rng.integers(0, 3, 4))
    pad_mode = str(rng.choice(["zeros", "reflect", "symmetric", "replicate", "circular"]))
    out = tmp_path / "y.npy"
    applied(run, path, "-k", f"@{tmp_path / 'w.npy'}", "--stride", f"{stride[0]}x{stride[1]}",
            "--padding", ",".join(map(str, padding)), "--pad-mode", pad_mode, "--groups", groups, "-o", out)
    expected = conv2d(x.transpose(2, 0, 1), weight, stride=stride, padding=padding,
                      pad_mode=pad_mode, groups=groups).transpose(1, 2, 0)
    got = np.load(out)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_issue_example_npy_command(run, npy, tmp_path):
    path, x = npy
    weight = np.random.default_rng(4).standard_normal((5, 3, 3, 2)).astype(np.float32)
    np.save(tmp_path / "w.npy", weight)
    applied(run, path, "-k", f"@{tmp_path / 'w.npy'}", "--stride", "2", "--padding", "1,0,2,1",
            "--pad-mode", "circular", "--groups", "1", "-o", tmp_path / "y.npy")
    expected = conv2d(x.transpose(2, 0, 1), weight, stride=2, padding=(1, 0, 2, 1),
                      pad_mode="circular").transpose(1, 2, 0)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), expected)


def test_4d_kernel_mixes_channels_and_checks_cin(run, samples, tmp_path):
    weight = RNG.standard_normal((2, 3, 3, 3)).astype(np.float32)
    np.save(tmp_path / "w.npy", weight)
    out = tmp_path / "o.npy"
    applied(run, samples / "astronaut.png", "-k", f"@{tmp_path / 'w.npy'}", "-o", out)
    image = read_image(samples / "astronaut.png").color.transpose(2, 0, 1).astype(np.float32)
    expected = conv2d(image, weight, padding="same", pad_mode="reflect").transpose(1, 2, 0)
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-3)
    result = run("apply", samples / "camera.png", "-k", f"@{tmp_path / 'w.npy'}", "-o", out)
    assert result.exit_code == 2
    assert "needs 3 input channel(s), but the image has 1" in result.stderr and "--rgb" in result.stderr
    applied(run, samples / "camera.png", "-k", f"@{tmp_path / 'w.npy'}", "--rgb", "-o", out)


def test_gray_converts_to_luminance_first(run, samples, tmp_path):
    out = tmp_path / "o.npy"
    applied(run, samples / "astronaut.png", "-k", "identity", "--gray", "-o", out)
    rgb = read_image(samples / "astronaut.png").color.astype(np.float64)
    expected = rgb @ [0.299, 0.587, 0.114]
    np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-3)


def test_groups_with_a_2d_kernel_is_refused(run, gray, tmp_path):
    result = run("apply", gray[0], "-k", "sobel_x", "--groups", "2", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "4-D kernels" in result.stderr


@pytest.mark.parametrize("alpha", ["keep", "filter", "drop"])
def test_alpha_policies(run, samples, tmp_path, alpha):
    out = tmp_path / "o.png"
    applied(run, samples / "chelsea_alpha.png", "-k", "box:5", "--alpha", alpha, "-o", out)
    source, result = read_image(samples / "chelsea_alpha.png"), read_image(out)
    if alpha == "drop":
        assert result.alpha is None
    elif alpha == "keep":
        np.testing.assert_array_equal(result.alpha, source.alpha)
    else:
        expected = as_uint8(ref(source.alpha.astype(np.float64), np.full((5, 5), 1 / 25)))
        assert np.abs(result.alpha.astype(int) - expected).max() <= 1


def test_alpha_keep_follows_stride(run, samples, tmp_path):
    out = tmp_path / "o.png"
    applied(run, samples / "chelsea_alpha.png", "-k", "box:3", "--stride", "2", "--padding", "1", "-o", out)
    source, result = read_image(samples / "chelsea_alpha.png"), read_image(out)
    np.testing.assert_array_equal(result.alpha, source.alpha[::2, ::2])


@pytest.mark.parametrize("suffix, dtype", [(".png", np.uint16), (".tif", np.uint16), (".jpg", np.uint8),
                                           (".bmp", np.uint8), (".webp", np.uint8)])
def test_formats_and_bit_depths(run, samples, tmp_path, suffix, dtype):
    out = tmp_path / f"o{suffix}"
    result = applied(run, samples / "astronaut_rgb16.png", "-k", "identity", "-o", out)
    picture = read_image(out)
    assert picture.color.dtype == dtype and picture.color.shape == (128, 128, 3)
    source = read_image(samples / "astronaut_rgb16.png").color
    if dtype == np.uint16:
        np.testing.assert_array_equal(picture.color, source)
    else:
        assert "scaled to 8 bits" in result.stderr
        error = np.abs(picture.color.astype(float) - source / 257)
        assert error.max() <= 0.5 if suffix == ".bmp" else error.mean() < 6     # lossy formats


def test_jpeg_quality_changes_the_file(run, samples, tmp_path):
    applied(run, samples / "astronaut.png", "-k", "identity", "--quality", "30", "-o", tmp_path / "lo.jpg")
    applied(run, samples / "astronaut.png", "-k", "identity", "--quality", "95", "-o", tmp_path / "hi.jpg")
    assert (tmp_path / "lo.jpg").stat().st_size < (tmp_path / "hi.jpg").stat().st_size / 2


def test_format_option_and_output_folder_naming(run, samples, tmp_path):
    applied(run, samples / "camera.png", "-k", "sobel", "-k", "box:3", "-o", f"{tmp_path}/out/",
            "--format", "tiff")
    assert (tmp_path / "out" / "camera_sobel+box-size3.tiff").is_file()


def test_many_output_channels_need_npy_tiff_or_grid(run, samples, tmp_path):
    result = run("apply", samples / "camera.png", "-k", "kirsch_bank", "-o", tmp_path / "o.png")
    assert result.exit_code == 2 and "--grid" in result.stderr
    assert not (tmp_path / "o.png").exists()
    applied(run, samples / "camera.png", "-k", "kirsch_bank", "-o", tmp_path / "o.tif")
    with Image.open(tmp_path / "o.tif") as im:
        assert im.n_frames == 8
    applied(run, samples / "camera.png", "-k", "kirsch_bank", "--grid", "-o", tmp_path / "g.png")
    grid = read_image(tmp_path / "g.png").color[:, :, 0]
    assert grid.shape == (3 * 512 + 4 * 2, 3 * 512 + 4 * 2)       # 8 maps on a 3×3 grid, 2px borders
    assert (grid[:2] == 127).all() and (grid[2:514, 2:514] == read_image(tmp_path / "o.tif").color[:, :, 0]).all()


def test_input_is_never_modified(run, samples, tmp_path):
    before = {p.name: p.read_bytes() for p in samples.iterdir() if p.is_file()}
    for name in ("astronaut.png", "chelsea_alpha.png", "astronaut_gray16.png"):
        applied(run, samples / name, "-k", "sharpen", "-o", f"{tmp_path}/out/")
    assert {p.name: p.read_bytes() for p in samples.iterdir() if p.is_file()} == before


@pytest.mark.parametrize("name, data, code, words", [
    ("empty.png", b"", 1, "empty"),
    ("text.png", b"not an image at all", 1, "not an image"),
    ("corrupt.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 50, 1, "corrupt"),
    ("bomb.png", bomb_png(), 1, "decompression bomb"),
])
def test_bad_inputs_one_line_exit_code_nothing_written(run, tmp_path, name, data, code, words):
    (tmp_path / name).write_bytes(data)
    result = run("apply", tmp_path / name, "-k", "sobel", "-o", tmp_path / "out.png")
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and words in result.stderr and name in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "out.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_truncated_image_fails_cleanly(run, samples, tmp_path):
    data = (samples / "astronaut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    result = run("apply", tmp_path / "cut.png", "-k", "sobel", "-o", tmp_path / "out.png")
    assert result.exit_code == 1 and "truncated" in result.stderr
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("args, words", [
    (["-k", "box:50", "--padding", "valid"], "smaller than the 50×50 kernel"),
    (["--stride", "0"], "--stride"),
    (["--padding", "1,2"], "--padding"),
    (["--padding", "-1"], "--padding"),
    (["--dilation", "0x1"], "--dilation"),
    (["--pad-mode", "mirror"], "imagemagick:mirror"),
    (["--bias", "1,2,3,4"], "--bias has 4 values"),
    (["--gray", "--rgb"], "exclude"),
    (["-o", "x.gif"], "unknown extension"),
])
def test_bad_options_one_line_exit_2(run, gray, tmp_path, args, words):
    path = gray[0]
    base = ["apply", path, "-k", "sobel", "-o", tmp_path / "o.png"]
    if "-k" in args:
        base = ["apply", path, "-o", tmp_path / "o.png"]
    if "-o" in args:
        base = ["apply", path, "-k", "sobel"]
    result = run(*base, *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and words in result.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("algo", ["direct", "separable", "fft", "gemm"])
def test_algo_option_gives_the_same_result_and_is_reported(run, gray, tmp_path, algo):
    path, image = gray
    out, report = tmp_path / "o.npy", tmp_path / "r.json"
    applied(run, path, "-k", "gaussian:sigma=1.5", "--algo", algo, "--threads", "1", "-o", out,
            "--report", report)
    np.testing.assert_allclose(np.load(out), ref(image, gaussian_kernel(1.5)), rtol=1e-4, atol=1e-3)
    import json
    assert json.loads(report.read_text())["stages"][0]["algorithm"] == algo
    assert json.loads(report.read_text())["options"]["algo"] == algo


def test_auto_algorithm_picks_separable_for_a_large_gaussian(run, gray, tmp_path):
    import json
    applied(run, gray[0], "-k", "gaussian:sigma=4", "-o", tmp_path / "o.png", "--report", tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["stages"][0]["algorithm"] == "separable"


def test_threads_from_the_environment(run, gray, tmp_path):
    result = run("apply", gray[0], "-k", "box:3", "-o", tmp_path / "o.png", env={"CONVCLI_THREADS": "1"})
    assert result.exit_code == 0
    bad = run("apply", gray[0], "-k", "box:3", "-o", tmp_path / "o.png", env={"CONVCLI_THREADS": "zero"})
    assert bad.exit_code == 2 and "--threads" in bad.stderr


@pytest.mark.parametrize("alpha", ["keep", "filter"])
@pytest.mark.parametrize("specs, options", [
    (["gaussian:sigma=2", "sobel"], dict()),
    (["box:3", "[[1,2],[3,4]]", "laplacian"], dict(stride=(2, 1), pad_mode="symmetric")),
    (["motion:length=7,angle=30"], dict(dilation=2, padding=(3, 0, 6, 1), pad_mode="circular")),
    (["box:5"], dict(padding="full", pad_mode="zeros", algo="fft")),
    (["sharpen", "box:3"], dict(algo="gemm", mode="conv")),
])
def test_banded_pipeline_equals_whole_image_conv2d(samples, alpha, specs, options):
    """Bands of a few rows, chained through several kernels, give exactly the result of
    conv2d on the whole image (alpha carried or filtered along)."""
    from convcli.images import read_image
    from convcli.kernels import resolve_kernel
    from convcli.pipeline import ConvOptions, Pipeline, kernel_convolution

    picture = read_image(samples / "chelsea_alpha.png")
    kernels = [resolve_kernel(s) for s in specs]
    conv_options = ConvOptions(**options)
    pipeline = Pipeline(picture, kernels, conv_options, alpha=alpha)
    bands = list(pipeline.bands(band_rows=7))
    color = np.concatenate([planes for _, planes, _ in bands], axis=1)
    planes = picture.color.transpose(2, 0, 1).astype(np.float32)
    if alpha == "filter":                   # colour premultiplied by coverage
        coverage = picture.alpha[None].astype(np.float32)
        planes = np.concatenate([planes * coverage / 255, coverage])
    for kernel in kernels:
        conv = kernel_convolution(kernel, planes.shape[0], conv_options)
        o = conv_options
        out = conv2d(planes, conv.weight.astype(np.float32), conv.bias.astype(np.float32),
                     o.stride, conv.padding, o.dilation, conv.groups, o.pad_mode, o.mode, o.algo)
        if kernel.combine == "magnitude":
            out = np.sqrt((out.reshape(planes.shape[0], 2, *out.shape[1:]) ** 2).sum(axis=1))
        planes = out
    expected = planes
    if alpha == "filter":
        coverage = planes[-1] / 255
        expected = np.where(coverage > 1e-6, planes[:-1] / np.maximum(coverage, 1e-6), 0)
        color = np.where(coverage > 1e-3, color, expected)      # near 0 the division magnifies
    np.testing.assert_allclose(color, expected, rtol=1e-4, atol=1e-3 * max(1, np.abs(expected).max()))
    alpha_rows = np.concatenate([a for _, _, a in bands])
    assert alpha_rows.shape == expected.shape[1:]
    if alpha == "filter":
        np.testing.assert_allclose(alpha_rows, planes[-1], rtol=1e-4, atol=1e-2)


def test_output_names_differ_when_kernels_differ(run, gray, tmp_path):
    """-o DIR/ names unnamed kernels by a digest of their weights: two inline or file kernels
    never share an output, the same weights always give the same name."""
    path = gray[0]
    out = tmp_path / "out"
    np.save(tmp_path / "k.npy", np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float32))
    (tmp_path / "other").mkdir()
    np.save(tmp_path / "other" / "k.npy", np.ones((3, 3), np.float32) / 9)
    specs = ["[[1,2,1],[2,4,2],[1,2,1]]/16", "1 2 1; 2 4 2; 1 2 1", "[[0,1,0],[1,1,1],[0,1,0]]",
             f"@{tmp_path / 'k.npy'}", f"@{tmp_path / 'other' / 'k.npy'}"]
    for spec in specs:
        assert run("apply", path, "-k", spec, "-o", f"{out}/").exit_code == 0
    from convcli.kernels import resolve_kernel

    names = {p.name for p in out.iterdir()}
    assert names == {f"{path.stem}_{resolve_kernel(s).name}{path.suffix}" for s in specs}
    assert len(names) == 5 and {n.split("_")[1].split("-")[0] for n in names} == {"custom", "k"}
    assert resolve_kernel(specs[2]).name == resolve_kernel("0 1 0; 1 1 1; 0 1 0").name
    assert resolve_kernel("[[-0.0, 1]]").name == resolve_kernel("[[0, 1]]").name


def test_parametric_names_stay_readable():
    from convcli.kernels import resolve_kernel

    assert resolve_kernel("dog:sigma1=1,sigma2=2").name == "dog-sigma1=1-sigma2=2"
    assert resolve_kernel("gaussian:sigma=2").name == "gaussian-sigma2"
    assert resolve_kernel("box:3x5").name == "box-size3-width5"


def test_alpha_filter_blurs_premultiplied_colour_without_a_dark_halo(run, tmp_path):
    """A red square on transparent black, blurred with --alpha filter and composited over
    white: red stays 255 everywhere (no dark fringe) and green = 255·(1 − alpha)."""
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[10:22, 10:22] = (255, 0, 0, 255)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "square.png")
    result = run("apply", tmp_path / "square.png", "-k", "box:5", "--alpha", "filter",
                 "-o", tmp_path / "blur.png")
    assert result.exit_code == 0, result.output
    out = np.asarray(Image.open(tmp_path / "blur.png")).astype(float)
    a = out[:, :, 3:] / 255
    assert a.min() == 0 and a.max() == 1 and ((a > 0) & (a < 1)).sum() > 100
    over_white = out[:, :, :3] * a + 255 * (1 - a)
    assert over_white[:, :, 0].min() >= 254.5
    np.testing.assert_allclose(over_white[:, :, 1], 255 * (1 - a[:, :, 0]), atol=1.0)


def test_report_times_each_stage_on_its_own(samples, tmp_path, run):
    """Each stage's seconds exclude the stages before it: together they fit inside the
    convolution's time."""
    import json

    result = run("apply", samples / "camera.png", "-k", "sobel", "-k", "gaussian:sigma=2",
                 "-o", tmp_path / "out.tif", "--report", tmp_path / "r.json")
    assert result.exit_code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    seconds = [stage["seconds"] for stage in report["stages"]]
    assert len(seconds) == 2 and min(seconds) > 0
    assert sum(seconds) <= report["times"]["convolve"]
