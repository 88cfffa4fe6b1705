"""convcli animate: one frame per output position, the cells drawn as covered are the ones
conv2d (or conv_transpose2d) reads, and the guide's figures come out with their numbers."""

import numpy as np
import pytest
from PIL import Image, ImageSequence

from convcli import conv2d, conv_transpose2d
from convcli.animate import (INPUT_FILL, OUTPUT_DONE, OUTPUT_NOW, WHITE, WINDOW_FILL,
                             WINDOW_PAD_FILL, AnimationOptions, build_animation, layout)
from naive import naive_conv2d

GUIDE_INPUT = np.array([[3, 3, 2, 1, 0], [0, 0, 1, 3, 1], [3, 1, 2, 2, 3], [2, 0, 0, 2, 2],
                        [2, 0, 0, 0, 1]], float)
GUIDE_KERNEL = np.array([[0, 1, 2], [2, 2, 0], [0, 1, 2]], float)
INLINE_INPUT = "; ".join(" ".join(str(int(v)) for v in row) for row in GUIDE_INPUT)
INLINE_KERNEL = "; ".join(" ".join(str(int(v)) for v in row) for row in GUIDE_KERNEL)

# (H, W, kh, kw, options) — non-square, strided, asymmetric padding, dilated, transposed
CONFIGURATIONS = [
    (5, 5, 3, 3, dict()),
    (5, 5, 3, 3, dict(padding="same")),
    (5, 5, 3, 3, dict(stride=2, padding=1)),
    (4, 6, 2, 3, dict(stride=(1, 2), padding=(0, 1, 2, 0))),
    (7, 7, 3, 3, dict(dilation=2)),
    (5, 5, 3, 3, dict(padding="full", stride=(2, 1))),
    (2, 2, 3, 3, dict(transposed=True, stride=2)),
    (2, 2, 2, 2, dict(transposed=True, stride=2)),
    (3, 3, 3, 3, dict(transposed=True, stride=2, padding=1, output_padding=1)),
    (3, 2, 2, 3, dict(transposed=True, stride=(2, 1), padding=(0, 1, 2, 0), dilation=(1, 2))),
]


def reads(x_shape, kernel, options):
    """For each output position, the flat indices of the input values it reads, found by
    running the engine on one-hot inputs with a kernel of ones (no index arithmetic)."""
    size = x_shape[0] * x_shape[1]
    outputs = []
    for index in range(size):
        one_hot = np.zeros(size)
        one_hot[index] = 1
        one_hot = one_hot.reshape(1, 1, *x_shape)
        ones = np.ones((1, 1, *kernel))
        if options.get("transposed"):
            out = conv_transpose2d(one_hot, ones, stride=options.get("stride", 1),
                                   padding=options.get("padding", 0),
                                   output_padding=options.get("output_padding", 0),
                                   dilation=options.get("dilation", 1))
        else:
            out = conv2d(one_hot, ones, stride=options.get("stride", 1),
                         padding=options.get("padding", 0), dilation=options.get("dilation", 1))
        outputs.append(out[0, 0].ravel() > 0)
    touched = np.array(outputs)                      # (inputs, outputs)
    return [set(np.flatnonzero(touched[:, o])) for o in range(touched.shape[1])]


def centre(box):
    x0, y0, x1, y1 = box
    return (x0 + x1) // 2, (y0 + y1) // 2


def gif_frames(path):
    return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(Image.open(path))]


