"""Gradients against their definitions (tests/naive.py) and against finite differences."""

import numpy as np
import pytest

from convcli import conv2d, grad
from convcli.conv import max_pool2d
from naive import naive_conv2d, naive_conv2d_input, naive_conv2d_weight
from test_conv2d import random_case


def _gradient_case(seed):
    case = random_case(np.random.default_rng(seed))
    case.pop("bias"), case.pop("mode")
    out = naive_conv2d(case["x"], case["weight"], **{k: case[k] for k in (
        "stride", "padding", "dilation", "groups", "pad_mode")})
    options = {k: case[k] for k in ("stride", "padding", "dilation", "groups", "pad_mode")}
    g = np.random.default_rng(seed + 1).standard_normal(out.shape)
    return case["x"], case["weight"], g, options


@pytest.mark.parametrize("algo", ["auto", "gemm"])
@pytest.mark.parametrize("seed", range(40))
def test_input_gradient_matches_naive_on_random_configurations(seed, algo):
    x, weight, g, options = _gradient_case(seed)
    got = grad.conv2d_input(x.shape, weight, g, **options, algo=algo)
    np.testing.assert_allclose(got, naive_conv2d_input(x.shape, weight, g, **options),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algo", ["auto", "gemm"])
@pytest.mark.parametrize("seed", range(40))
def test_weight_gradient_matches_naive_on_random_configurations(seed, algo):
    x, weight, g, options = _gradient_case(seed)
    got = grad.conv2d_weight(x, weight.shape, g, **options, algo=algo)
    np.testing.assert_allclose(got, naive_conv2d_weight(x, weight.shape, g, **options),
                               rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("pad_mode", ["zeros", "reflect", "symmetric", "replicate", "circular"])
@pytest.mark.parametrize("padding", [1, (2, 0, 1, 3), "same", "full"])
def test_conv_gradients_match_finite_differences(pad_mode, padding):
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 4, 7, 6))
    weight = rng.standard_normal((6, 2, 3, 2))
    options = dict(stride=1 if padding == "same" else (2, 1), padding=padding,
                   dilation=(1, 2), groups=2, pad_mode=pad_mode)
    g = rng.standard_normal(conv2d(x, weight, **options).shape)

    def loss(x, weight):
        return float(np.sum(conv2d(x, weight, **options) * g))

    gx = grad.conv2d_input(x.shape, weight, g, **options)
    gw = grad.conv2d_weight(x, weight.shape, g, **options)
    for array, gradient, f in ((x, gx, lambda a: loss(a, weight)), (weight, gw, lambda a: loss(x, a))):
        for index in map(tuple, rng.integers(0, array.shape, (12, array.ndim))):
            step = np.zeros_like(array)
            step[index] = 1e-4
            numeric = (f(array + step) - f(array - step)) / 2e-4
            assert gradient[index] == pytest.approx(numeric, rel=1e-6, abs=1e-8)


