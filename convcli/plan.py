"""Shape, padding and stride arithmetic of a 2-D convolution: the one place that knows it.

Everything here is pure Python (numpy only to build index maps), so the commands that
merely explain a convolution can use it without loading the compiled core.
"""

from __future__ import annotations

import functools
import math
import numbers
from dataclasses import dataclass, fields

from .errors import ParameterError

#: The padding modes, by their canonical (PyTorch / numpy) names.
PAD_MODES = ("zeros", "reflect", "symmetric", "replicate", "circular")

#: What each library calls its border modes, mapped to convcli's names.  A name can be
#: written alone when every library that uses it means the same mode, or qualified as
#: ``library:name`` (``scipy:reflect`` is ``symmetric``!).
PAD_MODE_NAMES = {
    "pytorch": {"zeros": "zeros", "reflect": "reflect", "replicate": "replicate",
                "circular": "circular"},
    "numpy": {"constant": "zeros", "reflect": "reflect", "symmetric": "symmetric",
              "edge": "replicate", "wrap": "circular"},
    "scipy": {"constant": "zeros", "grid-constant": "zeros", "mirror": "reflect",
              "reflect": "symmetric", "grid-mirror": "symmetric", "nearest": "replicate",
              "wrap": "circular", "grid-wrap": "circular"},
    "opencv": {"border_constant": "zeros", "border_reflect_101": "reflect",
               "border_reflect101": "reflect", "border_default": "reflect",
               "reflect_101": "reflect", "reflect101": "reflect",
               "border_reflect": "symmetric", "reflect": "symmetric",
               "border_replicate": "replicate", "replicate": "replicate",
               "border_wrap": "circular", "wrap": "circular", "constant": "zeros"},
    "imagemagick": {"black": "zeros", "mirror": "symmetric", "edge": "replicate",
                    "tile": "circular"},
    "matlab": {"symmetric": "symmetric", "replicate": "replicate", "circular": "circular"},
}
PAD_MODE_NAMES["torch"] = PAD_MODE_NAMES["pytorch"]
PAD_MODE_NAMES["cv2"] = PAD_MODE_NAMES["opencv"]
PAD_MODE_NAMES["magick"] = PAD_MODE_NAMES["imagemagick"]

# A bare name means convcli's own mode where it has one; otherwise the mode that every
# library using the name agrees on.  Names the libraries disagree on must be qualified.
_BARE = {mode: mode for mode in PAD_MODES}
_AMBIGUOUS: dict[str, dict[str, str]] = {}
for _library, _names in PAD_MODE_NAMES.items():
    for _name, _mode in _names.items():
        if _name in PAD_MODES:
            continue
        _AMBIGUOUS.setdefault(_name, {})[_library] = _mode
for _name, _meanings in list(_AMBIGUOUS.items()):
    if len(set(_meanings.values())) == 1:
        _BARE[_name] = next(iter(_meanings.values()))
        del _AMBIGUOUS[_name]


def pad_mode_choices() -> list[str]:
    """Every name `canonical_pad_mode` accepts without a library prefix, canonical first."""
    return list(PAD_MODES) + sorted(set(_BARE) - set(PAD_MODES))


def canonical_pad_mode(name: str) -> str:
    """Map a padding-mode name, bare or ``library:name``, to one of `PAD_MODES`.

    >>> canonical_pad_mode("scipy:reflect")
    'symmetric'
    """
    if not isinstance(name, str):
        raise ParameterError(f"pad_mode must be a string, got {name!r}")
    key = name.strip().lower().replace("cv2.", "").replace(" ", "")
    if ":" in key:
        library, _, native = key.partition(":")
        if library not in PAD_MODE_NAMES:
            raise ParameterError(
                f"pad_mode {name!r}: unknown library {library!r}; "
                f"expected one of {', '.join(sorted(PAD_MODE_NAMES))}")
        names = PAD_MODE_NAMES[library]
        if native not in names:
            raise ParameterError(
                f"pad_mode {name!r}: {library} has no mode {native!r}; "
                f"it has {', '.join(sorted(names))}")
        return names[native]
    if key in _BARE:
        return _BARE[key]
    if key in _AMBIGUOUS:
        meanings = ", ".join(f"{lib}:{key} = {mode}" for lib, mode in _AMBIGUOUS[key].items())
        raise ParameterError(
            f"pad_mode {name!r} means different modes in different libraries ({meanings}); "
            f"write the library's name before it, or one of {', '.join(PAD_MODES)}")
    raise ParameterError(
        f"pad_mode {name!r} is not known; expected one of {', '.join(PAD_MODES)} "
        f"or an alias ({', '.join(sorted(set(_BARE) - set(PAD_MODES)))}, "
        f"or library:name such as scipy:reflect)")


