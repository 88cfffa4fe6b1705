"""`conv2d`: PyTorch's ``torch.nn.functional.conv2d`` on numpy arrays."""

from __future__ import annotations

import numpy as np

from .algorithms import ALGORITHMS
from .errors import ParameterError
from .limits import check_convolution
from .plan import check_window_padding, int_pair, make_plan


def _as_float_array(value, name: str, dtype) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ParameterError(f"{name} must hold real numbers, got dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=dtype)


def compute_dtype(*arrays) -> np.dtype:
    """float64 when any of `arrays` is float64, else float32."""
    if any(np.asarray(a).dtype == np.float64 for a in arrays if a is not None):
        return np.dtype(np.float64)
    return np.dtype(np.float32)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           pad_mode="zeros", mode="corr", algo="auto") -> np.ndarray:
    """2-D convolution with the semantics of PyTorch's ``torch.nn.functional.conv2d``.

    Each output channel is one filter: one kernel per input channel of its group,
    cross-correlated with that channel, summed, plus the filter's bias.

    Parameters
    ----------
    x : array_like
        (Cin, H, W) or (N, Cin, H, W).
    weight : array_like
        (Cout, Cin/groups, kh, kw).
    bias : array_like, optional
        (Cout,).
    stride, dilation : int or (int, int)
    padding : int, (ph, pw), (top, bottom, left, right), "valid", "same" or "full"
    groups : int
        Input and output channels are split into this many groups; ``groups == Cin``
        with ``Cout == Cin`` is a depthwise convolution.
    pad_mode : str
        zeros, reflect, symmetric, replicate, circular, or another library's name for
        one of them (see `convcli.plan.canonical_pad_mode`).
    mode : {"corr", "conv"}
        Cross-correlation (PyTorch's) or true convolution (kernel flipped in both axes).
    algo : {"auto", "direct", "separable", "fft", "gemm", "numpy"}
        How to compute it; ``auto`` asks `convcli.plan.choose_algorithm`.  All give the
        same result within floating-point rounding.

    Returns
    -------
    ndarray
        (Cout, Ho, Wo) or (N, Cout, Ho, Wo); float64 if x or weight is float64,
        else float32.

    Raises
    ------
    ValueError
        For any input or option that is not allowed; the message names it.

    Notes
    -----
    An empty batch (N = 0) gives an empty result, and an input of no channels (Cin = 0)
    a result of no channels, as in PyTorch.  ``auto`` loads the compiled core when it pays
    (see `convcli.backend`): in a long-lived process from the second call that gains.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import conv2d
    >>> x = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    >>> conv2d(x, np.ones((1, 1, 3, 3), np.float32))           # sums of 3×3 windows
    array([[[45., 54.],
            [81., 90.]]], dtype=float32)
    >>> conv2d(x, np.ones((2, 1, 3, 3)), padding="same").shape   # float64 weights: float64
    (2, 4, 4)
    """
    source = x
    plan, x, weight, bias = prepare(x, weight, bias, stride, padding, dilation, groups,
                                    pad_mode, mode)
    out = np.empty(plan.output_shape, x.dtype)
    if out.size == 0 or plan.input_shape[1] == 0:
        # nothing to compute; like PyTorch, an input of no channels gives no channels
        resolve_algorithm(algo, plan, weight, jit=False)
        out = out[:, :0] if plan.input_shape[1] == 0 else out
        return out if x.ndim == 4 else out[0]
    algorithm = resolve_algorithm(algo, plan, weight,
                                  rounding=lambda: integer_rounding(source, x, weight))
    run(algorithm, x.reshape(plan.input_shape), weight, bias, plan, out)
    return out if x.ndim == 4 else out[0]


def integer_rounding(source, x: np.ndarray, weight: np.ndarray) -> tuple[float, float] | None:
    """(1, max |x|) when integer inputs and integer weights make every exact result an
    integer, which an inexact algorithm must then not round to the wrong one (see
    `convcli.plan.choose_algorithm`); else None."""
    if not np.array_equal(weight, np.round(weight)):
        return None
    if np.asarray(source).dtype.kind not in "biu" and not np.array_equal(x, np.round(x)):
        return None
    return 1.0, float(np.abs(x).max())


