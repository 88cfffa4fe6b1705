"""Click parameter types and the option groups several commands share.

Only click and pure-Python convcli modules are imported here, so ``--help`` stays instant.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import click

from .algorithms import NAMES as ALGORITHM_NAMES
from .errors import ParameterError
from .limits import MAX_WORKERS
from .plan import PAD_MODES, canonical_pad_mode, pad_mode_choices


def _ints(text: str, separators: str) -> list[int]:
    """Whole numbers between separators; an empty or other part (``1x``, ``1,,2``,
    ``1.5``) raises ValueError."""
    parts = re.split(f"[{separators}]", text.strip())
    if not all(re.fullmatch(r"\s*[-+]?\d+\s*", p) for p in parts):
        raise ValueError(text)
    return [int(p) for p in parts]


class FiniteFloatRange(click.FloatRange):
    """A `click.FloatRange` that also refuses NaN and infinity."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class PairType(click.ParamType):
    """N or HxW (also H,W) → an int or an (h, w) pair, each at least `minimum`."""

    def __init__(self, name: str, minimum: int = 1):
        self.name = name
        self.minimum = minimum

    def get_metavar(self, param, *args, **kwargs):
        return self.name

    def convert(self, value, param, ctx):
        if isinstance(value, (int, tuple)):
            return value
        try:
            numbers = _ints(value, "x,")
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2):
            self.fail(f"{value!r} is not N or HxW (whole numbers)", param, ctx)
        if min(numbers) < self.minimum:
            self.fail(f"{value!r}: each value must be at least {self.minimum}", param, ctx)
        return numbers[0] if len(numbers) == 1 else tuple(numbers)


class PaddingType(click.ParamType):
    """auto | valid | same | full | N | PHxPW | T,B,L,R."""

    name = "padding"

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        text = value.strip().lower()
        if text in ("auto", "valid", "same", "full"):
            return text
        try:
            numbers = _ints(text, ",") if "," in text else _ints(text, "x")
        except ValueError:
            numbers = []
        if len(numbers) not in (1, 2, 4) or ("," in text and len(numbers) != 4):
            self.fail(f"{value!r} is not auto, valid, same, full, N, PHxPW or T,B,L,R", param, ctx)
        if min(numbers) < 0:
            self.fail(f"{value!r}: padding cannot be negative", param, ctx)
        return numbers[0] if len(numbers) == 1 else tuple(numbers)


class PadModeType(click.ParamType):
    """A padding mode or any library's name for one (see `convcli.plan.PAD_MODE_NAMES`)."""

    name = "mode"

    def get_metavar(self, param, *args, **kwargs):
        return "[" + "|".join(PAD_MODES) + "]"

    def convert(self, value, param, ctx):
        try:
            return canonical_pad_mode(value)
        except ParameterError as exc:
            self.fail(str(exc), param, ctx)

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        return [CompletionItem(n) for n in pad_mode_choices() if n.startswith(incomplete)]


class FloatListType(click.ParamType):
    """One number, or comma-separated numbers (one per output channel)."""

    name = "B[,B…]"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(v) for v in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a number or comma-separated numbers", param, ctx)
        if not all(math.isfinite(v) for v in numbers):
            self.fail(f"{value!r}: every number must be finite (no nan or inf)", param, ctx)
        return numbers


class ShapeType(click.ParamType):
    """CxHxW or HxW → (C, H, W) with C = 1 for HxW; HxWxC where that is the only sensible
    reading (see `shape_reading`)."""

    name = "CxHxW"

    def convert(self, value, param, ctx):
        if isinstance(value, tuple):
            return value
        try:
            numbers = _ints(value, "x×,")
        except ValueError:
            numbers = []
        if len(numbers) not in (2, 3) or min(numbers) < 1:
            self.fail(f"{value!r} is not CxHxW or HxW with positive whole numbers", param, ctx)
        if len(numbers) == 2:
            return (1, *numbers)
        shape, note = shape_reading(tuple(numbers))
        if note:
            click.echo(f"Note: {value} {note}", err=True)
        return shape


#: The most channels an image has (gray, gray + alpha, RGB, RGBA).
IMAGE_CHANNELS = 4