def shape_text(shape) -> str:
    """3×224×224."""
    return "×".join(str(v) for v in shape)


@functools.lru_cache(maxsize=256)
def source_index(length: int, before: int, after: int, pad_mode: str):
    """For each position of a padded axis, the index of the real sample it copies.

    Position ``p`` of the padded axis (``0 <= p < before + length + after``) stands
    for ``p - before`` of the real axis.  Zero padding gives -1 outside the axis.  Wide
    padding (wider than the axis) repeats the pattern as ``numpy.pad`` does.  Remembered
    (a training step asks for the same maps ten times), so read-only.
    """
    import numpy as np

    index = sources_at(np.arange(-before, length + after, dtype=np.int64), length, pad_mode)
    index.setflags(write=False)
    return index


def sources_at(p, length: int, pad_mode: str):
    """`source_index` at some positions `p` of the real axis (int64 array; negative or
    ``>= length`` in the padding), without an array the size of the axis."""
    import numpy as np

    if pad_mode == "zeros":
        return np.where((p >= 0) & (p < length), p, -1)
    if pad_mode == "replicate":
        return np.clip(p, 0, length - 1)
    if pad_mode == "circular":
        return p % length
    if pad_mode == "reflect":
        if length == 1:
            return np.zeros_like(p)
        period = 2 * (length - 1)
        m = p % period
        return np.where(m < length, m, period - m)
    if pad_mode == "symmetric":
        m = p % (2 * length)
        return np.where(m < length, m, 2 * length - 1 - m)
    raise ParameterError(f"pad_mode {pad_mode!r} is not one of {', '.join(PAD_MODES)}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def int_pair(value, name: str, minimum: int = 1) -> tuple[int, int]:
    """An int or a pair of ints (height, width), each at least `minimum`."""
    items = (value, value) if _is_int(value) else value
    try:
        items = tuple(items)
    except TypeError:
        items = ()
    if len(items) != 2 or not all(_is_int(v) for v in items):
        raise ParameterError(f"must be an int or a pair of ints (h, w), got {value!r}",
                             parameter=name)
    if min(items) < minimum:
        raise ParameterError(f"must be at least {minimum} in each direction, got {value!r}",
                             parameter=name)
    return int(items[0]), int(items[1])


def padding_amounts(padding, kernel: tuple[int, int], dilation: tuple[int, int],
                    stride: tuple[int, int]) -> tuple[int, int, int, int]:
    """Resolve a padding spec to (top, bottom, left, right).

    `padding` is an int, (ph, pw), (top, bottom, left, right), or one of "valid",
    "same" (stride 1 only; for even kernels the extra row/column goes bottom/right, as in
    PyTorch) and "full" (every partial overlap, d·(k−1) on each side).
    """
    spans = [d * (k - 1) for d, k in zip(dilation, kernel)]
    if isinstance(padding, str):
        kind = padding.strip().lower()
        if kind == "valid":
            return 0, 0, 0, 0
        if kind == "same":
            if stride != (1, 1):
                raise ParameterError(
                    f"padding='same' needs stride 1 (as in PyTorch), got stride {stride}; "
                    "give the padding as numbers instead")
            (th, tw) = spans
            return th // 2, th - th // 2, tw // 2, tw - tw // 2
        if kind == "full":
            return spans[0], spans[0], spans[1], spans[1]
        raise ParameterError(
            f"padding {padding!r} is not allowed; expected valid, same, full, an int, "
            "(ph, pw) or (top, bottom, left, right)")
    if _is_int(padding):
        amounts = (padding,) * 4
    else:
        try:
            amounts = tuple(padding)
        except TypeError:
            amounts = ()
        if len(amounts) == 2:
            amounts = (amounts[0], amounts[0], amounts[1], amounts[1])
    if len(amounts) != 4 or not all(_is_int(v) for v in amounts):
        raise ParameterError(
            f"padding must be valid, same, full, an int, (ph, pw) or (top, bottom, left, right); "
            f"got {padding!r}")
    if min(amounts) < 0:
        raise ParameterError(f"padding must not be negative, got {padding!r}")
    return tuple(int(v) for v in amounts)


def check_window_padding(window, padding, given) -> None:
    """Refuse a pooling `window` (kh, kw) whose `padding` (top, bottom, left, right) is
    more than half its size on any side, as PyTorch does (a window could then hold
    padding only); the message quotes `given`, the padding as the caller wrote it."""
    kh, kw = window
    top, bottom, left, right = padding
    if max(top, bottom) > kh // 2 or max(left, right) > kw // 2:
        raise ParameterError(f"{given!r} must be at most half the {kh}×{kw} window, as in "
                             "PyTorch", parameter="padding")


def output_length(size: int, pad_total: int, kernel: int, stride: int, dilation: int) -> int:
    """⌊(size + pads − d·(k−1) − 1)/s⌋ + 1, PyTorch's output size (may be < 1)."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


@dataclass(frozen=True)
class ConvPlan:
    """A checked 2-D convolution: its input, weight and output shapes and every option."""

    input_shape: tuple[int, int, int, int]     # N, Cin, H, W
    weight_shape: tuple[int, int, int, int]    # Cout, Cin/groups, kh, kw
    stride: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]         # top, bottom, left, right
    groups: int
    pad_mode: str
    mode: str

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        n, _, h, w = self.input_shape
        cout, _, kh, kw = self.weight_shape
        top, bottom, left, right = self.padding
        return (n, cout,
                output_length(h, top + bottom, kh, self.stride[0], self.dilation[0]),
                output_length(w, left + right, kw, self.stride[1], self.dilation[1]))

    def row_sources(self):
        """`source_index` of the padded rows (int64 array)."""
        top, bottom = self.padding[:2]
        return source_index(self.input_shape[2], top, bottom, self.pad_mode)

    def col_sources(self):
        """`source_index` of the padded columns (int64 array)."""
        left, right = self.padding[2:]
        return source_index(self.input_shape[3], left, right, self.pad_mode)

    def band(self, first: int, stop: int) -> "BandPlan":
        """The same convolution restricted to output rows [first, stop)."""
        values = {f.name: getattr(self, f.name) for f in fields(ConvPlan)}
        return BandPlan(**values, first=first, stop=stop)


@dataclass(frozen=True)
class BandPlan(ConvPlan):
    """Output rows [first, stop) of a convolution, computed from just the input rows they
    need (`input_rows`): its row map is re-indexed to those rows, so every algorithm runs on
    a band of the image exactly as on the whole."""

    first: int = 0
    stop: int = 0

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        n, cout, _, wo = ConvPlan.output_shape.fget(self)
        return n, cout, self.stop - self.first, wo

    def _padded_rows(self):
        (sh, dh), kh = (self.stride[0], self.dilation[0]), self.weight_shape[2]
        full = ConvPlan.row_sources(self)
        return full[self.first * sh:(self.stop - 1) * sh + (kh - 1) * dh + 1]

    def input_rows(self) -> tuple[int, int]:
        """The input rows [start, stop) the band reads (empty if it reads only padding)."""
        rows = self._padded_rows()
        real = rows[rows >= 0]
        return (int(real.min()), int(real.max()) + 1) if real.size else (0, 0)

    def row_sources(self):
        rows = self._padded_rows()
        start = self.input_rows()[0]
        return rows - start * (rows >= 0)


def make_plan(input_shape, weight_shape, stride=1, padding=0, dilation=1, groups=1,
              pad_mode="zeros", mode="corr", window: str = "kernel") -> ConvPlan:
    """Check a convolution's shapes and options and resolve them into a `ConvPlan`.

    Parameters
    ----------
    input_shape : tuple
        (N, Cin, H, W) or (Cin, H, W).
    weight_shape : tuple
        (Cout, Cin/groups, kh, kw), PyTorch's layout.
    stride, padding, dilation, groups, pad_mode, mode
        As in `convcli.conv2d`.
    window : str
        What error messages call the kernel ("window" for pooling).

    Raises
    ------
    ParameterError
        A ValueError naming the parameter, what was given and what is allowed.
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) == 3:
        input_shape = (1,) + input_shape
    if len(input_shape) != 4 or min(input_shape) < 0 or min(input_shape[2:]) < 1:
        raise ParameterError(
            f"must have shape (Cin, H, W) or (N, Cin, H, W) with H, W ≥ 1, got {input_shape}",
            parameter="input")
    weight_shape = tuple(int(v) for v in weight_shape)
    if len(weight_shape) != 4 or min(weight_shape) < 0 or 0 in weight_shape[::2] + weight_shape[3:] \
            or (weight_shape[1] == 0) != (input_shape[1] == 0):
        raise ParameterError(
            f"must have shape (Cout, Cin/groups, kh, kw) with no empty axis (Cin/groups = 0 "
            f"only for an input of no channels), got {weight_shape}; a single 2-D kernel k is "
            "weight k[None, None]", parameter="weight")
    if not _is_int(groups) or groups < 1:
        raise ParameterError(f"groups must be a positive int, got {groups!r}")
    cin, cout, cin_per_group = input_shape[1], weight_shape[0], weight_shape[1]
    if cin % groups or cout % groups:
        raise ParameterError(
            f"groups={groups} must divide both input channels ({cin}) and output channels "
            f"({cout})")
    if cin_per_group * groups != cin:
        raise ParameterError(
            f"weight has {cin_per_group} input channels per group but the input has {cin} "
            f"channels in {groups} group(s), so weight.shape[1] must be {cin // groups}")
    if mode not in ("corr", "conv"):
        raise ParameterError(f"mode must be 'corr' (cross-correlation, PyTorch's) or 'conv' "
                             f"(flipped kernel), got {mode!r}")
    stride = int_pair(stride, "stride")
    dilation = int_pair(dilation, "dilation")
    kernel = weight_shape[2:]
    pads = padding_amounts(padding, kernel, dilation, stride)
    plan = ConvPlan(input_shape, weight_shape, stride, dilation, pads, groups,
                    canonical_pad_mode(pad_mode), mode)
    ho, wo = plan.output_shape[2:]
    if ho < 1 or wo < 1:
        h, w = input_shape[2:]
        top, bottom, left, right = pads
        span = "" if dilation == (1, 1) else (
            f" (spanning {dilation[0] * (kernel[0] - 1) + 1}×{dilation[1] * (kernel[1] - 1) + 1}"
            f" with dilation {dilation[0]}×{dilation[1]})")
        padded = "" if pads == (0, 0, 0, 0) else f" padded to {h + top + bottom}×{w + left + right}"
        raise ParameterError(f"input {h}×{w}{padded} is smaller than the "
                             f"{kernel[0]}×{kernel[1]} {window}{span}")
    return plan


