"""The conv-vs-dense comparison, the equivalent matrix and the patch matrix."""

import json

import numpy as np
import pytest

from convcli import conv2d
from convcli.plan import PAD_MODES, make_plan
from convcli.matrix import (DENSE_LIMIT, equivalent_matrix, equivalent_matrix_sparse,
                            grouped_product, im2col, matrix_nonzeros)
from test_conv2d import random_case


def stats_json(run, *args):
    result = run("stats", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_article_5x5_to_3x3_is_9_weights_against_225(run):
    stats = stats_json(run, "--input", "5x5", "-k", "box:3")
    assert stats["output_shape"] == [1, 3, 3]
    assert stats["conv_weights"] == 9 and stats["dense_weights"] == 225


def test_article_4x4_to_2x2_is_9_weights_against_64(run):
    stats = stats_json(run, "--input", "4x4", "-k", "sobel_x")
    assert stats["output_shape"] == [1, 2, 2]
    assert stats["conv_weights"] == 9 and stats["dense_weights"] == 64


def test_article_224x224x3_into_75000_outputs_is_over_ten_billion_weights(run):
    stats = stats_json(run, "--input", "3x224x224", "-k", "box:3", "--dense-out", "75000")
    assert stats["dense_weights"] == 11_289_600_000
    assert stats["dense_bytes_float32"] == 4 * 11_289_600_000


def test_json_has_the_documented_keys(run):
    stats = stats_json(run, "--input", "3x32x32", "-k", "box:5", "--cout", "16", "--padding", "2")
    for key in ("input_shape", "output_shape", "conv_weights", "conv_bias", "conv_params",
                "dense_weights", "dense_bias", "dense_params", "param_ratio", "conv_macs",
                "dense_macs", "matrix_nonzeros", "matrix_density"):
        assert key in stats
    # a CNN layer: 16 filters of 3×5×5 plus 16 biases; dense 3072 → 16384 plus 16384 biases
    assert stats["conv_weights"] == 16 * 3 * 25 and stats["conv_bias"] == 16
    assert stats["dense_weights"] == 3072 * 16384 and stats["dense_bias"] == 16384
    assert stats["conv_macs"] == 16 * 32 * 32 * 75
    assert stats["param_ratio"] == pytest.approx((3072 * 16384 + 16384) / (1200 + 16))


def test_stats_counts_groups_stride_and_no_bias(run):
    stats = stats_json(run, "--input", "8x20x20", "-k", "box:3", "--cout", "4", "--groups", "2",
                       "--stride", "2", "--no-bias")
    assert stats["output_shape"] == [4, 9, 9]
    assert stats["conv_weights"] == 4 * 4 * 9 and stats["conv_bias"] == 0
    assert stats["conv_macs"] == 4 * 81 * 4 * 9


def test_stats_table_shows_the_comparison(run):
    result = run("stats", "--input", "5x5", "-k", "box:3")
    assert result.exit_code == 0
    assert "225" in result.stdout and "25×" in result.stdout and "nonzeros" in result.stdout


def test_stats_does_not_import_numba():
    import subprocess
    import sys
    code = ("import sys; from convcli.cli import cli; "
            "cli.main(['stats', '--input', '3x64x64', '-k', 'sobel', '--json'], standalone_mode=False); "
            "sys.exit(3 if 'numba' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_article_matrix_rows_for_a_3x3_kernel_on_4x4(run):
    k = np.arange(1, 10, dtype=float).reshape(1, 1, 3, 3)
    m = equivalent_matrix((1, 4, 4), k)
    k11, k12, k13, k21, k22, k23, k31, k32, k33 = range(1, 10)
    np.testing.assert_array_equal(m, [
        [k11, k12, k13, 0, k21, k22, k23, 0, k31, k32, k33, 0, 0, 0, 0, 0],
        [0, k11, k12, k13, 0, k21, k22, k23, 0, k31, k32, k33, 0, 0, 0, 0],
        [0, 0, 0, 0, k11, k12, k13, 0, k21, k22, k23, 0, k31, k32, k33, 0],
        [0, 0, 0, 0, 0, k11, k12, k13, 0, k21, k22, k23, 0, k31, k32, k33]])
    result = run("matrix", "--input", "4x4", "-k", "[[1,2,3],[4,5,6],[7,8,9]]")
    assert result.exit_code == 0
    assert "k11  k12  k13    0  k21  k22  k23    0  k31  k32  k33    0    0    0    0    0" in result.stdout
    error = float(result.stdout.rsplit("= ", 1)[1])
    assert error < 1e-12


def test_padding_weights_land_on_the_pixel_they_copy():
    # 1-D view: 3 pixels, kernel [a b c], reflect padding 1: row 0 reads (x1, x0, x1)
    m = equivalent_matrix((1, 1, 3), np.array([[[[1.0, 10.0, 100.0]]]]), padding=(0, 0, 1, 1),
                          pad_mode="reflect")
    np.testing.assert_array_equal(m, [[10, 101, 0], [1, 10, 100], [0, 101, 10]])
    m = equivalent_matrix((1, 1, 3), np.array([[[[1.0, 10.0, 100.0]]]]), padding=(0, 0, 1, 1),
                          pad_mode="replicate")
    np.testing.assert_array_equal(m, [[11, 100, 0], [1, 10, 100], [0, 1, 110]])


@pytest.mark.parametrize("seed", range(40))
def test_equivalent_matrix_times_x_is_conv2d(seed):
    rng = np.random.default_rng(500 + seed)
    case = random_case(rng)
    x = case.pop("x")[0]
    if seed % 4 == 0:
        case["weight"][case["weight"] < 0.2] = 0           # zeros in the kernel
    sparse = equivalent_matrix_sparse(x.shape, **{k: v for k, v in case.items() if k != "bias"})
    m = equivalent_matrix(x.shape, **{k: v for k, v in case.items() if k != "bias"})
    bias = case.pop("bias")
    bias = np.zeros(case["weight"].shape[0]) if bias is None else bias
    y = conv2d(x, bias=bias, **case)
    row_bias = np.repeat(bias, y.shape[1] * y.shape[2])
    np.testing.assert_allclose(m @ x.ravel() + row_bias, y.ravel(), atol=1e-10)
    np.testing.assert_allclose(sparse @ x.ravel() + row_bias, y.ravel(), atol=1e-10)
    plan = make_plan(x.shape, case["weight"].shape, case["stride"], case["padding"],
                     case["dilation"], case["groups"], case["pad_mode"], case["mode"])
    assert matrix_nonzeros(plan, case["weight"]) == np.count_nonzero(m) == sparse.value.size
    flipped = case["weight"][:, :, ::-1, ::-1] if case["mode"] == "conv" else case["weight"]
    np.testing.assert_allclose(grouped_product(flipped, im2col(x, plan), case["groups"]),
                               (y - bias[:, None, None]).reshape(y.shape[0], -1), atol=1e-10)


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_every_padding_mode_is_linear(pad_mode):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 5, 6))
    w = rng.standard_normal((3, 2, 3, 2))
    m = equivalent_matrix(x.shape, w, padding=(2, 1, 3, 2), pad_mode=pad_mode, stride=(1, 2))
    np.testing.assert_allclose(m @ x.ravel(), conv2d(x, w, padding=(2, 1, 3, 2), pad_mode=pad_mode,
                                                     stride=(1, 2)).ravel(), atol=1e-12)