def prepare(x, weight, bias, stride, padding, dilation, groups, pad_mode, mode):
    """Check and canonicalise conv2d's arguments: (plan, x, weight, bias) as contiguous
    arrays of one float dtype, the weight already flipped for mode="conv"."""
    dtype = compute_dtype(x, weight)
    x = _as_float_array(x, "x", dtype)
    weight = _as_float_array(weight, "weight", dtype)
    if x.ndim not in (3, 4):
        raise ParameterError(f"x must have shape (Cin, H, W) or (N, Cin, H, W), got {x.shape}")
    plan = make_plan(x.shape, weight.shape, stride, padding, dilation, groups, pad_mode, mode)
    check_convolution(plan)
    weight = correlation_weight(weight, mode)
    cout = weight.shape[0]
    if bias is None:
        bias = np.zeros(cout, dtype)
    else:
        bias = _as_float_array(bias, "bias", dtype)
        if bias.shape != (cout,):
            raise ParameterError(f"bias must have shape ({cout},) (one per output channel), "
                                 f"got {bias.shape}")
        if not np.isfinite(bias).all():
            raise ParameterError("bias contains NaN or infinity; every value must be finite")
    return plan, x, weight, bias


def correlation_weight(weight: np.ndarray, mode: str) -> np.ndarray:
    """The weights cross-correlation uses: checked finite, flipped in both axes for
    mode="conv" (true convolution)."""
    if not np.isfinite(weight).all():
        raise ParameterError("weight contains NaN or infinity; every weight must be finite")
    return np.ascontiguousarray(weight[:, :, ::-1, ::-1]) if mode == "conv" else weight


def resolve_algorithm(algo: str, plan, weight, jit: bool | None = None, rounding=None) -> str:
    """`algo` checked, or the planner's choice for ``auto`` (see `choose_algorithm`)."""
    from .algorithms import NAMES
    from .plan import choose_algorithm

    if algo == "auto":
        return choose_algorithm(plan, weight, jit, rounding)
    if algo not in NAMES:
        raise ParameterError(f"algo {algo!r} is not one of auto, {', '.join(NAMES)}")
    return algo


def run(algorithm: str, x, weight, bias, plan, out) -> None:
    """Compute the convolution `plan` by `algorithm` into `out`: the engine's one entry.

    x is (N, Cin, H, W) and out (N, Cout, Ho, Wo) as `plan` says (a `BandPlan` computes a
    band of output rows from the input rows it names), weight and bias as `prepare` makes
    them; all contiguous, of one float dtype.
    """
    ALGORITHMS[algorithm].run(x, weight, bias, plan, out)


#: Output channels a direct task computes from one padding of its input rows.
CHANNEL_CHUNK = 8