# ----------------------------------------------------------------------------------------
# Choosing an algorithm

#: Singular values below this share of the largest count as zero when a kernel is split
#: into separable terms (float32 results carry about 1e-7, so smaller terms are invisible).
SEPARABLE_RTOL = 1e-6

# Cost model, in seconds per unit of work on one core, measured on the reference machine
# (bench/run.py); only their ratios matter for the choice.
DIRECT_MAC = 1 / 18e9           # fused multiply-add in the direct kernel
ROW_FILL = 1 / 2e9              # padding one input value into a row buffer
GEMM_MAC = 1 / 27e9             # multiply-add in BLAS sgemm
IM2COL_VALUE = 1 / 1e9          # writing one patch-matrix value
FFT_FLOP = 1 / 3.5e9            # numpy's FFT, per 2.5·n·log2(n) flop, with tile handling
FFT_MAX_SPECTRA = 2**26         # complex values of kernel spectra the FFT path may hold
FFT_MAX_TILE = 320              # larger tiles fall out of cache: slower per value
FFT_TASK = 60e-6                # fixed cost of one tile of one group (numpy calls)
FFT_MIX = 1 / 0.5e9             # complex multiply-add of spectra (numpy, not BLAS)
FFT_SETUP = 0.5e-3              # fixed cost of a call: kernel spectra, thread hand-offs
NUMPY_MAC = 1 / 1.2e9           # multiply-add of the numpy path (two array passes)
NUMPY_PAD = 1 / 0.5e9           # building one value of its padded input
NUMPY_CALL = 10e-6              # one numpy operation's fixed cost


