"""A convolution as a linear map: the equivalent matrix, the patch (im2col) matrix, and the
parameter and cost comparison with a dense layer.

The matrix M has one row per output value and one column per input value, both in C order
of (Cout, Ho, Wo) and (Cin, H, W), so that ``M @ x.ravel() + bias_per_row`` equals
``conv2d(x, …).ravel()``.  A padded pixel copies a real one (or is zero), so a weight that
lands on padding adds to the column of the pixel it copies.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .layers import ConvOp, DenseOp
from .conv import correlation_weight, im2col
from .limits import MAX_DENSE_ENTRIES, MAX_SPARSE_ENTRIES, MAX_WEIGHTS, check_size, product
from .plan import ConvPlan, make_plan, sources_at

#: Largest dense matrix (in entries) `equivalent_matrix` builds: 2**26 float64 = 512 MiB.
DENSE_LIMIT = MAX_DENSE_ENTRIES


def _plan_and_weight(input_shape, weight, stride, padding, dilation, groups, pad_mode, mode):
    weight = np.asarray(weight, np.float64)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ParameterError(f"input_shape must be (Cin, H, W), got {input_shape}")
    plan = make_plan(input_shape, weight.shape, stride, padding, dilation, groups, pad_mode, mode)
    return plan, correlation_weight(weight, mode)


def matrix_shape(plan: ConvPlan) -> tuple[int, int]:
    """(rows, columns) of the equivalent matrix: (Cout·Ho·Wo, Cin·H·W)."""
    _, cout, ho, wo = plan.output_shape
    _, cin, h, w = plan.input_shape
    return cout * ho * wo, cin * h * w


def _tap_sources(plan: ConvPlan):
    """Source row of every (tap row i, output row oy) and source column of every (j, ox);
    -1 where the tap falls in zero padding."""
    _, _, ho, wo = plan.output_shape
    kh, kw = plan.weight_shape[2:]
    (sh, sw), (dh, dw) = plan.stride, plan.dilation
    rows = plan.row_sources()[np.arange(kh)[:, None] * dh + np.arange(ho)[None, :] * sh]
    cols = plan.col_sources()[np.arange(kw)[:, None] * dw + np.arange(wo)[None, :] * sw]
    return rows, cols


def matrix_entries(plan: ConvPlan):
    """Every placement of a weight in the matrix, before equal cells are summed.

    Returns (row, col, tap) int64 arrays; `tap` is the flat index of the weight in the
    (Cout, Cin/groups, kh, kw) array.
    """
    _, cout, ho, wo = plan.output_shape
    _, _, h, w = plan.input_shape
    _, cin_g, kh, kw = plan.weight_shape
    cout_g = cout // plan.groups
    src_rows, src_cols = _tap_sources(plan)
    co = np.arange(cout)[:, None, None, None]
    ci = np.arange(cin_g)[None, :, None, None]
    out_index = (co * ho + np.arange(ho)[:, None]) * wo + np.arange(wo)    # (Cout, 1, Ho, Wo)
    channel = (co // cout_g) * cin_g + ci                                   # (Cout, Cig, 1, 1)
    rows, cols, taps = [], [], []
    for i in range(kh):
        for j in range(kw):
            r = src_rows[i][:, None]
            c = src_cols[j][None, :]
            valid = np.broadcast_to((r >= 0) & (c >= 0), (cout, cin_g, ho, wo))
            col = (channel * h + r) * w + c
            tap = (co * cin_g + ci) * kh * kw + i * kw + j
            rows.append(np.broadcast_to(out_index, valid.shape)[valid])
            cols.append(np.broadcast_to(col, valid.shape)[valid])
            taps.append(np.broadcast_to(tap, valid.shape)[valid])
    return (np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64),
            np.concatenate(taps).astype(np.int64))


def check_dense_size(shape: tuple[int, int]) -> None:
    """Refuse a dense matrix of more than `DENSE_LIMIT` entries, naming its size."""
    size = shape[0] * shape[1]
    if size > DENSE_LIMIT:
        raise ParameterError(
            f"the dense matrix would be {shape[0]:,}×{shape[1]:,} = {size:,} entries "
            f"({size * 8 / 2**20:,.0f} MiB as float64), over the limit of {DENSE_LIMIT:,}; "
            "use the sparse form (equivalent_matrix_sparse, sparse=FILE.npz) or a smaller "
            "input_shape=")


def check_sparse_size(plan: ConvPlan) -> None:
    """Refuse an equivalent matrix whose weight placements (one per weight and output
    value) exceed `MAX_SPARSE_ENTRIES`, before building any."""
    _, cin, h, w = plan.input_shape
    kh, kw = plan.weight_shape[2:]
    check_size(f"{cin}×{h}×{w} with a {kh}×{kw} kernel gives",
               product(plan.weight_shape[:2]) * product(plan.output_shape[2:]) * kh * kw,
               MAX_SPARSE_ENTRIES, "weight placements in the matrix",
               hint="choose a smaller input_shape=",
               parameter="input_shape")


@dataclass
class SparseMatrix:
    """The equivalent matrix as coordinates: M[row[k], col[k]] = value[k], rows in C order."""

    row: np.ndarray
    col: np.ndarray
    value: np.ndarray
    shape: tuple[int, int]

    def __matmul__(self, vector: np.ndarray) -> np.ndarray:
        return np.bincount(self.row, weights=self.value * vector[self.col],
                           minlength=self.shape[0])

    def todense(self) -> np.ndarray:
        check_dense_size(self.shape)
        dense = np.zeros(self.shape)
        dense[self.row, self.col] = self.value
        return dense

    def arrays(self) -> dict[str, np.ndarray]:
        """row, col, value and shape as arrays, as ``.npz`` files hold them."""
        return {"row": self.row, "col": self.col, "value": self.value,
                "shape": np.array(self.shape)}


def equivalent_matrix_sparse(input_shape, weight, stride=1, padding=0, dilation=1, groups=1,
                             pad_mode="zeros", mode="corr") -> SparseMatrix:
    """The equivalent matrix in coordinate form; no scipy needed.

    Parameters
    ----------
    input_shape, weight, stride, padding, dilation, groups, pad_mode, mode
        As in `equivalent_matrix`.

    Returns
    -------
    SparseMatrix
        Its nonzero entries (``row``, ``col``, ``value``) and ``shape``; ``M @ v``
        multiplies and ``M.todense()`` expands it.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import equivalent_matrix_sparse
    >>> m = equivalent_matrix_sparse((1, 64, 64), np.ones((1, 1, 3, 3)), padding=1)
    >>> m.shape, m.value.size           # 9 taps per output, fewer at the borders
    ((4096, 4096), 36100)
    """
    plan, weight = _plan_and_weight(input_shape, weight, stride, padding, dilation, groups,
                                    pad_mode, mode)
    check_sparse_size(plan)
    rows, cols, taps = matrix_entries(plan)
    shape = matrix_shape(plan)
    linear = rows * shape[1] + cols
    cells, inverse = np.unique(linear, return_inverse=True)
    values = np.bincount(inverse, weights=weight.ravel()[taps], minlength=cells.size)
    keep = values != 0
    return SparseMatrix(cells[keep] // shape[1], cells[keep] % shape[1], values[keep], shape)


def equivalent_matrix(input_shape, weight, stride=1, padding=0, dilation=1, groups=1,
                      pad_mode="zeros", mode="corr") -> np.ndarray:
    """The dense matrix M of a convolution, such that
    ``M @ x.ravel() + np.repeat(bias, Ho * Wo) == conv2d(x, weight, bias, …).ravel()``.

    Parameters
    ----------
    input_shape : tuple
        (Cin, H, W).
    weight : array_like
        (Cout, Cin/groups, kh, kw).
    stride, padding, dilation, groups, pad_mode, mode
        As in `convcli.conv2d`; every padding mode is linear, so every mode has a matrix.

    Returns
    -------
    ndarray
        (Cout·Ho·Wo, Cin·H·W) float64.

    Raises
    ------
    ValueError
        For the options `conv2d` refuses, and for a matrix over `DENSE_LIMIT` entries
        (use `equivalent_matrix_sparse`).

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import conv2d, equivalent_matrix
    >>> weight = np.array([[[[1.0, -1.0]]]])                 # a 1×2 difference
    >>> equivalent_matrix((1, 1, 3), weight)
    array([[ 1., -1.,  0.],
           [ 0.,  1., -1.]])
    >>> x = np.random.default_rng(0).random((2, 5, 5))
    >>> w = np.random.default_rng(1).random((3, 2, 3, 3))
    >>> m = equivalent_matrix(x.shape, w, padding=1, pad_mode="reflect")
    >>> bool(np.allclose(m @ x.ravel(), conv2d(x, w, padding=1, pad_mode="reflect").ravel()))
    True
    """
    plan, _ = _plan_and_weight(input_shape, weight, stride, padding, dilation, groups, pad_mode,
                               mode)
    check_dense_size(matrix_shape(plan))
    return equivalent_matrix_sparse(input_shape, weight, stride, padding, dilation, groups,
                                    pad_mode, mode).todense()


def matrix_nonzeros(plan: ConvPlan, weight: np.ndarray) -> int:
    """The exact number of nonzero entries of the equivalent matrix, without building it.

    Output rows (and columns) fall into a few classes by how their taps map to input rows:
    all distinct in the interior, merged or dropped near borders.  The count is a sum over
    pairs of classes, each weight slice summed per cell as the matrix does.
    """
    weight = correlation_weight(np.asarray(weight, np.float64), plan.mode)
    _, _, ho, wo = plan.output_shape
    _, _, h, w = plan.input_shape
    kh, kw = weight.shape[2:]
    top, bottom, left, right = plan.padding
    row_classes = _axis_classes(h, top, kh, plan.stride[0], plan.dilation[0], ho, plan.pad_mode)
    col_classes = _axis_classes(w, left, kw, plan.stride[1], plan.dilation[1], wo,
                                plan.pad_mode)
    slices = weight.reshape(-1, kh * kw)
    tolerance = 1e-12 * max(1.0, float(np.abs(weight).max()))
    total = 0
    for row_class, n_rows in row_classes.items():
        for col_class, n_cols in col_classes.items():
            cells = {}
            for i, r in enumerate(row_class):
                for j, c in enumerate(col_class):
                    if r >= 0 and c >= 0:
                        cells.setdefault((r, c), []).append(i * kw + j)
            if not cells:
                continue
            assign = np.zeros((kh * kw, len(cells)))
            for k, taps in enumerate(cells.values()):
                assign[taps, k] = 1
            nonzero = int(np.count_nonzero(np.abs(slices @ assign) > tolerance))
            total += n_rows * n_cols * nonzero
    return total


def _axis_classes(length: int, before: int, kernel: int, stride: int, dilation: int,
                  outputs: int, pad_mode: str) -> Counter:
    """How many outputs of one axis map their taps to input positions in each pattern
    (`_relabel`), counting the interior (every tap a distinct real position) without
    enumerating it, so an axis of any length costs only its borders."""
    span = (kernel - 1) * dilation
    first = min(outputs, -(-before // stride))                   # first interior output
    last = max(first - 1, min(outputs - 1, (length - 1 - span + before) // stride))
    check_size(f"{before} gives outputs at the border", first + outputs - 1 - last,
               MAX_WEIGHTS // kernel, "outputs", hint="use less padding", parameter="padding")
    border = list(range(first)) + list(range(last + 1, outputs))
    classes = Counter({tuple(range(kernel)): last - first + 1} if last >= first else {})
    if border:
        taps = np.arange(kernel, dtype=np.int64) * dilation - before
        positions = np.array(border, dtype=np.int64)[:, None] * stride + taps[None, :]
        classes.update(_relabel(row) for row in sources_at(positions, length, pad_mode))
    return classes


def _relabel(sources: np.ndarray) -> tuple[int, ...]:
    """Sources of one output row's taps, renamed by first appearance (-1 kept)."""
    names: dict[int, int] = {}
    return tuple(-1 if s < 0 else names.setdefault(int(s), len(names)) for s in sources)