@pytest.mark.parametrize("h, w, kh, kw, options", CONFIGURATIONS)
def test_covered_cells_at_cell_centres_are_the_inputs_each_output_reads(tmp_path, run, h, w,
                                                                        kh, kw, options):
    x = np.arange(h * w, dtype=float).reshape(h, w) + 1
    animation = build_animation(x, np.ones((kh, kw)), AnimationOptions(**options))
    expected = reads((h, w), (kh, kw), options)
    assert animation.frame_count == len(expected) == animation.output.size
    args = ["animate", "--input", f"{h}x{w}", "-k", f"{kh}x{kw}", "-o", tmp_path / "a.gif"]
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            args.append(flag)
        else:
            text = value if isinstance(value, (int, str)) else ",".join(map(str, value)) \
                if len(value) == 4 else "x".join(map(str, value))
            args += [flag, text]
    result = run(*args)
    assert result.exit_code == 0, result.output
    pictures = gif_frames(tmp_path / "a.gif")
    assert len(pictures) == len(expected)
    geometry = layout(animation)
    rows, cols = animation.sources.shape
    ho, wo = animation.output.shape
    for frame, (picture, wanted) in enumerate(zip(pictures, expected)):
        colours = {(r, c): tuple(picture[centre(geometry.input_cell(r, c))[::-1]])
                   for r in range(rows) for c in range(cols)}
        covered_inputs = {int(animation.sources[cell]) for cell, colour in colours.items()
                          if colour == WINDOW_FILL}
        assert covered_inputs == wanted, f"frame {frame}"
        covered = [cell for cell, colour in colours.items()
                   if colour in (WINDOW_FILL, WINDOW_PAD_FILL)]
        assert len(covered) == kh * kw                 # every tap, on input or padding
        assert all(colour in (WINDOW_FILL, WINDOW_PAD_FILL, INPUT_FILL, WHITE)
                   for colour in colours.values())
        assert sum(c in (INPUT_FILL, WINDOW_FILL) for c in colours.values()) == h * w
        out = [tuple(picture[centre(geometry.output_cell(r, c))[::-1]])
               for r in range(ho) for c in range(wo)]
        assert out == [OUTPUT_DONE] * frame + [OUTPUT_NOW] + [WHITE] * (len(out) - frame - 1)


FIGURES = [
    ("figure 1: 5x5 * 3x3, no padding", [], [[12, 12, 17], [10, 17, 19], [9, 6, 14]]),
    ("figure 2: same padding", ["--padding", "same"],
     naive_conv2d(GUIDE_INPUT[None, None], GUIDE_KERNEL[None, None],
                  padding=(1, 1, 1, 1))[0, 0]),
    ("figure 3: stride 2, padding 1", ["--stride", "2", "--padding", "1"],
     [[6, 17, 3], [8, 17, 13], [6, 4, 4]]),
]


PADDINGS = {"0": 0, "1": 1, "same": "same"}


@pytest.mark.parametrize("figure, flags, expected", FIGURES)
def test_the_articles_three_figures_with_their_numbers(tmp_path, run, figure, flags, expected):
    from convcli.animate import input_values, kernel_weights, number_text

    result = run("animate", "--input", INLINE_INPUT, "-k", INLINE_KERNEL, "--values", *flags,
                 "-o", f"{tmp_path}/frames/")
    assert result.exit_code == 0, result.output
    written = sorted((tmp_path / "frames").iterdir())
    expected = np.asarray(expected, float)
    assert len(written) == expected.size
    options = dict(zip([f.lstrip("-") for f in flags[::2]], flags[1::2]))
    animation = build_animation(input_values(INLINE_INPUT), kernel_weights(INLINE_KERNEL),
                                AnimationOptions(stride=int(options.get("stride", 1)),
                                                 padding=PADDINGS[options.get("padding", "0")],
                                                 values=True))
    np.testing.assert_array_equal(animation.output, expected)
    assert [number_text(v) for v in animation.output.ravel()] == \
        [str(int(v)) for v in expected.ravel()]
    # an output cell shows ink (its number) from its own frame on, never before
    geometry = layout(animation)
    wo = expected.shape[1]
    for frame, path in enumerate(written):
        picture = np.asarray(Image.open(path).convert("RGB"))
        for index in range(expected.size):
            x0, y0, x1, y1 = geometry.output_cell(*divmod(index, wo))
            inner = picture[y0 + 3:y1 - 2, x0 + 3:x1 - 2]
            inked = bool((inner.max(axis=2) < 60).any())
            assert inked == (index <= frame), (frame, index)