def low_rank_terms(matrix):
    """Split a 2-D kernel into rank-1 terms Σ_r outer(column_r, row_r) by SVD, dropping
    singular values under `SEPARABLE_RTOL` of the largest; returns (columns, rows) as
    (R, kh) and (R, kw) arrays (R ≥ 1)."""
    import numpy as np

    u, values, vt = np.linalg.svd(np.asarray(matrix, np.float64))
    rank = max(1, int(np.count_nonzero(values > SEPARABLE_RTOL * values[0]))) if values[0] > 0 else 1
    root = np.sqrt(values[:rank])
    return (u[:, :rank] * root).T, vt[:rank] * root[:, None]


#: Kernel ranks already computed, by the weights' bytes (the planner meets the same
#: weights again and again: every band of an image, every epoch of a learned kernel).
_RANKS: dict = {}
_RANKS_KEPT = 256
#: Kernels at least this many taps on their shorter side are ranked on a random sketch
#: (see `kernel_rank`) when only small ranks matter.
SKETCH_SIDE = 16


def kernel_rank(weight, at_most: int | None = None) -> int:
    """The largest rank (within `SEPARABLE_RTOL`) of the 2-D kernels of a weight array.

    With `at_most`, the answer is only exact up to it: any larger rank is reported as
    `at_most`.  Large kernels are then ranked on ``kernel @ G`` for a random (kw, at_most)
    G, whose rank is the kernel's up to at_most, so that ruling a rank out costs
    O(kh·kw·at_most) instead of an SVD of every kernel.  Results are remembered per
    distinct weight.
    """
    import hashlib

    import numpy as np

    weight = np.asarray(weight)
    kh, kw = weight.shape[-2:]
    full = min(kh, kw)
    at_most = full if at_most is None else max(1, min(at_most, full))
    sketch = min(kh, kw) >= SKETCH_SIDE and at_most < full
    key = (weight.shape, str(weight.dtype), at_most if sketch else full,
           hashlib.blake2b(np.ascontiguousarray(weight).view(np.uint8), digest_size=16).digest())
    if key not in _RANKS:
        mats = np.asarray(weight, np.float64).reshape(-1, kh, kw)
        if sketch:
            mats = mats @ np.random.default_rng(0).standard_normal((kw, at_most))
        values = np.linalg.svd(mats, compute_uv=False)          # all kernels at once
        ranks = np.count_nonzero(values > SEPARABLE_RTOL * values[:, :1], axis=1)
        if len(_RANKS) >= _RANKS_KEPT:
            _RANKS.clear()
        _RANKS[key] = max(1, int(ranks.max()))
    return min(_RANKS[key], at_most)