def test_dense_matrix_over_the_limit_is_refused_and_points_to_sparse(run):
    with pytest.raises(ValueError, match="equivalent_matrix_sparse"):
        equivalent_matrix((3, 256, 256), np.ones((8, 3, 3, 3)), padding=1)
    assert (8 * 256 * 256) * (3 * 256 * 256) > DENSE_LIMIT
    result = run("matrix", "--input", "3x256x256", "-k", "box:3", "--cout", "8", "--padding", "1",
                 "--npy", "m.npy")
    assert result.exit_code == 2 and "--sparse" in result.stderr and "entries" in result.stderr


def test_sparse_form_is_saved_and_verified_for_large_layers(run, tmp_path):
    out = tmp_path / "m.npz"
    result = run("matrix", "--input", "3x96x96", "-k", "box:3", "--cout", "8", "--padding", "1",
                 "--sparse", out, "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["max_abs_error"] < 1e-9
    saved = np.load(out)
    assert tuple(saved["shape"]) == (8 * 96 * 96, 3 * 96 * 96)
    assert saved["shape"].prod() > DENSE_LIMIT
    # per (filter, channel): 9 weights for interior outputs, 6 on edges, 4 in corners
    assert saved["value"].size == summary["nonzeros"] == 8 * 3 * (94 * 94 * 9 + 4 * 94 * 6 + 4 * 4)


def test_matrix_png_npy_and_im2col(run, tmp_path):
    result = run("matrix", "--input", "2x5x5", "-k", "sobel_y", "--padding", "same", "--pad-mode",
                 "circular", "--png", tmp_path / "m.png", "--npy", tmp_path / "m.npy")
    assert result.exit_code == 0, result.output
    m = np.load(tmp_path / "m.npy")
    x = np.random.default_rng(2).standard_normal((2, 5, 5))
    w = np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], float)
    expected = conv2d(x, np.stack([w, w])[:, None], padding="same", pad_mode="circular", groups=2)
    np.testing.assert_allclose(m @ x.ravel(), expected.ravel(), atol=1e-12)
    from PIL import Image
    with Image.open(tmp_path / "m.png") as im:
        assert im.size[0] > 50 * 40 // 2
    result = run("matrix", "--input", "4x4", "-k", "[[1,2,3],[4,5,6],[7,8,9]]", "--im2col", "--json")
    summary = json.loads(result.stdout)
    assert summary["im2col_shape"] == [9, 4] and summary["max_abs_error"] < 1e-12
    shown = run("matrix", "--input", "4x4", "-k", "[[1,2,3],[4,5,6],[7,8,9]]", "--im2col").stdout
    assert "x11  x12  x21  x22" in shown


def test_apply_report_and_stats(run, samples, tmp_path):
    report_path = tmp_path / "r.json"
    result = run("apply", samples / "camera.png", "-k", "gaussian_5", "-k", "sobel", "-o",
                 tmp_path / "o.png", "--report", report_path, "--stats")
    assert result.exit_code == 0, result.output
    assert "convolution vs dense layer" in result.stdout
    report = json.loads(report_path.read_text())
    assert report["input_shape"] == [512, 512, 1] and report["output_shape"] == [512, 512, 1]
    first, second = report["stages"]
    assert first["kernel"] == "gaussian_5" and second["kernel"] == "sobel"
    assert second["layer_weight_shape"] == [2, 1, 3, 3]
    assert second["conv_vs_dense"]["conv_weights"] == 18
    assert second["conv_vs_dense"]["dense_weights"] == (512 * 512) * (2 * 512 * 512)
    assert first["weights"][0][2][2] == pytest.approx(36 / 256)
    assert first["algorithm"] and set(report["times"]) == {"read", "convolve", "write"}
    assert report["range"]["max"] > 255 and 0 < report["range"]["clipped_fraction"] < 1