def conv_vs_dense(input_shape, weight, stride=1, padding=0, dilation=1, groups=1,
                  pad_mode="zeros", mode="corr", bias: bool = False,
                  dense_out: int | None = None) -> dict:
    """Parameters and costs of a convolution and of a dense layer on the same input (what
    ``convcli stats`` prints).

    Parameters
    ----------
    input_shape : tuple
        (Cin, H, W).
    weight : array_like
        (Cout, Cin/groups, kh, kw).
    stride, padding, dilation, groups, pad_mode, mode
        As in `convcli.conv2d`.
    bias : bool
        Whether both layers have a bias.
    dense_out : int, optional
        The dense layer's outputs; by default as many as the convolution has.

    Returns
    -------
    dict
        Shapes, parameter counts, multiply-adds, and the equivalent matrix's shape,
        nonzeros and density.  Counts come from the layers themselves (`convcli.layers`).

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import conv_vs_dense
    >>> report = conv_vs_dense((3, 32, 32), np.ones((8, 3, 3, 3)), padding=1)
    >>> report["conv_params"], report["dense_params"], report["matrix_nonzeros"]
    (216, 25165824, 212064)
    """
    plan, _ = _plan_and_weight(input_shape, weight, stride, padding, dilation, groups,
                               pad_mode, mode)
    weight = np.asarray(weight, np.float64)
    _, cin, h, w = plan.input_shape
    in_shape = (cin, h, w)
    cout, _, kh, kw = plan.weight_shape
    conv = ConvOp((kh, kw), plan.stride, plan.padding, plan.dilation, cout, plan.groups, bias,
                plan.pad_mode)
    out_shape = conv.output_shape(in_shape)
    dense = DenseOp(dense_out or product(out_shape), bias)
    conv_params, dense_params = conv.params(in_shape), dense.params(in_shape)
    rows, cols = matrix_shape(plan)
    nonzeros = matrix_nonzeros(plan, weight)
    return {
        "input_shape": list(in_shape), "output_shape": list(out_shape),
        "weight_shape": list(plan.weight_shape), "groups": plan.groups,
        "conv_weights": conv_params.weights, "conv_bias": conv_params.bias,
        "conv_params": conv_params.total,
        "dense_in": product(in_shape), "dense_out": dense.out,
        "dense_weights": dense_params.weights, "dense_bias": dense_params.bias,
        "dense_params": dense_params.total,
        "param_ratio": dense_params.total / conv_params.total,
        "conv_macs": conv.macs(in_shape), "dense_macs": dense.macs(in_shape),
        "dense_bytes_float32": dense_params.weights * 4,
        "matrix_shape": [rows, cols], "matrix_nonzeros": nonzeros,
        "matrix_density": nonzeros / (rows * cols),
        "weight_reuse": out_shape[1] * out_shape[2],
    }