#: Tile sizes for numpy's FFT: 2^a·(1, 3 or 5), which it transforms fastest.
FFT_SIZES = sorted(2 ** a * b for a in range(1, 13) for b in (1, 3, 5) if 2 ** a * b <= 4096)


@functools.lru_cache(maxsize=256)
def fft_tiling(plan: ConvPlan) -> tuple[int, int, float]:
    """The overlap-save tile (rows, columns) of FFT sizes with the least estimated work for
    this convolution, and that work in seconds of one core (infinite if the kernel spectra
    would exceed `FFT_MAX_SPECTRA`)."""
    n, cin = plan.input_shape[:2]
    cout, cin_g, kh, kw = plan.weight_shape
    spans = [d * (k - 1) + 1 for d, k in zip(plan.dilation, (kh, kw))]
    dense = [s * (o - 1) + 1 for s, o in zip(plan.stride, plan.output_shape[2:])]

    def sizes(span: int, length: int) -> list[int]:
        fits = [t for t in FFT_SIZES if t >= 2 * span] or [1 << (2 * span - 1).bit_length()]
        whole = next((t for t in fits if t >= length + span - 1), 4096)
        return [t for t in fits if t <= max(fits[0], min(whole, FFT_MAX_TILE))]

    def cost(rows: int, cols: int) -> float:
        tiles = n * math.ceil(dense[0] / (rows - spans[0] + 1)) * \
            math.ceil(dense[1] / (cols - spans[1] + 1))
        transform = 2.5 * rows * cols * math.log2(rows * cols) * FFT_FLOP / 2   # real input
        spectra = cout * cin_g * rows * (cols // 2 + 1)
        if spectra * plan.groups > FFT_MAX_SPECTRA:
            return math.inf
        return tiles * ((cin + cout) * transform + spectra * FFT_MIX + plan.groups * FFT_TASK)

    pairs = [(r, c) for r in sizes(spans[0], dense[0]) for c in sizes(spans[1], dense[1])]
    best = min(pairs, key=lambda pair: cost(*pair))
    return (*best, FFT_SETUP + cost(*best))


def _work(plan: ConvPlan) -> dict:
    """The counts the cost models share."""
    n, cin, h, w = plan.input_shape
    cout, cin_g, kh, kw = plan.weight_shape
    _, _, ho, wo = plan.output_shape
    padded_width = w + plan.padding[2] + plan.padding[3]
    rows_needed = plan.stride[0] * ho + plan.dilation[0] * (kh - 1)
    return {"macs": n * ho * wo * cout * cin_g * kh * kw,
            "fills": n * cout * cin_g * rows_needed * padded_width,
            "padded": n * cin * rows_needed * padded_width,
            "patches": n * ho * wo * cin * kh * kw,
            "separable_macs": n * cout * cin_g * (ho * padded_width * kh + ho * wo * kw)}


def direct_cost(plan: ConvPlan, rank: int) -> float:
    """Seconds (one core) of the direct kernel."""
    work = _work(plan)
    return work["macs"] * DIRECT_MAC + work["fills"] * ROW_FILL


def separable_cost(plan: ConvPlan, rank: int) -> float:
    """Seconds (one core) of `rank` column-then-row passes per kernel."""
    work = _work(plan)
    return rank * work["separable_macs"] * DIRECT_MAC + work["fills"] * ROW_FILL


def gemm_cost(plan: ConvPlan, rank: int) -> float:
    """Seconds (one core) of im2col and BLAS (not worth it under 8 filters per group)."""
    if plan.weight_shape[0] // plan.groups < 8:
        return math.inf
    work = _work(plan)
    return work["macs"] * GEMM_MAC + work["patches"] * IM2COL_VALUE


def fft_cost(plan: ConvPlan, rank: int) -> float:
    """Seconds (one core) of the overlap-save FFT, at its best tiling."""
    return fft_tiling(plan)[2]


def numpy_cost(plan: ConvPlan, rank: int) -> float:
    """Seconds (one core) of the numpy path, tap by tap."""
    n = plan.input_shape[0]
    _, cin_g, kh, kw = plan.weight_shape
    work = _work(plan)
    return (work["macs"] * NUMPY_MAC + work["padded"] * NUMPY_PAD
            + n * plan.groups * cin_g * kh * kw * 2 * NUMPY_CALL)


def algorithm_costs(plan: ConvPlan, rank: int) -> dict[str, float]:
    """Estimated seconds (one core) of each algorithm of `convcli.algorithms.ALGORITHMS`
    for this convolution, its kernels being of rank `rank`."""
    from .algorithms import ALGORITHMS

    return {name: algorithm.seconds(plan, rank) for name, algorithm in ALGORITHMS.items()}


#: float32's unit roundoff.
FLOAT32_EPS = 2.0 ** -24
#: An inexact algorithm may serve an integer output only while its error bound stays under
#: this share of one output step (half a step would flip roundings).
ROUNDING_MARGIN = 0.25


def rounding_error(algorithm: str, plan: ConvPlan, weight, magnitude: float) -> float:
    """A bound on the float32 error, beyond direct summation's, that `algorithm` adds to
    each output value when the inputs are at most `magnitude` in size.

    fft: the transforms' error grows as ε·log2(tile)·‖x‖∞·Σ|k| (every output mixes all of
    a tile); separable: each rank-1 term rounds its column and row passes, ε·(kh + kw)·
    Σ_r ‖column_r‖₁·‖row_r‖₁·‖x‖∞.  The exact algorithms add nothing.
    """
    import numpy as np

    from .algorithms import ALGORITHMS

    if ALGORITHMS[algorithm].exact:
        return 0.0
    weight = np.asarray(weight, np.float64)
    kh, kw = weight.shape[-2:]
    if algorithm == "fft":
        rows, cols, _ = fft_tiling(plan)
        gain = float(np.abs(weight).sum(axis=(1, 2, 3)).max())
        return FLOAT32_EPS * math.log2(rows * cols) * gain * magnitude
    gains = [np.abs(c).sum(axis=1) @ np.abs(r).sum(axis=1)
             for c, r in (low_rank_terms(k) for k in weight.reshape(-1, kh, kw))]
    per_filter = np.reshape(gains, weight.shape[:2]).sum(axis=1)
    return FLOAT32_EPS * (kh + kw) * float(per_filter.max()) * magnitude


def choose_algorithm(plan: ConvPlan, weight, jit: bool | None = None, rounding=None) -> str:
    """The cheapest algorithm by `algorithm_costs`: among the compiled ones and fft when
    `jit`, else among those that need no compiled code; another replaces the exact
    reference (direct, or numpy) only when it is clearly cheaper.  By default (None) the
    core's load counts as `convcli.backend.jit_pays` says.

    `rounding`, if given, is called (only when an inexact algorithm would win) for
    (step, magnitude), or None: the result will be rounded to multiples of `step` from
    inputs at most `magnitude` in size, so an inexact algorithm is chosen only if its
    `rounding_error` stays under `ROUNDING_MARGIN` of a step.
    """
    from .algorithms import ALGORITHMS
    from .backend import jit_pays

    costs = _costs(plan, weight)
    if jit is None:
        jit = jit_pays(jit_saving(plan, weight, costs))
    exact = "direct" if jit else "numpy"         # the reference, without FFT rounding
    candidates = [name for name, a in ALGORITHMS.items() if a.compiled == jit or name == "fft"]
    best = min(candidates, key=costs.get)
    if ALGORITHMS[best].exact or costs[best] >= 0.8 * costs[exact]:
        return best if costs[best] < 0.8 * costs[exact] else exact
    bounds = rounding() if rounding is not None else None
    if bounds is not None:
        step, magnitude = bounds
        candidates = [name for name in candidates
                      if rounding_error(name, plan, weight, magnitude) < ROUNDING_MARGIN * step]
        best = min(candidates, key=costs.get)
    return best if costs[best] < 0.8 * costs[exact] else exact


def jit_saving(plan: ConvPlan, weight, costs: dict | None = None) -> float:
    """Seconds the compiled core would save on this convolution (its load not counted)."""
    from .algorithms import ALGORITHMS

    costs = costs or _costs(plan, weight)
    compiled = min(costs[name] for name, a in ALGORITHMS.items() if a.compiled)
    plain = min(costs[name] for name, a in ALGORITHMS.items() if not a.compiled)
    return max(0.0, plain - compiled)


def _costs(plan: ConvPlan, weight) -> dict[str, float]:
    """`algorithm_costs` with the kernels' rank, computed (see `kernel_rank`) only when
    separability could win, and only as far as the ranks at which it still could."""
    costs = algorithm_costs(plan, 1)
    if min(costs, key=costs.get) != "separable" or min(plan.weight_shape[2:]) == 1:
        return costs
    others = min(v for name, v in costs.items() if name != "separable")
    per_rank = costs["separable"] - separable_cost(plan, 0)
    winning = int((others - separable_cost(plan, 0)) / per_rank) if per_rank > 0 else 1
    costs["separable"] = separable_cost(plan, kernel_rank(weight, winning + 1))
    return costs
