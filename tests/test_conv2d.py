"""conv2d against hand-worked answers, a naive reference, and scipy."""

import numpy as np
import pytest
from scipy import ndimage

from convcli import conv, conv2d
from convcli.algorithms import NAMES as ALGORITHMS
from convcli.plan import PAD_MODES, make_plan
from naive import naive_conv2d

# Dumoulin & Visin, "A guide to convolution arithmetic for deep learning", figures 2.1 and 2.5.
GUIDE_INPUT = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                        [2, 0, 0, 0, 1]], float)
GUIDE_KERNEL = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], float)


def test_guide_valid_example():
    out = conv2d(GUIDE_INPUT[None], GUIDE_KERNEL[None, None])
    np.testing.assert_array_equal(out[0], [[12, 12, 17], [10, 17, 19], [9, 6, 14]])


def test_guide_padding_1_stride_2_example():
    out = conv2d(GUIDE_INPUT[None], GUIDE_KERNEL[None, None], padding=1, stride=2)
    np.testing.assert_array_equal(out[0], [[6, 17, 3], [8, 17, 13], [6, 4, 4]])


def random_case(rng):
    groups = int(rng.integers(1, 4))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 6, 2))
    sh, sw = (int(v) for v in rng.integers(1, 4, 2))
    dh, dw = (int(v) for v in rng.integers(1, 3, 2))
    h = int(rng.integers(1, 12))
    w = int(rng.integers(1, 12))
    pads = tuple(int(v) for v in rng.integers(0, 5, 4))
    top, bottom, left, right = pads
    # Make sure the kernel fits: grow the image if needed.
    h = max(h, dh * (kh - 1) + 1 - top - bottom)
    w = max(w, dw * (kw - 1) + 1 - left - right)
    return dict(x=rng.standard_normal((int(rng.integers(1, 3)), cin, h, w)),
                weight=rng.standard_normal((cout, cin // groups, kh, kw)),
                bias=rng.standard_normal(cout) if rng.random() < 0.5 else None,
                stride=(sh, sw), padding=pads, dilation=(dh, dw), groups=groups,
                pad_mode=str(rng.choice(PAD_MODES)), mode=str(rng.choice(["corr", "conv"])))


@pytest.mark.parametrize("seed", range(60))
def test_matches_naive_reference_on_random_configurations(seed):
    case = random_case(np.random.default_rng(seed))
    expected = naive_conv2d(**case)
    x = case.pop("x").astype(np.float32)
    got = conv2d(x, case.pop("weight").astype(np.float32), **case)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(20))
def test_float64_in_float64_out_matches_naive_closely(seed):
    case = random_case(np.random.default_rng(1000 + seed))
    expected = naive_conv2d(**case)
    got = conv2d(**case)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


# scipy.ndimage names for convcli's modes (scipy's "reflect" is convcli's symmetric).
SCIPY_MODES = {"zeros": "constant", "reflect": "mirror", "symmetric": "reflect",
               "replicate": "nearest", "circular": "wrap"}


@pytest.mark.parametrize("pad_mode", PAD_MODES)
@pytest.mark.parametrize("shape", [(3, 3), (5, 5), (4, 4), (2, 5), (7, 3)])
def test_same_borders_match_scipy_correlate(pad_mode, shape):
    rng = np.random.default_rng(7)
    image = rng.standard_normal((9, 11))
    kernel = rng.standard_normal(shape)
    expected = ndimage.correlate(image, kernel, mode=SCIPY_MODES[pad_mode])
    # scipy centres a kernel of size k at k // 2.
    kh, kw = shape
    padding = (kh // 2, kh - 1 - kh // 2, kw // 2, kw - 1 - kw // 2)
    got = conv2d(image[None], kernel[None, None], padding=padding, pad_mode=pad_mode)
    np.testing.assert_allclose(got[0], expected, atol=1e-12)


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_mode_conv_matches_scipy_convolve(pad_mode):
    rng = np.random.default_rng(8)
    image = rng.standard_normal((10, 8))
    kernel = rng.standard_normal((3, 5))
    expected = ndimage.convolve(image, kernel, mode=SCIPY_MODES[pad_mode])
    got = conv2d(image[None], kernel[None, None], padding="same", pad_mode=pad_mode, mode="conv")
    np.testing.assert_allclose(got[0], expected, atol=1e-12)


@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_padding_wider_than_image_repeats_like_numpy_pad(pad_mode):
    rng = np.random.default_rng(9)
    x = rng.standard_normal((1, 2, 3, 4))
    weight = rng.standard_normal((2, 2, 3, 3))
    padding = (7, 5, 9, 6)
    expected = naive_conv2d(x, weight, padding=padding, pad_mode=pad_mode)
    np.testing.assert_allclose(conv2d(x, weight, padding=padding, pad_mode=pad_mode), expected,
                               atol=1e-12)


def test_same_padding_puts_the_extra_row_and_column_bottom_right_for_even_kernels():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((1, 6, 7))
    weight = rng.standard_normal((1, 1, 2, 4))
    expected = naive_conv2d(x[None], weight, padding=(0, 1, 1, 2))[0]
    got = conv2d(x, weight, padding="same")
    assert got.shape == (1, 6, 7)
    np.testing.assert_allclose(got, expected, atol=1e-12)


def test_same_padding_with_dilation_keeps_size():
    x = np.random.default_rng(11).standard_normal((2, 9, 10))
    weight = np.ones((3, 2, 3, 2))
    assert conv2d(x, weight, padding="same", dilation=(2, 3)).shape == (3, 9, 10)


def test_full_padding_gives_every_partial_overlap():
    x = np.arange(12.0).reshape(1, 3, 4)
    weight = np.ones((1, 1, 2, 3))
    out = conv2d(x, weight, padding="full")
    assert out.shape == (1, 4, 6)
    assert out[0, 0, 0] == x[0, 0, 0]          # only the top-left pixel overlaps
    assert out.sum() == x.sum() * 6            # every pixel meets every weight once


def test_depthwise_groups_filter_each_channel_on_its_own():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 8, 8))
    weight = rng.standard_normal((3, 1, 3, 3))
    out = conv2d(x, weight, groups=3, padding=1)
    for c in range(3):
        np.testing.assert_allclose(out[c], conv2d(x[c:c + 1], weight[c:c + 1], padding=1)[0],
                                   atol=1e-12)