#: Largest matrix (in entries) that `explain_matrix` spells out cell by cell.
CELLS_LIMIT = 64 * 48


@dataclass
class MatrixView:
    """A matrix view of a convolution, checked against `conv2d` on random inputs."""

    title: str
    shape: tuple[int, int]
    values: np.ndarray | None          # dense values, if built
    sparse: SparseMatrix | None        # the equivalent matrix in coordinate form
    cells: list[list[str]] | None      # symbols per cell, for small matrices
    nonzeros: int | None
    max_abs_error: float
    trials: int

    @property
    def density(self) -> float:
        return self.nonzeros / (self.shape[0] * self.shape[1])

    def summary(self) -> dict:
        key = "matrix_shape" if self.sparse is not None else "im2col_shape"
        out = {key: list(self.shape), "max_abs_error": self.max_abs_error, "trials": self.trials}
        if self.nonzeros is not None:
            out.update(nonzeros=self.nonzeros, density=self.density)
        return out


def explain_matrix(plan: ConvPlan, weight: np.ndarray, bias: np.ndarray | None = None,
                   patch_matrix: bool = False, seed: int = 0, dense: bool = False,
                   trials: int = 3) -> MatrixView:
    """Build the equivalent matrix (or the im2col patch matrix) of a convolution and verify
    it on `trials` random inputs against `conv2d`.

    Small matrices come with symbolic cells: ``k11+k13`` where weights add up, ``x23`` for
    input pixels in the patch matrix.  `dense` asks for dense values of any size (up to
    `DENSE_LIMIT`).  Without `bias`, the convolution has none.
    """
    from .conv import conv2d

    bias = np.zeros(weight.shape[0]) if bias is None else bias

    if patch_matrix:
        _, cin, _, _ = plan.input_shape
        check_dense_size((cin * product(plan.weight_shape[2:]), product(plan.output_shape[2:])))
    else:
        check_sparse_size(plan)
    if dense and not patch_matrix:
        check_dense_size(matrix_shape(plan))
    shape = plan.input_shape[1:]
    rng = np.random.default_rng(seed)
    inputs = [rng.standard_normal(shape) for _ in range(trials)]
    outputs = [conv2d(x, weight, bias, plan.stride, plan.padding, plan.dilation, plan.groups,
                      plan.pad_mode, plan.mode) for x in inputs]
    if patch_matrix:
        flipped = correlation_weight(weight, plan.mode)
        error = max(float(np.abs(grouped_product(flipped, im2col(x, plan), plan.groups)
                                 + bias[:, None] - y.reshape(y.shape[0], -1)).max())
                    for x, y in zip(inputs, outputs))
        pixel_ids = im2col(np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64)
                           .reshape(shape), plan)
        values = im2col(inputs[0], plan)
        labels = pixel_labels(shape)
        cells = [[labels[int(v) - 1] if v else "0" for v in row] for row in pixel_ids] \
            if pixel_ids.size <= CELLS_LIMIT else None
        return MatrixView(f"patch matrix (im2col) {values.shape[0]:,}×{values.shape[1]:,}",
                          values.shape, values, None, cells, None, error, trials)
    sparse = equivalent_matrix_sparse(shape, weight, plan.stride, plan.padding, plan.dilation,
                                      plan.groups, plan.pad_mode, plan.mode)
    row_bias = np.repeat(bias, plan.output_shape[2] * plan.output_shape[3])
    error = max(float(np.abs(sparse @ x.ravel() + row_bias - y.ravel()).max())
                for x, y in zip(inputs, outputs))
    size = sparse.shape[0] * sparse.shape[1]
    small = size <= CELLS_LIMIT
    values = sparse.todense() if (dense or small) else None
    cells = weight_cells(plan, weight) if small else None
    return MatrixView(f"equivalent matrix {sparse.shape[0]:,}×{sparse.shape[1]:,}", sparse.shape,
                      values, sparse, cells, int(sparse.value.size), error, trials)