def test_gemm_gradients_in_bands_equal_one_band(monkeypatch):
    """Patch matrices too large for one band are built band by band (images, then rows);
    the gradients summed over bands are the same."""
    from convcli import conv

    rng = np.random.default_rng(5)
    x, weight = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((6, 2, 3, 3))
    options = dict(stride=2, padding=1, dilation=1, groups=2, pad_mode="reflect")
    g = rng.standard_normal(conv2d(x, weight, **options).shape)
    whole = (grad.conv2d_input(x.shape, weight, g, **options, algo="gemm"),
             grad.conv2d_weight(x, weight.shape, g, **options, algo="gemm"))
    monkeypatch.setattr(conv, "GEMM_BAND_VALUES", 64)
    plan = conv.make_plan(x.shape, weight.shape, **options)
    assert len(list(conv.gemm_band_ranges(plan))) > x.shape[0]
    np.testing.assert_allclose(grad.conv2d_input(x.shape, weight, g, **options, algo="gemm"),
                               whole[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(grad.conv2d_weight(x, weight.shape, g, **options, algo="gemm"),
                               whole[1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("chunk_values", [2**17, 1])
def test_gemm_backward_channel_major_matches_the_batch_layout(monkeypatch, chunk_values):
    """The layout training keeps, (C, N, H, W), gives the same gradients transposed, in
    one chunk of images or one image at a time."""
    from convcli import conv

    monkeypatch.setattr(conv, "CHUNK_VALUES", chunk_values)
    rng = np.random.default_rng(8)
    x, weight = rng.standard_normal((3, 4, 9, 8)), rng.standard_normal((6, 2, 3, 2))
    options = dict(stride=(2, 1), padding=(1, 1, 2, 2), dilation=(1, 2), groups=2,
                   pad_mode="reflect")
    g = rng.standard_normal(conv2d(x, weight, **options).shape)
    plan = conv.make_plan(x.shape, weight.shape, **options)
    major = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    out, patches = conv.gemm_channel_major(major, weight, np.zeros(weight.shape[0]), plan)
    assert (patches is None) == (chunk_values == 1)
    np.testing.assert_allclose(out.transpose(1, 0, 2, 3), conv2d(x, weight, **options),
                               rtol=1e-12, atol=1e-12)
    gw, gb, gx = grad.gemm_backward(plan, weight, np.ascontiguousarray(g.transpose(1, 0, 2, 3)),
                                    x=major, patches=patches, channel_major=True)
    np.testing.assert_allclose(gx.transpose(1, 0, 2, 3),
                               naive_conv2d_input(x.shape, weight, g, **options), atol=1e-9)
    np.testing.assert_allclose(gw, naive_conv2d_weight(x, weight.shape, g, **options), atol=1e-9)
    np.testing.assert_allclose(gb, g.sum(axis=(0, 2, 3)), atol=1e-9)


def test_float32_gradients_stay_float32_and_close():
    x, weight, g, options = _gradient_case(3)
    got = grad.conv2d_input(x.shape, weight.astype(np.float32), g.astype(np.float32), **options)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, naive_conv2d_input(x.shape, weight, g, **options),
                               rtol=1e-4, atol=1e-4)


def test_grad_output_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="grad_output must have"):
        grad.conv2d_input((1, 1, 5, 5), np.ones((1, 1, 3, 3)), np.ones((1, 1, 4, 4)))


def _numeric_gradient(f, x, rng, count=15):
    for index in map(tuple, rng.integers(0, x.shape, (count, x.ndim))):
        step = np.zeros_like(x)
        step[index] = 1e-5
        yield index, (f(x + step) - f(x - step)) / 2e-5


@pytest.mark.parametrize("kernel,stride,padding,dilation", [
    (2, None, 0, 1), (3, 2, 1, 1), ((2, 3), (1, 2), (1, 0), (2, 1))])
def test_max_pool_gradient_matches_finite_differences(kernel, stride, padding, dilation):
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 9, 8))
    out = max_pool2d(x, kernel, stride, padding, dilation)
    g = rng.standard_normal(out.shape)
    got = grad.max_pool2d_backward(x, g, kernel, stride, padding, dilation)
    for index, numeric in _numeric_gradient(
            lambda a: float(np.sum(max_pool2d(a, kernel, stride, padding, dilation) * g)), x, rng):
        assert got[index] == pytest.approx(numeric, abs=1e-6)


def test_max_pool_gradient_goes_to_the_first_of_equal_values():
    x = np.ones((1, 1, 2, 2))
    got = grad.max_pool2d_backward(x, np.array([[[[5.0]]]]), 2)
    np.testing.assert_array_equal(got[0, 0], [[5, 0], [0, 0]])


def test_max_unpool_after_a_relu_is_both_backward_passes():
    """Given the pooled values, unpooling passes only positive maxima: the ReLU's backward
    pass before it, fused."""
    from convcli.conv import max_pool_planned, pool_plan

    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    relu = np.maximum(x, 0)
    plan = pool_plan(relu.shape, 2)
    pooled, where = max_pool_planned(relu, plan, indices=True)
    g = rng.standard_normal(pooled.shape).astype(np.float32)
    fused = grad.max_unpool(g, where, plan, pooled)
    np.testing.assert_array_equal(
        fused, grad.relu_backward(x, grad.max_pool2d_backward(relu, g, 2)))
    assert (fused != 0).sum() == (pooled > 0).sum() < pooled.size