def test_a_filter_sums_its_channels_and_adds_its_bias():
    x = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 10.0)])
    weight = np.ones((1, 2, 3, 3))
    out = conv2d(x, weight, bias=[0.5])
    np.testing.assert_array_equal(out, np.full((1, 2, 2), 9 * 1 + 9 * 10 + 0.5))


def test_batch_axis_is_kept_and_each_image_is_independent():
    rng = np.random.default_rng(13)
    x = rng.standard_normal((4, 2, 6, 6))
    weight = rng.standard_normal((5, 2, 3, 3))
    out = conv2d(x, weight)
    assert out.shape == (4, 5, 4, 4)
    np.testing.assert_allclose(out[2], conv2d(x[2], weight), atol=1e-12)


def test_integer_inputs_compute_in_float32():
    out = conv2d(np.ones((1, 3, 3), np.uint8), np.ones((1, 1, 3, 3), np.int64))
    assert out.dtype == np.float32 and out[0, 0, 0] == 9


@pytest.mark.parametrize("kwargs, words", [
    (dict(stride=0), "stride"),
    (dict(stride=(1, -2)), "stride"),
    (dict(dilation=0), "dilation"),
    (dict(padding=-1), "negative"),
    (dict(padding="middle"), "padding"),
    (dict(padding=(1, 2, 3)), "padding"),
    (dict(padding="same", stride=2), "stride 1"),
    (dict(pad_mode="bogus"), "pad_mode"),
    (dict(pad_mode="mirror"), "scipy:mirror"),
    (dict(mode="convolve"), "mode"),
    (dict(groups=0), "groups"),
    (dict(groups=2), "groups=2"),
    (dict(bias=[1.0, 2.0]), "bias"),
])
def test_bad_options_raise_value_error_naming_them(kwargs, words):
    x = np.ones((3, 6, 6))
    weight = np.ones((1, 3, 3, 3))
    with pytest.raises(ValueError, match=words):
        conv2d(x, weight, **kwargs)


def test_channel_mismatch_says_what_weight_needs():
    with pytest.raises(ValueError, match=r"weight.shape\[1\] must be 4"):
        conv2d(np.ones((4, 5, 5)), np.ones((2, 3, 3, 3)))


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="must divide"):
        conv2d(np.ones((3, 5, 5)), np.ones((2, 1, 3, 3)), groups=2)