def grouped_product(weight: np.ndarray, patches: np.ndarray, groups: int) -> np.ndarray:
    """Each group's weight rows (Cout/g × Cin/g·kh·kw) times its rows of the patch matrix,
    stacked: the convolution output as (Cout, Ho·Wo)."""
    cout_g = weight.shape[0] // groups
    rows_g = patches.shape[0] // groups
    return np.concatenate([weight[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)
                           @ patches[g * rows_g:(g + 1) * rows_g] for g in range(groups)])


def weight_symbols(weight: np.ndarray) -> list[str]:
    """k11, k12, … for the weights of one 2-D kernel (k1,1 once an index passes 9); the
    values themselves for a layer of several."""
    cout, cin_g, kh, kw = weight.shape
    if cout * cin_g == 1:
        sep = "," if max(kh, kw) > 9 else ""
        return [f"k{i + 1}{sep}{j + 1}" for i in range(kh) for j in range(kw)]
    return [f"{v:.3g}" for v in weight.ravel()]


def pixel_labels(shape) -> list[str]:
    """x11, x12, … for the input pixels, channel first when there are several (x2:11)."""
    c, h, w = shape
    sep = "," if max(h, w) > 9 else ""
    return [(f"x{ch + 1}:" if c > 1 else "x") + f"{y + 1}{sep}{x + 1}"
            for ch in range(c) for y in range(h) for x in range(w)]


def weight_cells(plan: ConvPlan, weight: np.ndarray) -> list[list[str]]:
    """The equivalent matrix as text: each cell the weights that land on it, "0" if none."""
    labels = weight_symbols(correlation_weight(weight, plan.mode))
    rows, cols = matrix_shape(plan)
    cells = [[[] for _ in range(cols)] for _ in range(rows)]
    for r, c, tap in zip(*matrix_entries(plan)):
        cells[r][c].append(labels[tap])
    return [["+".join(cell) if cell else "0" for cell in row] for row in cells]
