"""Properties every convolution has, checked by hypothesis."""

import numpy as np
from hypothesis import given, settings, strategies as st

from convcli import conv2d
from convcli.plan import PAD_MODES, output_length

settings.register_profile("convcli", deadline=None, max_examples=60)
settings.load_profile("convcli")

small = st.integers(1, 4)


@st.composite
def configurations(draw):
    kh, kw = draw(small), draw(small)
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    h = draw(st.integers(dh * (kh - 1) + 1, 12))
    w = draw(st.integers(dw * (kw - 1) + 1, 12))
    cin, cout = draw(small), draw(small)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    return dict(
        x=rng.standard_normal((cin, h, w)), weight=rng.standard_normal((cout, cin, kh, kw)),
        stride=(draw(small), draw(small)), dilation=(dh, dw),
        padding=tuple(draw(st.integers(0, 3)) for _ in range(4)),
        pad_mode=draw(st.sampled_from(PAD_MODES)), rng=rng)


@given(configurations(), st.floats(-3, 3), st.floats(-3, 3))
def test_convolution_is_linear_in_the_input(case, a, b):
    rng = case.pop("rng")
    x = case.pop("x")
    y = rng.standard_normal(x.shape)
    left = conv2d(a * x + b * y, **case)
    right = a * conv2d(x, **case) + b * conv2d(y, **case)
    np.testing.assert_allclose(left, right, atol=1e-9)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 10), st.integers(1, 10),
       st.sampled_from(PAD_MODES), st.integers(0, 2**32 - 1))
def test_identity_kernel_returns_the_input(ch, radius, h, w, pad_mode, seed):
    x = np.random.default_rng(seed).standard_normal((ch, h, w))
    k = 2 * radius + 1
    weight = np.zeros((ch, 1, k, k))
    weight[:, 0, radius, radius] = 1
    out = conv2d(x, weight, padding="same", pad_mode=pad_mode, groups=ch)
    np.testing.assert_array_equal(out, x)


@given(st.integers(1, 5), st.integers(1, 5), st.integers(-6, 6), st.integers(-6, 6),
       st.integers(0, 2**32 - 1))
def test_circular_padding_commutes_with_circular_shifts(kh, kw, dy, dx, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 9, 8))
    weight = rng.standard_normal((3, 2, kh, kw))
    conv = lambda image: conv2d(image, weight, padding="same", pad_mode="circular")
    shifted_then_conv = conv(np.roll(x, (dy, dx), axis=(1, 2)))
    conv_then_shifted = np.roll(conv(x), (dy, dx), axis=(1, 2))
    np.testing.assert_allclose(shifted_then_conv, conv_then_shifted, atol=1e-9)


@given(configurations())
def test_output_shape_is_the_formula(case):
    case.pop("rng")
    x, weight = case["x"], case["weight"]
    top, bottom, left, right = case["padding"]
    (sh, sw), (dh, dw) = case["stride"], case["dilation"]
    kh, kw = weight.shape[2:]
    expected = (weight.shape[0],
                (x.shape[1] + top + bottom - dh * (kh - 1) - 1) // sh + 1,
                (x.shape[2] + left + right - dw * (kw - 1) - 1) // sw + 1)
    assert conv2d(**case).shape == expected
    assert expected[1:] == (output_length(x.shape[1], top + bottom, kh, sh, dh),
                            output_length(x.shape[2], left + right, kw, sw, dw))