def block_rows(plan, channels: int = 1) -> int:
    """Output rows per task: large enough to amortise the halo, small enough that every
    thread gets several tasks and a task's accumulators (`channels` of them) stay in cache."""
    from .threads import thread_count

    n = plan.input_shape[0]
    cout = plan.weight_shape[0]
    ho, wo = plan.output_shape[2:]
    tasks_wanted = 8 * thread_count()
    return max(1, min(64, ho * n * cout // (channels * tasks_wanted),
                      2**16 // max(1, wo * channels)))


def run_direct(x, weight, bias, plan, out):
    from ._core import conv as core

    chunk = min(CHANNEL_CHUNK, plan.weight_shape[0] // plan.groups)
    core.correlate(x, weight, bias, plan.row_sources(), plan.col_sources(), *plan.stride,
                   *plan.dilation, plan.padding[2], plan.groups, block_rows(plan, chunk),
                   chunk, out)


def run_separable(x, weight, bias, plan, out):
    """Each 2-D kernel as rank-1 terms (exact: a full-rank kernel keeps all its terms)."""
    from ._core import conv as core
    from .plan import low_rank_terms

    cout, cin_g, kh, kw = weight.shape
    terms = [[low_rank_terms(weight[co, ci]) for ci in range(cin_g)] for co in range(cout)]
    rank = max(c.shape[0] for row in terms for c, _ in row)
    cols = np.zeros((cout, cin_g, rank, kh), x.dtype)
    rows = np.zeros((cout, cin_g, rank, kw), x.dtype)
    for co in range(cout):
        for ci in range(cin_g):
            c, r = terms[co][ci]
            cols[co, ci, :c.shape[0]] = c
            rows[co, ci, :r.shape[0]] = r
    core.correlate_separable(x, cols, rows, bias, plan.row_sources(), plan.col_sources(),
                             *plan.stride, *plan.dilation, plan.padding[2], plan.groups,
                             block_rows(plan), out)


#: Patch values the gemm path builds at once (32 MB of float32): one band for most layers;
#: larger patch matrices are built in bands in one reused buffer, which is faster than
#: touching fresh memory for all of it (64 → 64 channels at 128²: 20 → 16 ms).
GEMM_BAND_VALUES = 2**23


def im2col(x: np.ndarray, plan, rows: slice = slice(None), out: np.ndarray | None = None,
           channel_major: bool = False, images: tuple[int, int] | None = None) -> np.ndarray:
    """The patch matrix of one (Cin, H, W) image or of a batch (N, Cin, H, W), the images'
    columns side by side: column p holds the Cin·kh·kw input values (padding included) that
    output pixel p sees, so that for each group g ``weight_g.reshape(Cout/groups, -1) @
    patches[rows of g]`` is that group's output.  `rows` limits it to a band of output rows
    (columns in C order of (N, rows, Wo)) and `images` (n0, n1) to images n0 … n1 − 1;
    `out`, if given, is the C-contiguous array to write it into; `channel_major` says x is
    (Cin, N, H, W)."""
    from ._core import conv as core

    _, _, kh, kw = plan.weight_shape
    ho, wo = plan.output_shape[2:]
    first, stop, _ = rows.indices(ho)
    x = np.ascontiguousarray(x[None] if x.ndim == 3 else x, compute_dtype(x))
    count, channels = x.shape[1::-1] if channel_major else x.shape[:2]
    n0, n1 = images or (0, count)
    if out is None:
        out = np.empty((channels * kh * kw, (n1 - n0) * max(0, stop - first) * wo), x.dtype)
    return core.im2col(x, plan.row_sources(), plan.col_sources(), kh, kw, *plan.stride,
                       *plan.dilation, plan.padding[2], first, wo, channel_major, n0, n1 - n0,
                       out)


def gemm_bands(plan) -> tuple[int, int]:
    """(images, rows): the gemm path's patch matrix holds that many images' bands of that
    many output rows, at most `GEMM_BAND_VALUES` values (all of a batch's rows when one
    image fits, else one image in bands of rows)."""
    n, cin = plan.input_shape[:2]
    _, _, kh, kw = plan.weight_shape
    ho, wo = plan.output_shape[2:]
    column = cin * kh * kw
    if column * ho * wo <= GEMM_BAND_VALUES:
        return max(1, min(n, GEMM_BAND_VALUES // (column * ho * wo))), ho
    return 1, max(1, min(ho, GEMM_BAND_VALUES // (column * wo)))


def gemm_band_ranges(plan):
    """The gemm path's bands, as (n0, n1, first, last): images n0 … n1 − 1, output rows
    first … last − 1 (see `gemm_bands`)."""
    images, band = gemm_bands(plan)
    n, ho = plan.input_shape[0], plan.output_shape[2]
    for n0 in range(0, n, images):
        for first in range(0, ho, band):
            yield n0, min(n, n0 + images), first, min(ho, first + band)


def run_gemm(x, weight, bias, plan, out):
    """im2col of a band of images (or of one image's rows, see `gemm_bands`) into one
    reused buffer, then one BLAS product per group for the whole band; the product, plus
    the bias, goes into the output in the same pass that puts its images back apart."""
    cout, cin_g, kh, kw = weight.shape
    groups = plan.groups
    k = cin_g * kh * kw
    n = x.shape[0]
    ho, wo = plan.output_shape[2:]
    images, band = gemm_bands(plan)
    matrices = weight.reshape(groups, cout // groups, k)
    buffer = np.empty(groups * k * images * band * wo, x.dtype)
    result = out.reshape(n, cout, ho * wo)
    for n0, n1, first, last in gemm_band_ranges(plan):
        size = (n1 - n0) * (last - first) * wo
        patches = buffer[:groups * k * size].reshape(groups, k, size)
        im2col(x, plan, slice(first, last), patches.reshape(groups * k, size),
               images=(n0, n1))
        product = np.matmul(matrices, patches).reshape(cout, n1 - n0, size // (n1 - n0))
        np.add(product.transpose(1, 0, 2), bias[:, None],
               out=result[n0:n1, :, first * wo:last * wo])


#: Patch values the channel-major gemm path (training) builds at once (8 MB of float32):
#: a batch under it is one chunk, whose patches the backward pass reuses; larger batches
#: go in chunks of images, built again for the backward pass.  Smaller chunks, though
#: nearer the cache, cost more than they save (one step of samples/nets/shapes_cnn.yaml,
#: 627,200 patch values for conv1: 2.4 ms in one chunk, 2.9 ms in chunks of 2**17).
CHUNK_VALUES = 2**21


def image_chunks(plan) -> list[tuple[int, int]]:
    """(n0, n1) ranges of images whose patch matrix has about `CHUNK_VALUES` values (at
    least one image each)."""
    n, cin = plan.input_shape[:2]
    _, _, kh, kw = plan.weight_shape
    ho, wo = plan.output_shape[2:]
    step = max(1, CHUNK_VALUES // max(1, cin * kh * kw * ho * wo))
    return [(n0, min(n, n0 + step)) for n0 in range(0, n, step)]


def gemm_channel_major(x, weight, bias, plan):
    """`conv2d` by `plan` of a batch kept channel-major, (Cin, N, H, W) → (Cout, N, Ho,
    Wo), the layout training keeps: chunks of images (`image_chunks`), each one BLAS
    product per group, written in place with no transposition (`bias` may be None).
    Returns (output, the patch matrix if the batch was one chunk, else None)."""
    cout, cin_g, kh, kw = weight.shape
    groups, k = plan.groups, cin_g * kh * kw
    n, _, ho, wo = plan.output_shape
    out = np.empty((cout, n, ho, wo), x.dtype)
    flat = out.reshape(groups, cout // groups, n * ho * wo)
    matrices = weight.reshape(groups, cout // groups, k)
    chunks = image_chunks(plan)
    buffer = np.empty(groups * k * max(n1 - n0 for n0, n1 in chunks) * ho * wo, x.dtype)
    for n0, n1 in chunks:
        size = (n1 - n0) * ho * wo
        patches = im2col(x, plan, out=buffer[:groups * k * size].reshape(groups * k, size),
                         channel_major=True, images=(n0, n1))
        np.matmul(matrices, patches.reshape(groups, k, size),
                  out=flat[:, :, n0 * ho * wo:n1 * ho * wo])
    if bias is not None:
        out += bias[:, None, None, None]
    return out, (buffer.reshape(groups * k, -1) if len(chunks) == 1 else None)


def run_fft(x, weight, bias, plan, out):
    """Overlap-save: tiles of the padded input times the kernels' spectra (numpy's FFT),
    tiles spread over the thread pool; strides keep every s-th value of the stride-1
    result."""
    from .plan import fft_tiling
    from .threads import parallel_for

    cout, cin_g, kh, kw = weight.shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    span_h, span_w = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    tile_h, tile_w, _ = fft_tiling(plan)
    step_h, step_w = tile_h - span_h + 1, tile_w - span_w + 1
    dilated = np.zeros((cout, cin_g, span_h, span_w))
    dilated[:, :, ::dh, ::dw] = weight
    # correlation is convolution with the flipped kernel; its valid part starts at span − 1
    groups, cout_g = plan.groups, cout // plan.groups
    spectra = np.fft.rfft2(dilated[:, :, ::-1, ::-1], s=(tile_h, tile_w)).astype(
        np.complex64 if x.dtype == np.float32 else np.complex128).reshape(
        groups, cout_g, cin_g, tile_h, -1)
    row_src, col_src = plan.row_sources(), plan.col_sources()
    ho, wo = plan.output_shape[2:]
    dense_h, dense_w = sh * (ho - 1) + 1, sw * (wo - 1) + 1       # the stride-1 rows needed

    def run(n: int, g: int, y: int, x0: int) -> None:
        # "ortho" scales both transforms by 1/√N, the same product as scaling the inverse
        # by 1/N; numpy's unscaled float32 transforms are several times slower
        block = padded_block(x[n, g * cin_g:(g + 1) * cin_g], row_src[y:y + tile_h],
                             col_src[x0:x0 + tile_w])
        inputs = np.fft.rfft2(block, s=(tile_h, tile_w), norm="ortho")
        if cin_g == 1:
            mixed = spectra[g, :, 0] * inputs
        else:
            mixed = np.einsum("ichw,chw->ihw", spectra[g], inputs)
        result_h, result_w = min(step_h, dense_h - y), min(step_w, dense_w - x0)
        dense = np.fft.irfft2(mixed, s=(tile_h, tile_w), norm="ortho")[
            :, span_h - 1:span_h - 1 + result_h, span_w - 1:span_w - 1 + result_w]
        # keep the stride grid: dense row y + a is output row (y + a) / sh when divisible
        a0, b0 = (-y) % sh, (-x0) % sw
        picked = dense[:, a0::sh, b0::sw]
        oy, ox = (y + a0) // sh, (x0 + b0) // sw
        filters = slice(g * cout_g, (g + 1) * cout_g)
        np.add(picked, bias[filters, None, None],
               out=out[n, filters, oy:oy + picked.shape[1], ox:ox + picked.shape[2]])

    jobs = [(n, g, y, x0) for n in range(x.shape[0]) for g in range(groups)
            for y in range(0, dense_h, step_h) for x0 in range(0, dense_w, step_w)]

    def run_jobs(start: int, stop: int) -> None:
        for job in jobs[start:stop]:
            run(*job)

    parallel_for(run_jobs, len(jobs))


def padded_block(planes: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """planes (..., H, W) at the padded rows and columns that index maps give (-1 is
    zero): a view where they are a plain rectangle of the input, else a copy made of one
    row gather per run of consecutive columns (the interior is one run)."""
    def consecutive(index):
        return index[0] >= 0 and index[-1] - index[0] == index.size - 1 and bool(
            np.all(np.diff(index) == 1))

    if consecutive(rows) and consecutive(cols):
        return planes[..., rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    safe_rows = np.maximum(rows, 0)
    block = np.empty(planes.shape[:-2] + (rows.size, cols.size), planes.dtype)
    breaks = np.flatnonzero((np.diff(cols) != 1) | (cols[:-1] < 0)) + 1
    for start, stop in zip([0, *breaks], [*breaks, cols.size]):
        first = cols[start]
        block[..., start:stop] = planes[..., safe_rows, first:first + stop - start] \
            if first >= 0 else 0
    block[..., rows < 0, :] = 0
    return block


#: Output values per block of the numpy path: its block and product arrays stay in cache.
NUMPY_BLOCK = 2**15


def run_numpy(x, weight, bias, plan, out):
    """Tap by tap, each a multiply-add over a block of output rows of every channel (numpy
    only): slower per value than the compiled core, but with nothing to load or compile.
    Blocks small enough to stay in cache run in parallel (numpy frees the GIL)."""
    from .threads import parallel_for

    n = x.shape[0]
    cout, cin_g, kh, kw = weight.shape
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    groups, cout_g = plan.groups, cout // plan.groups
    ho, wo = plan.output_shape[2:]
    padded = padded_block(x, plan.row_sources(), plan.col_sources())
    padded = padded.reshape(n, groups, cin_g, *padded.shape[2:])
    taps = weight.reshape(groups, cout_g, cin_g, kh, kw)
    result = out.reshape(n, groups, cout_g, ho, wo)
    rows = max(1, NUMPY_BLOCK // (n * cout * wo))

    def run_blocks(start, stop):
        y0, y1 = start * rows, min(ho, stop * rows)
        block = result[:, :, :, y0:y1]
        block[...] = bias.reshape(groups, cout_g, 1, 1)
        product = np.empty_like(block)
        for ci in range(cin_g):
            for i in range(kh):
                top = y0 * sh + i * dh
                for j in range(kw):
                    window = padded[:, :, ci, top:top + sh * (y1 - y0 - 1) + 1:sh,
                                    j * dw:j * dw + sw * (wo - 1) + 1:sw]
                    np.multiply(taps[:, :, ci, i, j, None, None], window[:, :, None], out=product)
                    block += product

    parallel_for(run_blocks, (ho + rows - 1) // rows)


def warm_up() -> None:
    """Load the compiled core that applying a kernel to an 8-bit image uses (from numba's
    cache, or compiling it) before it is timed or forked into workers."""
    from ._core import codecs, pixels

    planes = conv2d(np.zeros((1, 4, 4), np.float32), np.ones((1, 1, 3, 3), np.float32),
                    padding=1, pad_mode="reflect", algo="direct")
    pixels.finite_range(planes)
    codecs.png_filter_rows(np.zeros((4, 4), np.uint8), 1, np.zeros(4, np.uint8))


def _pooling_input(x) -> np.ndarray:
    x = np.asarray(x)
    x = _as_float_array(x, "x", compute_dtype(x))
    if x.ndim not in (3, 4):
        raise ParameterError(f"x must have shape (C, H, W) or (N, C, H, W), got {x.shape}")
    return x


def max_pool2d(x, kernel, stride=None, padding=0, dilation=1) -> np.ndarray:
    """PyTorch's ``max_pool2d``: the largest value under each window of each channel.

    Parameters
    ----------
    x : array_like
        (C, H, W) or (N, C, H, W).
    kernel : int or (int, int)
        The window.
    stride : int or (int, int), optional
        Defaults to `kernel`.
    padding, dilation : int or (int, int)
        As in `conv2d`; padding never wins.

    Returns
    -------
    ndarray
        (C, Ho, Wo) or (N, C, Ho, Wo), float64 if x is, else float32.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import max_pool2d
    >>> max_pool2d(np.arange(16.0).reshape(1, 4, 4), 2)
    array([[[ 5.,  7.],
            [13., 15.]]])
    """
    x = _pooling_input(x)
    plan = pool_plan(x.shape, kernel, stride, padding, dilation)
    out, _ = max_pool_planned(x.reshape(plan.input_shape), plan)
    return out if x.ndim == 4 else out[0]


def pool_plan(shape, kernel, stride=None, padding=0, dilation=1):
    """The `ConvPlan` of a pooling window over an input of `shape` (stride defaults to the
    window; each channel is its own group; padding at most half the window)."""
    kernel = int_pair(kernel, "kernel")
    stride = kernel if stride is None else stride
    plan = make_plan(shape, (shape[-3], 1, *kernel), stride, padding, dilation, shape[-3],
                     "zeros", window="window")
    check_window_padding(plan.weight_shape[2:], plan.padding, padding)
    return plan


def max_pool_planned(x: np.ndarray, plan, indices: bool = False):
    """Max pooling of a clean batch (N, C, H, W) by `plan`: (output, where), where = the
    flat index in its plane of each window's maximum if `indices`, else None."""
    from ._core import conv as core

    out = np.empty(plan.output_shape, x.dtype)
    where = np.empty(plan.output_shape if indices else (0, 0, 0, 0), np.int64)
    if out.size:
        core.max_pool(x, plan.row_sources(), plan.col_sources(), *plan.weight_shape[2:],
                      *plan.stride, *plan.dilation, out, where)
    return out, (where if indices else None)


def avg_pool2d(x, kernel, stride=None, padding=0, count_include_pad=True) -> np.ndarray:
    """PyTorch's ``avg_pool2d``: the mean under each window of each channel.

    Parameters
    ----------
    x : array_like
        (C, H, W) or (N, C, H, W).
    kernel : int or (int, int)
        The window.
    stride : int or (int, int), optional
        Defaults to `kernel`.
    padding : int or (int, int)
        Zeros on each side, at most half the window (as in PyTorch).
    count_include_pad : bool
        Whether the padded zeros count in the mean (PyTorch's default), or only the
        window's real pixels.

    Returns
    -------
    ndarray
        (C, Ho, Wo) or (N, C, Ho, Wo), float64 if x is, else float32.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import avg_pool2d
    >>> avg_pool2d(np.arange(16.0).reshape(1, 4, 4), 2)
    array([[[ 2.5,  4.5],
            [10.5, 12.5]]])
    >>> avg_pool2d(np.ones((1, 2, 2)), 2, stride=1, padding=1, count_include_pad=False)
    array([[[1., 1., 1.],
            [1., 1., 1.],
            [1., 1., 1.]]])
    """
    x = _pooling_input(x)
    kernel = int_pair(kernel, "kernel")
    pads = int_pair(padding, "padding", minimum=0)
    check_window_padding(kernel, (pads[0], pads[0], pads[1], pads[1]), padding)
    channels = x.shape[-3]
    stride = kernel if stride is None else stride
    window = np.full((channels, 1, *kernel), 1 / (kernel[0] * kernel[1]), x.dtype)
    out = conv2d(x, window, None, stride, pads, 1, channels)
    if not count_include_pad and any(pads):
        counts = conv2d(np.ones((1, *x.shape[-2:]), x.dtype),
                        np.ones((1, 1, *kernel), x.dtype), None, stride, pads)
        out *= (kernel[0] * kernel[1]) / counts[0]
    return out