@pytest.mark.parametrize("seed", range(30))
def test_max_pool_and_its_argmax_match_naive_on_random_configurations(seed):
    """Values and argmax positions, with ties (small integers), for 2×2 windows (the
    vectorised path) and others, padding, strides and dilations of every kind."""
    from convcli.conv import max_pool_planned, pool_plan
    from naive import naive_max_pool2d

    rng = np.random.default_rng(seed)
    kernel = (2, 2) if seed % 2 else tuple(rng.integers(1, 4, 2))
    dilation = (1, 1) if seed % 4 == 1 else tuple(rng.integers(1, 3, 2))
    stride = tuple(rng.integers(1, 4, 2))
    padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
    h, w = (int(v) for v in rng.integers(max(kernel) * 2, 12, 2))
    x = rng.integers(-3, 4, (2, 3, h, w)).astype(np.float32)
    plan = pool_plan(x.shape, kernel, stride, padding, dilation)
    got, where = max_pool_planned(x, plan, indices=True)
    expected, expected_where = naive_max_pool2d(x, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(where, expected_where)


def test_max_pool_records_where_each_maximum_is():
    from convcli.conv import max_pool_planned, pool_plan

    x = np.array([[[[1, 9, 2], [3, 4, 8], [7, 5, 6]]]], np.float32)
    plan = pool_plan(x.shape, 2, 1, 1)
    pooled, where = max_pool_planned(x, plan, indices=True)
    np.testing.assert_array_equal(pooled, max_pool2d(x, 2, 1, 1))
    np.testing.assert_array_equal(where[0, 0], [[0, 1, 1, 2], [3, 1, 1, 5], [6, 6, 5, 5],
                                                [6, 6, 8, 8]])


def test_avg_pool_gradient_spreads_evenly_and_counts_padding():
    got = grad.avg_pool2d_backward((1, 1, 2, 2), np.ones((1, 1, 3, 3)), 2, 1, 1)
    # each pixel of the 2×2 input is in four of the 3×3 windows over its padded 4×4 grid
    np.testing.assert_allclose(got[0, 0], np.ones((2, 2)))


def test_relu_dense_and_softmax_cross_entropy_match_finite_differences():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 6))
    weight, bias = rng.standard_normal((3, 6)), rng.standard_normal(3)
    labels = np.array([0, 2, 1, 2])

    def loss(x, weight, bias):
        return grad.softmax_cross_entropy(np.maximum(x, 0) @ weight.T + bias, labels)[0]

    value, g_logits = grad.softmax_cross_entropy(np.maximum(x, 0) @ weight.T + bias, labels)
    g_hidden, g_weight, g_bias = grad.dense_backward(np.maximum(x, 0), weight, g_logits)
    g_x = grad.relu_backward(x, g_hidden)
    probs = grad.softmax(np.maximum(x, 0) @ weight.T + bias)
    assert value == pytest.approx(-np.mean(np.log(probs[np.arange(4), labels])))
    for array, gradient, f in ((x, g_x, lambda a: loss(a, weight, bias)),
                               (weight, g_weight, lambda a: loss(x, a, bias)),
                               (bias, g_bias, lambda a: loss(x, weight, a))):
        for index, numeric in _numeric_gradient(f, array, rng):
            assert gradient[index] == pytest.approx(numeric, abs=1e-7)


def test_softmax_cross_entropy_refuses_labels_out_of_range():
    with pytest.raises(ValueError, match="labels must lie in 0 … 2"):
        grad.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))


@pytest.mark.parametrize("algo", ["auto", "gemm"])
def test_gradients_match_pytorch_autograd_where_installed(algo):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 4, 9, 8))
    weight = rng.standard_normal((6, 2, 3, 3))
    options = dict(stride=2, padding=1, dilation=(2, 1), groups=2)
    g = rng.standard_normal(conv2d(x, weight, **options).shape)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(weight, requires_grad=True)
    (torch.nn.functional.conv2d(tx, tw, **options) * torch.tensor(g)).sum().backward()
    np.testing.assert_allclose(grad.conv2d_input(x.shape, weight, g, **options, algo=algo),
                               tx.grad.numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(grad.conv2d_weight(x, weight.shape, g, **options, algo=algo),
                               tw.grad.numpy(), rtol=1e-9, atol=1e-9)