def test_a_tap_shows_its_weight_and_each_input_cell_its_value(tmp_path):
    """With --values, every covered input cell has ink in its bottom-right corner (the
    weight) where the same cell without a tap has none."""
    from convcli.animate import render_frame

    animation = build_animation(GUIDE_INPUT, GUIDE_KERNEL, AnimationOptions(values=True))
    picture = np.asarray(render_frame(animation, 0))
    geometry = layout(animation)
    for (r, c), tap in zip([(0, 0), (0, 4)], [True, False]):
        x0, y0, x1, y1 = geometry.input_cell(r, c)
        corner = picture[y1 - geometry.cell // 3:y1 - 4, x1 - geometry.cell // 3:x1 - 4]
        assert bool((corner.max(axis=2) < 60).any()) == tap


def test_gif_loops_at_the_frame_rate_and_apng_holds_the_same_frames(tmp_path, run):
    assert run("animate", "--input", "4x4", "-k", "3", "--fps", "4", "-o",
               tmp_path / "a.gif").exit_code == 0
    assert run("animate", "--input", "4x4", "-k", "3", "--fps", "4", "-o",
               tmp_path / "a.png").exit_code == 0
    gif, apng = Image.open(tmp_path / "a.gif"), Image.open(tmp_path / "a.png")
    assert gif.info["loop"] == 0 and gif.info["duration"] == 250
    assert apng.n_frames == gif.n_frames == 4 and apng.info["loop"] == 0
    for a, b in zip(gif_frames(tmp_path / "a.gif"), gif_frames(tmp_path / "a.png")):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("args, message", [
    (["--input", "2x2", "-k", "3"], "smaller than the 3×3 kernel"),
    (["--input", "5x5", "-k", "sobel"], "--kernel 'sobel' has 2 filters"),
    (["--input", "5x5", "-k", "3", "--transposed", "--output-padding", "1"],
     "--output-padding must be smaller than stride"),
    (["--input", "5x5", "-k", "3", "--transposed", "--padding", "same"],
     "--padding must be an int"),
    (["--input", "5000x5", "-k", "3"], "--input must be 1 to 256 cells a side"),
    (["--input", "200x200", "-k", "3"], "--input would draw 39,204 frames"),
    (["--input", "1 2; 3", "-k", "3"], "row 2 has 1 values"),
    (["--input", "missing.npy", "-k", "3"], "missing.npy"),
    (["--input", "5x5", "-k", "3", "--fps", "0"], "--fps"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, run, args, message):
    result = run("animate", *args, "-o", tmp_path / "a.gif")
    assert result.exit_code in (1, 2)
    assert message in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_output_format_must_be_gif_png_or_a_folder(tmp_path, run):
    result = run("animate", "--input", "5x5", "-k", "3", "-o", tmp_path / "a.bmp")
    assert result.exit_code == 2 and "write .gif, .png" in result.output
    assert list(tmp_path.iterdir()) == []


# Machado, Oliveira & Fernandes (2009), severity 1, on linear RGB.
DICHROMACY = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}


def seen_as(colour, matrix):
    linear = np.asarray(colour) / 255
    linear = np.where(linear <= 0.04045, linear / 12.92, ((linear + 0.055) / 1.055) ** 2.4)
    shown = np.clip(np.asarray(matrix) @ linear, 0, 1)
    return 255 * np.where(shown <= 0.0031308, 12.92 * shown, 1.055 * shown ** (1 / 2.4) - 0.055)


@pytest.mark.parametrize("kind", DICHROMACY)
def test_colours_stay_apart_for_colour_blind_viewers(kind):
    """Every pair of fills a reader must tell apart differs by at least 50 (of 441) in
    simulated dichromat vision (a red/green pair, 200,60,60 against 60,160,60, comes to 26
    for deuteranopia)."""
    pairs = [(INPUT_FILL, WINDOW_FILL), (WINDOW_FILL, WINDOW_PAD_FILL), (WINDOW_PAD_FILL, WHITE),
             (INPUT_FILL, WHITE), (INPUT_FILL, WINDOW_PAD_FILL), (OUTPUT_DONE, OUTPUT_NOW),
             (OUTPUT_DONE, WHITE)]
    matrix = DICHROMACY[kind]
    for a, b in pairs:
        assert np.linalg.norm(seen_as(a, matrix) - seen_as(b, matrix)) >= 50, (a, b)