def test_nan_in_kernel_is_refused():
    weight = np.ones((1, 1, 3, 3))
    weight[0, 0, 1, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        conv2d(np.ones((1, 5, 5)), weight)


def test_kernel_larger_than_padded_image_names_both_sizes():
    with pytest.raises(ValueError, match=r"input 4×4 padded to 6×6 is smaller than the 7×7"):
        conv2d(np.ones((1, 4, 4)), np.ones((1, 1, 7, 7)), padding=1)


@pytest.mark.parametrize("x_shape, w_shape", [((5, 5), (1, 1, 3, 3)), ((1, 5, 5), (3, 3)),
                                              ((1, 1, 1, 5, 5), (1, 1, 3, 3))])
def test_wrong_ranks_are_refused(x_shape, w_shape):
    with pytest.raises(ValueError, match="shape"):
        conv2d(np.ones(x_shape), np.ones(w_shape))




@pytest.mark.parametrize("algo", ALGORITHMS)
@pytest.mark.parametrize("seed", range(25))
def test_every_algorithm_matches_the_naive_reference(algo, seed):
    case = random_case(np.random.default_rng(3000 + seed))
    expected = naive_conv2d(**case)
    x = case.pop("x").astype(np.float32)
    got = conv2d(x, case.pop("weight").astype(np.float32), algo=algo, **case)
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * scale)


@pytest.mark.parametrize("algo", ALGORITHMS)
@pytest.mark.parametrize("pad_mode", PAD_MODES)
def test_every_algorithm_agrees_with_direct_on_larger_images(algo, pad_mode):
    rng = np.random.default_rng(17)
    x = rng.standard_normal((2, 4, 70, 83)).astype(np.float32)
    for weight, options in (
        (rng.standard_normal((6, 2, 9, 7)), dict(groups=2, padding=(4, 4, 3, 3))),
        (rng.standard_normal((4, 4, 3, 5)), dict(stride=(2, 3), dilation=(3, 2), padding=(5, 1, 0, 7))),
        (np.outer([1, 4, 6, 4, 1], [1, 2, 1])[None, None].repeat(4, 0), dict(groups=4, padding="same")),
    ):
        weight = weight.astype(np.float32)
        reference = conv2d(x, weight, pad_mode=pad_mode, algo="direct", **options)
        got = conv2d(x, weight, pad_mode=pad_mode, algo=algo, **options)
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-4 * np.abs(reference).max())


@pytest.mark.parametrize("options", [dict(padding=1), dict(groups=2, padding="same"),
                                     dict(stride=(2, 1), dilation=(1, 2), padding=(2, 1, 0, 3))])
def test_gemm_in_bands_of_rows_matches_direct(monkeypatch, options):
    """Patch matrices larger than `GEMM_BAND_VALUES` are built band by band in one buffer,
    the last band shorter."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 23, 19)).astype(np.float32)
    weight = rng.standard_normal((16, 4 // options.get("groups", 1), 3, 3)).astype(np.float32)
    bias = rng.standard_normal(16).astype(np.float32)
    reference = conv2d(x, weight, bias, pad_mode="reflect", algo="direct", **options)
    monkeypatch.setattr(conv, "GEMM_BAND_VALUES", 5 * 36 * 19)       # 5 output rows a band
    got = conv2d(x, weight, bias, pad_mode="reflect", algo="gemm", **options)
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


def test_gemm_in_bands_of_images_matches_direct(monkeypatch):
    """A batch whose patch matrix exceeds `GEMM_BAND_VALUES` is built a few whole images at
    a time (here two of five, the last band one image), each band one product per group."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4, 9, 7)).astype(np.float32)
    weight = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    reference = conv2d(x, weight, bias, padding=1, groups=2, algo="direct")
    monkeypatch.setattr(conv, "GEMM_BAND_VALUES", 2 * 36 * 63)
    plan = make_plan(x.shape, weight.shape, 1, 1, 1, 2, "zeros")
    assert conv.gemm_bands(plan) == (2, 9)
    got = conv2d(x, weight, bias, padding=1, groups=2, algo="gemm")
    np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("kw", range(1, 17))
def test_direct_kernel_rows_of_every_width_match_the_naive_reference(kw):
    """The direct path adds kernel rows in passes of one to five taps (7 = 4 + 3, 15 = 5 +
    5 + 5, …): every width, with and without dilation, as the naive reference computes."""
    rng = np.random.default_rng(kw)
    x = rng.standard_normal((1, 2, 9, 40))
    for dilation in (1, 2):
        weight = rng.standard_normal((2, 1, 2, kw))
        options = dict(padding=(1, 0, dilation * (kw - 1), 0), dilation=(1, dilation), groups=2)
        expected = naive_conv2d(x, weight, **options)
        got = conv2d(x.astype(np.float32), weight.astype(np.float32), algo="direct", **options)
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * kw)


def test_unknown_algorithm_is_refused():
    with pytest.raises(ValueError, match="algo 'winograd'"):
        conv2d(np.ones((1, 5, 5)), np.ones((1, 1, 3, 3)), algo="winograd")
