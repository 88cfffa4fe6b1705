"""Convolution-arithmetic animations: one frame per output position, in the conventions of
"A guide to convolution arithmetic for deep learning" (Dumoulin & Visin).

Each frame shows the (padded) input grid with the kernel's taps over the cells they read,
and the output grid filling in beside it.  A transposed convolution is drawn as the direct
convolution it equals: a stride-1 convolution over the stride-dilated, padded input with the
flipped kernel (`convcli.transpose`).  Which cells a window reads comes from the plan's index
maps (`ConvPlan.row_sources`), the same arithmetic `conv2d` runs on; the numbers come from
`conv2d` and `conv_transpose2d` themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ParameterError
from .plan import make_plan

# Colour-blind-safe colours (Okabe & Ito's palette, lightened for fills): blue for the
# input, orange for the window and the value it is computing, bluish green for outputs done.
WHITE = (255, 255, 255)
INPUT_FILL = (198, 219, 239)          # an input cell
WINDOW_FILL = (230, 159, 0)           # an input cell under a kernel tap (Okabe–Ito orange)
WINDOW_PAD_FILL = (248, 214, 140)     # a padding (or inserted zero) cell under a tap
OUTPUT_DONE = (153, 216, 199)         # an output value already computed
OUTPUT_NOW = WINDOW_FILL              # the output value of this frame
LINE = (110, 110, 110)                # cell outlines
PAD_LINE = (160, 160, 160)            # dashed outlines of padding cells
TAP_LINE = (213, 94, 0)               # outline of a tap (Okabe–Ito vermillion)
INK = (0, 0, 0)
FILLS = (WHITE, INPUT_FILL, WINDOW_FILL, WINDOW_PAD_FILL, OUTPUT_DONE)

#: Limits checked before anything is drawn: frames, pixels of one frame, and pixels of all
#: frames (GIF and APNG writers hold every frame in memory, one byte per pixel).
MAX_FRAMES = 10_000
MAX_FRAME_PIXELS = 4096 * 4096
MAX_TOTAL_PIXELS = 2**29


@dataclass(frozen=True, kw_only=True)
class AnimationOptions:
    """What to animate besides the input and kernel (see `build_animation`)."""

    stride: int | tuple = 1
    padding: int | str | tuple = 0
    dilation: int | tuple = 1
    transposed: bool = False
    output_padding: int | tuple = 0
    values: bool = False
    cell: int = 48


@dataclass(frozen=True)
class Animation:
    """Everything a frame shows, computed once.

    ``sources`` maps each drawn input cell (rows × columns of the padded grid, or of the
    stride-dilated and padded grid when transposed) to the flat index of the input value
    it holds, −1 for padding and inserted zeros.  ``windows[f]`` lists the grid cells the
    kernel's taps cover in frame f (one frame per output position, in row order), tap by
    tap in the kernel's row order; ``taps`` are the weights drawn at them (flipped when
    transposed).
    """

    input: np.ndarray               # (H, W) values
    taps: np.ndarray                # (kh, kw) weights of the drawn (direct) convolution
    sources: np.ndarray             # (rows, cols) int: flat input index or −1
    windows: list                   # per frame: (kh·kw, 2) int grid cells
    output: np.ndarray              # (Ho, Wo) values
    title: str
    options: AnimationOptions

    @property
    def frame_count(self) -> int:
        return self.output.size


def build_animation(x, weight, options: AnimationOptions) -> Animation:
    """The animation of a single-channel convolution (or transposed convolution).

    Parameters
    ----------
    x : array_like
        (H, W) input values.
    weight : array_like
        (kh, kw) kernel.
    options : AnimationOptions
        stride, padding, dilation as for `convcli.conv2d`; with ``transposed``, as for
        `convcli.conv_transpose2d` (with output_padding).

    Raises
    ------
    ParameterError
        For shapes or options that are not allowed, or an animation too large to draw.
    """
    from .conv import conv2d

    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    if x.ndim != 2 or weight.ndim != 2:
        raise ParameterError(f"input and kernel must be 2-D, got {x.shape} and {weight.shape}",
                             parameter="input" if x.ndim != 2 else "weight")
    kh, kw = weight.shape
    if options.transposed:
        from .transpose import conv_transpose2d, equivalent_weight, transposed_plan

        tplan = transposed_plan((1, 1, *x.shape), (1, 1, kh, kw), options.stride,
                                options.padding, options.output_padding, 1, options.dilation)
        pads = tplan.direct_padding
        crops = [max(0, -p) for p in pads]
        plan = make_plan((1, 1, *tplan.dilated_size), (1, 1, kh, kw), 1,
                         tuple(max(0, p) for p in pads), tplan.dilation)
        sh, sw = tplan.stride
        # a dilated position holds input value position / s where s divides it
        rows, cols = (np.where((src >= 0) & (src % s == 0), src // s, -1)
                      for src, s in ((plan.row_sources(), sh), (plan.col_sources(), sw)))
        taps = equivalent_weight(weight[None, None], 1)[0, 0]
        output = conv_transpose2d(x[None], weight[None, None], stride=tplan.stride,
                                  padding=tplan.padding, output_padding=tplan.output_padding,
                                  dilation=tplan.dilation)[0]
        step, first = (1, 1), crops[::2]
        title = (f"transposed {kh}x{kw} conv on {_size(x.shape)}, stride "
                 f"{_pair_text(tplan.stride)}, padding {_pads_text(tplan.padding)}"
                 + (f", output padding {_pair_text(tplan.output_padding)}"
                    if any(tplan.output_padding) else "")
                 + f" -> {_size(output.shape)}")
    else:
        plan = make_plan((1, 1, *x.shape), (1, 1, kh, kw), options.stride, options.padding,
                         options.dilation)
        rows, cols = plan.row_sources(), plan.col_sources()
        taps = weight
        output = conv2d(x[None], weight[None, None], stride=plan.stride, padding=plan.padding,
                        dilation=plan.dilation)[0]
        step, first = plan.stride, (0, 0)
        title = (f"{kh}x{kw} conv on {_size(x.shape)}, stride {_pair_text(plan.stride)}, "
                 f"padding {_pads_text(plan.padding)} -> {_size(output.shape)}")
    if plan.dilation != (1, 1):
        title += f", dilation {_pair_text(plan.dilation)}"
    sources = np.where((rows[:, None] >= 0) & (cols[None, :] >= 0),
                       rows[:, None] * x.shape[1] + cols[None, :], -1)
    animation = Animation(x, taps, sources, [], output, title, options)
    check_size(animation)
    (dh, dw), (ho, wo) = plan.dilation, output.shape
    tap_rows, tap_cols = np.meshgrid(np.arange(kh) * dh, np.arange(kw) * dw, indexing="ij")
    for oy in range(ho):
        for ox in range(wo):
            top, left = first[0] + oy * step[0], first[1] + ox * step[1]
            animation.windows.append(np.stack([top + tap_rows.ravel(), left + tap_cols.ravel()],
                                              axis=1))
    return animation


#: Largest input side (cells) an animation draws.
MAX_SIDE = 256
_SIZE = re.compile(r"\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*")


def input_values(spec: str) -> np.ndarray:
    """The (H, W) input of an animation from ``HxW`` (small whole numbers 0–3, the same
    every time, as in the guide's figures), an inline matrix (``"1 2; 3 4"``, as -k takes)
    or an ``.npy`` file of a 2-D array (or (H, W, 1))."""
    from .kernels import parse_matrix

    size = _SIZE.fullmatch(spec)
    if size:
        h, w = int(size[1]), int(size[2] or size[1])
        _check_side((h, w))
        return np.random.default_rng(0).integers(0, 4, (h, w)).astype(np.float64)
    if spec.strip().lower().endswith(".npy"):
        from .images import read_image

        color = read_image(Path(spec.strip())).color
        if color.shape[2] != 1:
            raise ParameterError(f"{spec}: needs a 2-D array (H, W), got shape {color.shape}",
                                 parameter="input")
        values = color[:, :, 0].astype(np.float64)
    else:
        values = parse_matrix(spec, f"input {spec!r}")
    _check_side(values.shape)
    return values


def _check_side(shape) -> None:
    if min(shape) < 1 or max(shape) > MAX_SIDE:
        raise ParameterError(f"must be 1 to {MAX_SIDE} cells a side to animate, got "
                             f"{_size(shape)}", parameter="input")


def kernel_weights(spec: str, catalogue=None) -> np.ndarray:
    """The (kh, kw) kernel of an animation: ``K`` or ``KHxKW`` is a kernel of ones of that
    size; anything else is a kernel spec as -k of apply takes it, with one 2-D kernel."""
    from .kernels import resolve_kernel

    size = _SIZE.fullmatch(spec)
    if size:
        shape = (int(size[1]), int(size[2] or size[1]))
        if min(shape) < 1 or max(shape) > MAX_SIDE:
            raise ParameterError(f"size must be 1 to {MAX_SIDE} a side, got {_size(shape)}",
                                 parameter="kernel")
        return np.ones(shape)
    kernel = resolve_kernel(spec, catalogue)
    if kernel.is_layer or kernel.n_filters != 1:
        raise ParameterError(f"{kernel.name!r} has {kernel.n_filters} filters of shape "
                             f"{kernel.weights.shape[1:]}; an animation draws one 2-D kernel",
                             parameter="kernel")
    return np.asarray(kernel.weights[0], np.float64)


def _size(shape) -> str:
    """5x5: frames use ASCII, which every font Pillow may fall back to can draw."""
    return "x".join(str(v) for v in shape)


def _pair_text(pair) -> str:
    return str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}x{pair[1]}"


def _pads_text(pads) -> str:
    return str(pads[0]) if len(set(pads)) == 1 else ",".join(str(p) for p in pads)


# ----------------------------------------------------------------------------------------
# Layout and drawing

@dataclass(frozen=True)
class Layout:
    """Where things go on a frame, in pixels."""

    cell: int
    margin: int
    title_height: int
    input_origin: tuple[int, int]    # x, y of the input grid's top-left corner
    output_origin: tuple[int, int]
    size: tuple[int, int]            # width, height of a frame

    def input_cell(self, r: int, c: int) -> tuple[int, int, int, int]:
        """The box (x0, y0, x1, y1) of input grid cell (r, c), outline included."""
        return self._box(self.input_origin, r, c)

    def output_cell(self, r: int, c: int) -> tuple[int, int, int, int]:
        return self._box(self.output_origin, r, c)

    def _box(self, origin, r, c):
        x0, y0 = origin[0] + c * self.cell, origin[1] + r * self.cell
        return x0, y0, x0 + self.cell, y0 + self.cell


def layout(animation: Animation) -> Layout:
    """The frame's geometry: title on top, input grid left, output grid right (vertically
    centred), each with a caption under it."""
    cell = animation.options.cell
    margin = max(12, cell // 3)
    title_height = max(24, cell // 2) + margin // 2
    rows, cols = animation.sources.shape
    ho, wo = animation.output.shape
    gap = max(2 * cell, 96)
    grid_h = max(rows, ho) * cell
    caption = max(20, cell // 2)
    top = margin + title_height
    input_origin = (margin, top + (grid_h - rows * cell) // 2)
    output_origin = (margin + cols * cell + gap, top + (grid_h - ho * cell) // 2)
    width = max(output_origin[0] + wo * cell + margin, margin + 20 * max(8, cell // 3))
    return Layout(cell, margin, title_height, input_origin, output_origin,
                  (width + 1, top + grid_h + caption + margin + 1))


def check_size(animation: Animation) -> None:
    """Refuse, before drawing anything, an animation beyond the limits above."""
    width, height = layout(animation).size
    frames = animation.frame_count
    if frames > MAX_FRAMES or width * height > MAX_FRAME_PIXELS or \
            frames * width * height > MAX_TOTAL_PIXELS:
        raise ParameterError(
            f"would draw {frames:,} frames of {width}×{height} pixels; at most "
            f"{MAX_FRAMES:,} frames, {MAX_FRAME_PIXELS:,} pixels a frame and "
            f"{MAX_TOTAL_PIXELS:,} in all; use a smaller input or cell size",
            parameter="input")


def number_text(value: float) -> str:
    """Integers without a decimal point, other values to three significant digits."""
    value = float(value)
    if abs(value - round(value)) < 1e-9 * max(1.0, abs(value)):
        return str(int(round(value)))
    return f"{value:.3g}"


def _fonts(cell: int):
    from PIL import ImageFont

    return (ImageFont.load_default(size=max(10, cell * 5 // 12)),
            ImageFont.load_default(size=max(8, cell * 3 // 12)),
            ImageFont.load_default(size=max(12, cell * 4 // 12)))


def palette_image():
    """A P-mode image whose palette holds every colour a frame uses, with the blends of
    each fill towards black ink that anti-aliased text makes: frames quantized to it keep
    their fills exactly (GIF needs a palette; it also keeps APNG and PNG frames small)."""
    from PIL import Image

    colours = []
    for fill in FILLS:
        for t in range(16):
            colours.append(tuple(round(f + (i - f) * t / 15) for f, i in zip(fill, INK)))
    colours += [LINE, PAD_LINE, TAP_LINE]
    for t in range(1, 16):                      # grey caption text on white
        colours.append(tuple(round(255 + (g - 255) * t / 15) for g in (80, 80, 80)))
    flat = [v for colour in dict.fromkeys(colours) for v in colour]
    image = Image.new("P", (1, 1))
    image.putpalette(flat + [0] * (768 - len(flat)))
    return image


def render_frame(animation: Animation, index: int, fonts=None, geometry: Layout | None = None):
    """Frame `index` as an RGB Pillow image."""
    from PIL import Image, ImageDraw

    geometry = geometry or layout(animation)
    big, small, caption_font = fonts or _fonts(geometry.cell)
    image = Image.new("RGB", geometry.size, WHITE)
    draw = ImageDraw.Draw(image)
    cell = geometry.cell
    values = animation.options.values
    window = animation.windows[index]
    covered = {(int(r), int(c)): tap for tap, (r, c) in enumerate(window)}
    flat_input = animation.input.ravel()
    taps = animation.taps.ravel()
    rows, cols = animation.sources.shape
    draw.text((geometry.margin, geometry.margin), animation.title, fill=INK, font=caption_font)
    for r in range(rows):
        for c in range(cols):
            box = geometry.input_cell(r, c)
            source = int(animation.sources[r, c])
            tap = covered.get((r, c))
            if source < 0:
                draw.rectangle(box, fill=WINDOW_PAD_FILL if tap is not None else WHITE)
                _dashed_box(draw, box, PAD_LINE, max(3, cell // 12))
            else:
                draw.rectangle(box, fill=WINDOW_FILL if tap is not None else INPUT_FILL,
                               outline=LINE)
            if tap is not None:
                inset = max(1, cell // 24)
                draw.rectangle((box[0] + inset, box[1] + inset, box[2] - inset, box[3] - inset),
                               outline=TAP_LINE, width=max(2, cell // 24))
            if values and source >= 0:
                draw.text(((box[0] + box[2]) / 2 - (cell // 10 if tap is not None else 0),
                           (box[1] + box[3]) / 2), number_text(flat_input[source]), fill=INK,
                          font=big, anchor="mm")
            if values and tap is not None:
                draw.text((box[2] - cell // 8, box[3] - cell // 10), number_text(taps[tap]),
                          fill=INK, font=small, anchor="rs")
    ho, wo = animation.output.shape
    current = divmod(index, wo)
    for r in range(ho):
        for c in range(wo):
            box = geometry.output_cell(r, c)
            done = r * wo + c <= index
            fill = OUTPUT_NOW if (r, c) == current else OUTPUT_DONE if done else WHITE
            draw.rectangle(box, fill=fill, outline=LINE)
            if values and done:
                draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2),
                          number_text(animation.output[r, c]), fill=INK, font=big, anchor="mm")
    below = geometry.size[1] - geometry.margin - geometry.cell // 2
    grid_bottom = max(geometry.input_cell(rows - 1, 0)[3], geometry.output_cell(ho - 1, 0)[3])
    y = max(grid_bottom + 4, below)
    kind = "stride-dilated, padded input" if animation.options.transposed else "input"
    draw.text((geometry.input_origin[0], y), f"{kind} ({_size(animation.sources.shape)})",
              fill=(80, 80, 80), font=caption_font)
    draw.text((geometry.output_origin[0], y),
              f"output {current[0]},{current[1]} of {_size((ho, wo))}", fill=(80, 80, 80),
              font=caption_font)
    return image


def _dashed_box(draw, box, colour, dash: int) -> None:
    x0, y0, x1, y1 = box
    for x in range(x0, x1, 2 * dash):
        draw.line((x, y0, min(x + dash, x1), y0), fill=colour)
        draw.line((x, y1, min(x + dash, x1), y1), fill=colour)
    for y in range(y0, y1, 2 * dash):
        draw.line((x0, y, x0, min(y + dash, y1)), fill=colour)
        draw.line((x1, y, x1, min(y + dash, y1)), fill=colour)


def frames(animation: Animation):
    """Every frame, quantized to `palette_image` (P mode), in order."""
    from PIL import Image

    geometry = layout(animation)
    fonts = _fonts(geometry.cell)
    palette = palette_image()
    for index in range(animation.frame_count):
        yield render_frame(animation, index, fonts, geometry).quantize(
            palette=palette, dither=Image.Dither.NONE)


#: What `save_animation` writes for each output suffix.
ANIMATION_FORMATS = {".gif": "GIF", ".png": "PNG", ".apng": "PNG"}


def save_animation(animation: Animation, output, fps: float = 2.0) -> list[Path]:
    """Write the animation: an animated GIF or PNG (APNG) that loops, or — when `output`
    is a folder (an existing one, or a path ending in a separator) — one PNG per frame,
    ``frame_0001.png`` on.  Nothing is left half-written.  Returns the files written."""
    from .files import atomic_write

    if not fps > 0 or fps > 100:
        raise ParameterError(f"must be above 0 and at most 100 frames a second, got {fps}",
                             parameter="fps")
    folder = str(output).endswith(("/", "\\"))
    output = Path(output)
    if folder or output.is_dir():
        return _save_frames(animation, output)
    suffix = output.suffix.lower()
    if suffix not in ANIMATION_FORMATS:
        raise ParameterError(f"{output}: write .gif, .png (animated PNG) or a folder/ of "
                             f"frames, not {suffix or 'no extension'!r}", parameter="output")
    images = list(frames(animation))
    duration = round(1000 / fps)
    atomic_write(output, lambda out: images[0].save(
        out, format=ANIMATION_FORMATS[suffix], save_all=True, append_images=images[1:],
        duration=duration, loop=0, **({"default_image": False} if suffix != ".gif" else {})))
    return [output]


def _save_frames(animation: Animation, folder: Path) -> list[Path]:
    """One PNG per frame into `folder`: all frames are made first, then written."""
    from .files import atomic_write

    images = list(frames(animation))
    written = []
    digits = max(4, len(str(len(images))))
    for index, image in enumerate(images, 1):
        path = folder / f"frame_{index:0{digits}d}.png"
        atomic_write(path, lambda out: image.save(out, format="PNG", optimize=True))
        written.append(path)
    return written