def shape_reading(numbers: tuple[int, int, int]) -> tuple[tuple[int, int, int], str]:
    """(C, H, W) for three sizes, and a note when they were read as H×W×C.

    Three sizes are C×H×W, as PyTorch writes them, unless the last could be an image's
    channel count (at most `IMAGE_CHANNELS`) and the first could not (224x224x3, as
    articles and numpy write images): that is H×W×C.
    """
    a, b, c = numbers
    if c <= IMAGE_CHANNELS < a:
        return (c, a, b), (f"is read as H×W×C: {c} channel{'s' * (c > 1)} of {a}×{b} "
                           f"(C×H×W {c}x{a}x{b})")
    return numbers, ""


#: --kernels, for every command that resolves kernel specs.
CATALOGUES = click.option(
    "--kernels", "catalogues", multiple=True, metavar="FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A user kernel catalogue (YAML) whose entries add to or override the built-in ones; "
         "repeatable. $CONVCLI_KERNELS lists more.")
def report_option(what: str):
    """--report FILE.json|FILE.html, for every command that can write what it did: `what`
    says what the report holds."""
    return click.option("--report", "report_path", default=None, metavar="FILE.json|FILE.html",
                        type=click.Path(dir_okay=False, path_type=Path),
                        help=f"Write {what}: JSON, or for .html a self-contained page.")


def weights_option(what: str, required: bool = False):
    """--weights WEIGHTS.npz (trained by ``convcli train``), for every command that uses
    trained layers: `what` says what the command does with them."""
    return click.option("--weights", "weights_path", required=required, default=None,
                        metavar="WEIGHTS.npz", type=click.Path(dir_okay=False, path_type=Path),
                        help=f"Trained weights (convcli train): {what}.")


#: --json, for every command that prints a report.
JSON = click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")

STRIDE = PairType("N|SHxSW")
DILATION = PairType("N|DHxDW")
PADDING = PaddingType()
PAD_MODE = PadModeType()
FLOATS = FloatListType()
SHAPE = ShapeType()


def conv_options(default_padding: str = "auto", default_pad_mode: str = "reflect",
                 compute: bool = True):
    """The decorator that adds the options of `conv2d` to a command (with --algo and
    --threads if it `compute`s convolutions)."""
    def decorate(command):
        options = [
            click.option("--stride", type=STRIDE, default=1, show_default=True,
                         help="Step between output pixels: N or SHxSW."),
            click.option("--padding", type=PADDING, default=default_padding, show_default=True,
                         help="valid, same (output size = input size; stride 1 only, as in "
                              "PyTorch), full, N, PHxPW or T,B,L,R; auto is same at stride 1 "
                              "and the same amounts (centred) when strided."),
            click.option("--pad-mode", type=PAD_MODE, default=default_pad_mode,
                         show_default=True,
                         help="Border values: zeros, reflect (dcb|abcd, OpenCV's default, "
                              "scipy:mirror), symmetric (cba|abcd, scipy:reflect, ImageMagick "
                              "Mirror), replicate (aaa|abcd), circular (bcd|abcd); numpy, "
                              "scipy, OpenCV and ImageMagick names are accepted, and "
                              "LIBRARY:NAME for names they disagree on."),
            click.option("--dilation", type=DILATION, default=1, show_default=True,
                         help="Spacing between kernel taps: N or DHxDW."),
            click.option("--groups", type=click.IntRange(min=1), default=1, show_default=True,
                         help="Channel groups of a 4-D kernel (Cout, Cin/groups, kh, kw)."),
            click.option("--mode", type=click.Choice(["corr", "conv"]), default="corr",
                         show_default=True,
                         help="corr: cross-correlation as PyTorch; conv: flip the kernel "
                              "(true convolution, ImageMagick's Convolve)."),
        ]
        if compute:
            options += [
                click.option("--algo", type=click.Choice(("auto",) + ALGORITHM_NAMES),
                             default="auto", show_default=True,
                             help="How to convolve: direct, separable (SVD terms), fft "
                                  "(overlap-save tiles), gemm (im2col + BLAS) or numpy (no "
                                  "compiled code to load); auto picks the cheapest by a cost "
                                  "model."),
                click.option("--threads", type=click.IntRange(1, MAX_WORKERS), default=None,
                             envvar="CONVCLI_THREADS", show_envvar=True,
                             help="Threads for the convolution (default: every CPU; a batch "
                                  "divides them between its workers)."),
            ]
        for option in reversed(options):
            command = option(command)
        return command
    return decorate
