"""conv_transpose2d against a naive scatter reference, conv2d's adjoint, and the shapes
and pictures of the guide to convolution arithmetic (Dumoulin & Visin, section 4)."""

import numpy as np
import pytest

import convcli
from convcli import conv2d, conv_transpose2d
from naive import naive_conv_transpose2d


def random_case(rng):
    groups = int(rng.integers(1, 4))
    cin, cout_g = groups * int(rng.integers(1, 3)), int(rng.integers(1, 3))
    kh, kw = (int(v) for v in rng.integers(1, 5, 2))
    stride = tuple(int(v) for v in rng.integers(1, 4, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2))
    output_padding = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    h, w = (int(v) for v in rng.integers(1, 7, 2))
    padding = tuple(int(v) for v in rng.integers(0, 4, 4))
    full = [(h - 1) * stride[0] + dilation[0] * (kh - 1) + output_padding[0] + 1,
            (w - 1) * stride[1] + dilation[1] * (kw - 1) + output_padding[1] + 1]
    top, bottom, left, right = padding       # keep at least one output row and column
    top, bottom = min(top, (full[0] - 1) // 2), min(bottom, (full[0] - 1) // 2)
    left, right = min(left, (full[1] - 1) // 2), min(right, (full[1] - 1) // 2)
    return dict(x=rng.standard_normal((int(rng.integers(1, 3)), cin, h, w)),
                weight=rng.standard_normal((cin, cout_g, kh, kw)),
                bias=rng.standard_normal(cout_g * groups) if rng.random() < 0.5 else None,
                stride=stride, padding=(top, bottom, left, right),
                output_padding=output_padding, groups=groups, dilation=dilation)


@pytest.mark.parametrize("seed", range(40))
def test_matches_naive_scatter_on_random_configurations(seed):
    case = random_case(np.random.default_rng(seed))
    expected = naive_conv_transpose2d(**case)
    x, weight = case.pop("x"), case.pop("weight")
    got64 = conv_transpose2d(x, weight, **case)
    assert got64.dtype == np.float64
    np.testing.assert_allclose(got64, expected, rtol=1e-12, atol=1e-12)
    got32 = conv_transpose2d(x.astype(np.float32), weight.astype(np.float32), **case)
    assert got32.dtype == np.float32
    np.testing.assert_allclose(got32, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("seed", range(15))
def test_is_the_adjoint_of_conv2d_with_the_same_weight(seed):
    """<conv2d(x, W), y> = <x, conv_transpose2d(y, W)>: the input gradient of conv2d."""
    rng = np.random.default_rng(500 + seed)
    groups = int(rng.integers(1, 3))
    cin, cout = groups * int(rng.integers(1, 3)), groups * int(rng.integers(1, 3))
    k, s, d, p = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 3)),
                  int(rng.integers(0, 3)))
    h = int(rng.integers(d * (k - 1) + 1, 12))
    x = rng.standard_normal((1, cin, h, h))
    weight = rng.standard_normal((cout, cin // groups, k, k))
    y_shape = conv2d(x, weight, stride=s, padding=p, dilation=d, groups=groups).shape
    y = rng.standard_normal(y_shape)
    rows = (y_shape[2] - 1) * s - 2 * p + d * (k - 1) + 1
    back = conv_transpose2d(y, weight, stride=s, padding=p, output_padding=h - rows,
                            dilation=d, groups=groups)
    assert back.shape == x.shape
    forward = conv2d(x, weight, stride=s, padding=p, dilation=d, groups=groups)
    assert np.vdot(forward, y) == pytest.approx(np.vdot(x, back), rel=1e-10)


# The guide's section 4 figures: (input, kernel, stride, padding, output padding) of the
# transposed convolution and the size it produces (the input of the direct one it undoes).
GUIDE_TRANSPOSED = [
    ("4.1 no padding, unit strides", 2, 3, 1, 0, 0, 4),
    ("4.2 arbitrary padding, unit strides", 6, 4, 1, 2, 0, 5),
    ("4.3 half padding, unit strides", 5, 3, 1, 1, 0, 5),
    ("4.4 full padding, unit strides", 7, 3, 1, 2, 0, 5),
    ("4.5 no padding, strides", 2, 3, 2, 0, 0, 5),
    ("4.6 padding, strides", 3, 3, 2, 1, 0, 5),
    ("4.7 padding, strides, odd", 3, 3, 2, 1, 1, 6),
]


@pytest.mark.parametrize("figure, size, k, s, p, a, expected", GUIDE_TRANSPOSED)
def test_guide_figures_output_sizes(figure, size, k, s, p, a, expected):
    out = conv_transpose2d(np.ones((1, size, size)), np.ones((1, 1, k, k)), stride=s,
                           padding=p, output_padding=a)
    assert out.shape == (1, expected, expected)


def test_guide_figure_4_5_counts_how_often_each_output_cell_is_covered():
    """With ones everywhere, each output value counts the input cells whose (stride-2)
    kernel placement covers it: 1 off the overlaps, 2 on the shared row or column, 4 where
    both meet."""
    out = conv_transpose2d(np.ones((1, 2, 2)), np.ones((1, 1, 3, 3)), stride=2)[0]
    line = np.array([1, 1, 2, 1, 1])
    np.testing.assert_array_equal(out, np.outer(line, line))


def test_single_value_scatters_the_kernel_itself():
    kernel = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], float)
    out = conv_transpose2d(np.full((1, 1, 1), 3.0), kernel[None, None])
    np.testing.assert_array_equal(out[0], 3 * kernel)


def test_stride_2_kernel_2_of_ones_repeats_every_value_in_a_block():
    x = np.arange(6.0).reshape(1, 2, 3)
    out = conv_transpose2d(x, np.ones((1, 1, 2, 2)), stride=2)
    np.testing.assert_array_equal(out[0], np.kron(x[0], np.ones((2, 2))))


def test_weight_layout_is_cin_then_cout_per_group():
    """Weight (Cin=2, Cout/groups=3): input channel c feeds output channels 0..2 through
    weight[c, o]; a 1×1 kernel makes the output a plain channel mix."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 5))
    weight = rng.standard_normal((2, 3, 1, 1))
    out = conv_transpose2d(x, weight)
    np.testing.assert_allclose(out, np.einsum("chw,co->ohw", x, weight[:, :, 0, 0]))


def test_is_public_and_lazily_exported():
    assert "conv_transpose2d" in convcli.__all__
    assert convcli.conv_transpose2d is conv_transpose2d


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight=np.ones((2, 1, 3, 3))), "weight has 2 input channels"),
    (dict(output_padding=2, stride=2), "output_padding must be smaller than stride"),
    (dict(output_padding=-1), "output_padding must be at least 0"),
    (dict(padding="same"), "padding must be an int"),
    (dict(padding=3), "padding (3, 3, 3, 3) leaves no output"),
    (dict(groups=2, weight=np.ones((3, 1, 3, 3)), x=np.ones((3, 4, 4))),
     "groups must divide the input channels (3), got 2"),
    (dict(bias=np.ones(2)), "bias must have shape (1,)"),
    (dict(x=np.ones((4, 4))), "input must have shape"),
    (dict(stride=0), "stride must be at least 1"),
])
def test_bad_arguments_name_the_parameter(kwargs, message):
    args = dict(x=np.ones((1, 4, 4)), weight=np.ones((1, 1, 3, 3)))
    args.update(kwargs)
    with pytest.raises(ValueError) as error:
        conv_transpose2d(args.pop("x"), args.pop("weight"), **args)
    assert message in str(error.value)
