"""Learn kernels from examples: the weights that map input images to target images.

`lstsq` solves the least-squares problem exactly through its normal equations, summed
band by band over patches (im2col) so memory stays bounded; `gd` descends the same loss,
computing the weight gradient as a correlation of the input with the residual through the
same `conv2d` core — the way a CNN learns its filters.
"""

from __future__ import annotations


import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .conv import conv2d
from .errors import ParameterError
from .limits import MAX_DENSE_ENTRIES, check_size, product
from .plan import int_pair, make_plan, padding_amounts
from .conv import im2col

#: Patch values per band when summing the normal equations (bounds memory).
BAND_VALUES = 4_000_000


@dataclass
class Sample:
    """One input (Cin, H, W) and its target (Cout, Ho, Wo), with the output pixels that
    count: `fit` for fitting, `held` for held-out evaluation."""

    x: np.ndarray
    y: np.ndarray
    fit: np.ndarray
    held: np.ndarray


@dataclass(frozen=True, kw_only=True)
class Geometry:
    """Kernel size and the conv options a learned kernel will be applied with."""

    size: tuple[int, int]
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    pad_mode: str | None = None       # None: fit only pixels whose window is inside the image

    def plan(self, input_shape, cout: int):
        padding = padding_amounts("same", self.size, self.dilation, (1, 1))
        return make_plan(input_shape, (cout, input_shape[0], *self.size), self.stride, padding,
                         self.dilation, 1, self.pad_mode or "zeros")

    def inside(self, plan) -> np.ndarray:
        """(Ho, Wo) mask of output pixels whose every tap is a real pixel, not padding."""
        _, _, h, w = plan.input_shape
        _, _, ho, wo = plan.output_shape
        (kh, kw), (sh, sw), (dh, dw) = self.size, plan.stride, plan.dilation
        top, left = plan.padding[0], plan.padding[2]
        ys = np.arange(ho) * sh - top
        xs = np.arange(wo) * sw - left
        rows = (ys >= 0) & (ys + dh * (kh - 1) < h)
        cols = (xs >= 0) & (xs + dw * (kw - 1) < w)
        return rows[:, None] & cols[None, :]


@dataclass(frozen=True, kw_only=True)
class LearnSettings:
    """How `learn` fits a kernel: its geometry, its model and the solver."""

    geometry: Geometry
    depthwise: bool = False           # one 2-D kernel for every channel
    cout: int | None = None           # a layer of this many filters (the target's channels)
    bias: bool = True                 # fit a bias per output channel
    method: str = "lstsq"             # lstsq (exact) or gd (gradient descent)
    ridge: float = 0.0                # penalty λ·|w|² per pixel
    epochs: int = 200                 # gradient descent steps
    lr: float | None = None           # gradient descent step (None: 1/curvature)
    holdout: float = 0.0              # share of pixels kept out of the fit
    seed: int = 0                     # seed of the holdout split

    def as_dict(self) -> dict:
        """The settings as a saved kernel's provenance records them."""
        g = self.geometry
        return {"size": list(g.size), "stride": list(g.stride), "dilation": list(g.dilation),
                "pad_mode": g.pad_mode, "bias": self.bias, "depthwise": self.depthwise,
                "method": self.method, "ridge": self.ridge,
                "epochs": self.epochs if self.method == "gd" else None,
                "holdout": self.holdout, "seed": self.seed}


@dataclass
class LearnResult:
    weight: np.ndarray               # (Cout, Cin, kh, kw)
    bias: np.ndarray                 # (Cout,)
    depthwise: bool                  # one 2-D kernel applied to every channel
    fit: dict
    held_out: dict | None
    losses: list[float] = field(default_factory=list)

    @property
    def kernel_2d(self) -> bool:
        return self.weight.shape[:2] == (1, 1)

    def weights_list(self):
        """kh×kw nested lists for one 2-D kernel, else Cout×Cin×kh×kw."""
        return self.weight[0, 0].tolist() if self.kernel_2d else self.weight.tolist()


def make_samples(pairs, geometry: Geometry, depthwise: bool, cout: int | None, holdout: float,
                 seed: int):
    """Check the (input, target) pairs, given as (H, W, C) arrays, and cut them into
    samples; returns (samples, Cout, Cin) of the model.

    Raises
    ------
    ParameterError
        Mismatched channels or sizes (saying which sizes were expected), NaN or infinity,
        a kernel that does not fit, a bad holdout share.
    """
    if not 0 <= holdout < 1:
        raise ParameterError(f"must be a share in [0, 1), got {holdout}", parameter="holdout")
    rng = np.random.default_rng(seed)
    samples = []
    model = None
    for index, (x, y) in enumerate(pairs, 1):
        for name, array in (("input", x), ("target", y)):
            if not np.isfinite(array).all():
                raise ParameterError(f"pair {index}: the {name} holds NaN or infinity")
        cin, ct = x.shape[2], y.shape[2]
        if depthwise or (cout is None and ct == cin):
            if ct != cin:
                raise ParameterError(f"pair {index}: a 2-D kernel maps each channel to one, but "
                                     f"the input has {cin} channel(s) and the target {ct}")
            pair_model = (1, 1)
        else:
            if cout is not None and cout != ct:
                raise ParameterError(f"pair {index}: cout={cout} but the target has {ct} "
                                     "channel(s); a layer has one output channel per filter")
            pair_model = (ct, cin)
        if model is not None and pair_model != model:
            raise ParameterError(f"pair {index} has other channel counts than pair 1")
        model = pair_model
        channels = np.moveaxis(x, 2, 0).astype(np.float64)
        targets = np.moveaxis(y, 2, 0).astype(np.float64)
        plan = geometry.plan(channels[:1].shape if model == (1, 1) else channels.shape, model[0])
        expected = plan.output_shape[2:]
        if targets.shape[1:] != expected:
            raise ParameterError(
                f"pair {index}: the target is {targets.shape[2]}×{targets.shape[1]} (W×H) but "
                f"applying a {geometry.size[0]}×{geometry.size[1]} (kh×kw) kernel with these "
                f"options to the {x.shape[1]}×{x.shape[0]} input gives "
                f"{expected[1]}×{expected[0]}")
        mask = geometry.inside(plan) if geometry.pad_mode is None else np.ones(expected, bool)
        if not mask.any():
            raise ParameterError(f"pair {index}: the {geometry.size[0]}×{geometry.size[1]} kernel "
                                 f"has no position inside the {x.shape[1]}×{x.shape[0]} (W×H) image; "
                                 "use a smaller kernel or pad_mode=")
        held = mask & (rng.random(mask.shape) < holdout)
        fit = mask & ~held
        if model == (1, 1):
            samples += [Sample(channels[c:c + 1], targets[c:c + 1], fit, held)
                        for c in range(channels.shape[0])]
        else:
            samples.append(Sample(channels, targets, fit, held))
    return samples, model[0], model[1]


def normal_equations(samples, geometry: Geometry, cout: int, bias: bool):
    """Σ AᵀA and Σ AᵀY over every fitted output pixel, A its patch (and a 1 for the bias)."""
    cin = samples[0].x.shape[0]
    size = cin * geometry.size[0] * geometry.size[1] + bias
    gram = np.zeros((size, size))
    cross = np.zeros((size, cout))
    count = 0
    for sample in samples:
        plan = geometry.plan(sample.x.shape, cout)
        ho, wo = plan.output_shape[2:]
        band = max(1, BAND_VALUES // (size * wo))
        for start in range(0, ho, band):
            rows = slice(start, min(ho, start + band))
            chosen = sample.fit[rows].ravel()
            if not chosen.any():
                continue
            patches = im2col(sample.x, plan, rows)[:, chosen]
            if bias:
                patches = np.vstack([patches, np.ones((1, patches.shape[1]))])
            values = sample.y[:, rows].reshape(cout, -1)[:, chosen]
            gram += patches @ patches.T
            cross += patches @ values.T
            count += patches.shape[1]
    return gram, cross, count


def solve_lstsq(samples, geometry: Geometry, cout: int, bias: bool, ridge: float):
    """Least-squares weights (Cout, Cin, kh, kw) and bias (Cout,)."""
    gram, cross, count = normal_equations(samples, geometry, cout, bias)
    cin = samples[0].x.shape[0]
    penalty = np.full(gram.shape[0], ridge * count)
    if bias:
        penalty[-1] = 0.0                         # the bias is not shrunk
    system = gram + np.diag(penalty)
    scale = np.abs(np.diag(system)).max() or 1.0
    if np.linalg.cond(system / scale) > 1e12:
        raise ParameterError(
            "the system is singular: the inputs do not vary enough to determine every weight "
            "(a constant or too regular image?); add ridge=1e-3 or use more varied images")
    solution = np.linalg.solve(system, cross)
    weight = solution[:cin * geometry.size[0] * geometry.size[1]].T.reshape(
        cout, cin, *geometry.size)
    return weight, (solution[-1] if bias else np.zeros(cout))


def predict(sample: Sample, weight, bias, geometry: Geometry) -> np.ndarray:
    plan = geometry.plan(sample.x.shape, weight.shape[0])
    return conv2d(sample.x, weight, bias, plan.stride, plan.padding, plan.dilation, 1,
                  plan.pad_mode)


def weight_gradient(sample: Sample, residual: np.ndarray, geometry: Geometry) -> np.ndarray:
    """dLoss/dW as a correlation of the input with the residual, through `conv2d`:
    dW[co, ci, i, j] = Σ residual[co, oy, ox] · xpad[ci, oy·s + i·d, ox·s + j·d].

    The input's channels become a batch, the residual maps become kernels, and stride and
    dilation swap roles."""
    plan = geometry.plan(sample.x.shape, residual.shape[0])
    kh, kw = geometry.size
    grad = conv2d(sample.x[:, None], residual[:, None], None, plan.dilation, plan.padding,
                  plan.stride, 1, plan.pad_mode)          # (Cin, Cout, ≥kh, ≥kw)
    return grad[:, :, :kh, :kw].transpose(1, 0, 2, 3)


def descend(samples, geometry: Geometry, cout: int, bias: bool, ridge: float, epochs: int,
            lr: float | None, on_epoch=None):
    """Gradient descent (Nesterov momentum) on the mean squared error of the fitted pixels,
    in standardised units; returns (weight, bias, losses in the original units).

    With a bias, inputs and targets are centred first (unless zero padding makes the
    centring visible at the borders), which removes most of the ill-conditioning of
    natural images; the weights and bias are mapped back exactly."""
    cin = samples[0].x.shape[0]
    centre = bias and geometry.pad_mode != "zeros"
    mx = float(np.mean([s.x.mean() for s in samples])) if centre else 0.0
    my = np.mean([s.y.mean(axis=(1, 2)) for s in samples], axis=0) if centre else np.zeros(cout)
    sx = float(np.sqrt(np.mean([np.mean((s.x - mx) ** 2) for s in samples]))) or 1.0
    sy = float(np.sqrt(np.mean([np.mean((s.y - my[:, None, None]) ** 2) for s in samples]))) or 1.0
    scaled = [Sample((s.x - mx) / sx, (s.y - my[:, None, None]) / sy, s.fit, s.held)
              for s in samples]
    count = sum(int(s.fit.sum()) * cout for s in scaled)
    shrink = ridge / sx ** 2                  # the same penalty as lstsq's, in these units

    def loss_and_grad(w, b):
        total, gw, gb = 0.0, np.zeros_like(w), np.zeros_like(b)
        for s in scaled:
            residual = (predict(s, w, b, geometry) - s.y) * s.fit
            total += float(np.sum(residual ** 2))
            gw += weight_gradient(s, residual, geometry)
            gb += residual.sum(axis=(1, 2))
        gw = 2 * gw / count + 2 * shrink * w
        gb = 2 * gb / count if bias else np.zeros_like(b)
        return total / count + shrink * float(np.sum(w ** 2)), gw, gb

    w = np.zeros((cout, cin, *geometry.size))
    b = np.zeros(cout)
    if lr is None:
        lr = 1.0 / _lipschitz(loss_and_grad, w.shape, b.shape, bias)
    velocity_w, velocity_b = np.zeros_like(w), np.zeros_like(b)
    losses = []
    for epoch in range(epochs):
        ahead_w, ahead_b = w + 0.9 * velocity_w, b + 0.9 * velocity_b
        loss, gw, gb = loss_and_grad(ahead_w, ahead_b)
        velocity_w = 0.9 * velocity_w - lr * gw
        velocity_b = 0.9 * velocity_b - lr * gb
        w, b = w + velocity_w, b + velocity_b
        losses.append(loss * sy ** 2)
        if on_epoch is not None:
            on_epoch(epoch, losses[-1])
    weight = w * (sy / sx)
    # y = sy·(conv((x − mx)/sx, w) + b) + my = conv(x, weight) + sy·b + my − mx·Σweight
    return weight, b * sy + my - mx * weight.sum(axis=(1, 2, 3)), losses


def _lipschitz(loss_and_grad, w_shape, b_shape, bias: bool, steps: int = 20) -> float:
    """The largest curvature of the quadratic loss, by power iteration on its gradient."""
    rng = np.random.default_rng(0)
    zero_w, zero_b = np.zeros(w_shape), np.zeros(b_shape)
    _, g0w, g0b = loss_and_grad(zero_w, zero_b)
    vw, vb = rng.standard_normal(w_shape), rng.standard_normal(b_shape) * bias
    curvature = 1.0
    for _ in range(steps):
        norm = np.sqrt(np.sum(vw ** 2) + np.sum(vb ** 2))
        vw, vb = vw / norm, vb / norm
        _, gw, gb = loss_and_grad(vw, vb)
        vw, vb = gw - g0w, (gb - g0b) * bias         # Hessian · v for a quadratic loss
        curvature = float(np.sqrt(np.sum(vw ** 2) + np.sum(vb ** 2)))
    return curvature * 1.05


def quality(samples, weight, bias, geometry: Geometry, which: str) -> dict | None:
    """RMSE and R² of the predictions on the `fit` or `held` pixels."""
    squares, total, values = 0.0, 0, []
    for s in samples:
        mask = getattr(s, which)
        if not mask.any():
            continue
        residual = (predict(s, weight, bias, geometry) - s.y)[:, mask]
        squares += float(np.sum(residual ** 2))
        total += residual.size
        values.append(s.y[:, mask])
    if not total:
        return None
    spread = float(np.sum([np.sum((v - v.mean(axis=1, keepdims=True)) ** 2) for v in values]))
    return {"rmse": float(np.sqrt(squares / total)), "r2": 1 - squares / spread if spread else 1.0,
            "pixels": total}


def learn(pairs, settings: LearnSettings, on_epoch=None) -> LearnResult:
    """Fit a kernel to (input, target) pairs of (H, W, C) arrays.

    A gray pair, or any pair with ``settings.depthwise``, learns one 2-D kernel applied to
    every channel; otherwise a layer of Cout (the target's channels) × Cin filters.
    `on_epoch(epoch, loss)` is called after each gradient descent step.
    """
    geometry, method, ridge, holdout = (settings.geometry, settings.method, settings.ridge,
                                        settings.holdout)
    bias, depthwise = settings.bias, settings.depthwise
    if method not in ("lstsq", "gd"):
        raise ParameterError(f"must be lstsq or gd, got {method!r}", parameter="method")
    if not 0 <= ridge < math.inf:
        raise ParameterError(f"must be finite and ≥ 0, got {ridge}", parameter="ridge")
    if settings.lr is not None and not 0 < settings.lr < math.inf:
        raise ParameterError(f"must be finite and > 0, got {settings.lr}", parameter="lr")
    samples, cout, cin = make_samples(pairs, geometry, depthwise, settings.cout, holdout,
                                      settings.seed)
    unknowns = cin * product(geometry.size) + 1
    check_size(f"{'×'.join(map(str, geometry.size))} on {cin} channel(s) gives {unknowns:,} "
               "unknowns, whose normal equations have", unknowns * unknowns, MAX_DENSE_ENTRIES,
               "entries", hint="learn a smaller kernel", parameter="size")
    if not any(s.fit.any() for s in samples):
        raise ParameterError("no output pixel is left to fit; lower holdout=")
    losses = []
    if method == "lstsq":
        weight, b = solve_lstsq(samples, geometry, cout, bias, ridge)
    else:
        from .backend import repeating

        with repeating():               # two convolutions an epoch: worth the core's load
            weight, b, losses = descend(samples, geometry, cout, bias, ridge, settings.epochs,
                                        settings.lr, on_epoch)
    return LearnResult(weight, b, depthwise or (cin == 1 and cout == 1),
                       quality(samples, weight, b, geometry, "fit"),
                       quality(samples, weight, b, geometry, "held") if holdout else None, losses)


def closest_kernels(weight: np.ndarray, catalogue, exclude=()) -> list[tuple[str, float]]:
    """For each output filter, the catalogue kernel it resembles most (cosine similarity of
    the weights, a smaller kernel centred in the larger; ``-name`` for the negative), as
    (name, similarity), leaving out the kernels named in `exclude`.  A filter over several
    channels is compared with the kernel on every channel."""
    candidates = []
    for name in catalogue.names():
        if name in exclude:
            continue
        try:
            kernel = catalogue.get(name)
        except ParameterError:
            continue
        if kernel.is_layer:
            continue
        for index, k in enumerate(kernel.weights):
            label = name if kernel.n_filters == 1 else f"{name}[{index}]"
            candidates.append((label, k))
    results = []
    for filt in weight:
        best = ("none", 0.0)
        for label, k in candidates:
            placed = _centred(k, filt.shape[1:])
            if placed is None:
                continue
            other = np.broadcast_to(placed, filt.shape).ravel()
            denominator = np.linalg.norm(filt) * np.linalg.norm(other)
            if denominator == 0:
                continue
            similarity = float(filt.ravel() @ other / denominator)
            if abs(similarity) > abs(best[1]) + 1e-12:
                best = (label if similarity > 0 else f"-{label}", similarity)
        results.append((best[0], abs(best[1])))
    return results


def _centred(kernel: np.ndarray, shape) -> np.ndarray | None:
    """`kernel` centred in zeros of `shape` (None if it is larger, or cannot be centred)."""
    kh, kw = kernel.shape
    h, w = shape
    if kh > h or kw > w or (h - kh) % 2 or (w - kw) % 2:
        return None
    out = np.zeros(shape)
    out[(h - kh) // 2:(h - kh) // 2 + kh, (w - kw) // 2:(w - kw) // 2 + kw] = kernel
    return out


def file_digest(path) -> str:
    """The SHA-256 of a file, for provenance."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _rounded(values: np.ndarray, floor: float = 0.0) -> list:
    """Nested lists rounded to 6 significant digits of the largest magnitude (at least
    `floor`): what a fit from float32 images determines, so reruns (other BLAS builds,
    other summation orders) write the same numbers."""
    largest = max(float(np.abs(values).max()), floor)
    if largest == 0:
        return np.zeros_like(values).tolist()
    quantum = 10.0 ** (np.floor(np.log10(largest)) - 5)
    return (np.round(values / quantum) * quantum).round(12).__add__(0.0).tolist()


def catalogue_entry(result: LearnResult, files, options: dict) -> dict:
    """A catalogue entry for a learned kernel, with its provenance."""
    import datetime

    names = [(Path(x).name, Path(y).name) for x, y in files]
    fit = {k: (round(v, 8) if isinstance(v, float) else v) for k, v in result.fit.items()}
    learned = {
        "inputs": [str(x) for x, _ in files], "targets": [str(y) for _, y in files],
        "sha256": {str(p): file_digest(p) for pair in files for p in pair},
        "options": options, "date": datetime.datetime.now(datetime.timezone.utc)
        .replace(microsecond=0).isoformat(), "fit": fit,
    }
    if result.held_out:
        learned["holdout"] = {k: (round(v, 8) if isinstance(v, float) else v)
                              for k, v in result.held_out.items()}
    bias = _rounded(result.bias, floor=1.0)           # biases are in pixel units
    return {
        "weights": _rounded(np.asarray(result.weights_list())),
        "bias": bias[0] if result.kernel_2d else bias,
        "description": "learned from " + ", ".join(f"{x} → {y}" for x, y in names),
        "source": "convcli learn",
        "learned": learned,
    }


def learn_kernel(pairs, size, *, stride=1, dilation=1, pad_mode: str | None = None,
                 depthwise: bool = False, cout: int | None = None, bias: bool = True,
                 method: str = "lstsq", ridge: float = 0.0, epochs: int = 200,
                 lr: float | None = None, holdout: float = 0.0, seed: int = 0,
                 on_epoch=None) -> LearnResult:
    """Fit the kernel that turns each input into its target (what ``convcli learn`` does).

    Parameters
    ----------
    pairs : sequence of (input, target)
        Arrays (H, W) or (H, W, C); each target is the input filtered at this `stride`
        with "same" padding, so of size ⌈H/s⌉ × ⌈W/s⌉.
    size : int or (int, int)
        The kernel's size.
    stride, dilation : int or (int, int)
        The options the kernel will be applied with.
    pad_mode : str, optional
        Fit border pixels too, padding with this mode; by default only pixels whose window
        lies inside the image are fitted.
    depthwise : bool
        Learn one 2-D kernel for every channel (always so for gray pairs).
    cout : int, optional
        Learn a layer of this many filters over all input channels.
    bias : bool
        Learn a bias per output channel.
    method : {"lstsq", "gd"}
        Exact least squares, or gradient descent (`epochs` steps of `lr`, by default
        1/curvature), calling ``on_epoch(epoch, loss)`` after each.
    ridge : float
        Penalty λ·|w|² per pixel.
    holdout : float
        Share of pixels kept out of the fit to test it (drawn with `seed`).

    Returns
    -------
    LearnResult
        ``weight`` (Cout, Cin, kh, kw), ``bias``, ``fit`` and ``held_out`` quality (RMSE,
        R²), and ``losses`` of gd.

    Examples
    --------
    >>> import numpy as np
    >>> from convcli import conv2d, learn_kernel
    >>> x = np.random.default_rng(0).random((40, 40), np.float32)
    >>> sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)
    >>> y = conv2d(x[None], sobel[None, None], padding="same")[0]
    >>> result = learn_kernel([(x, y)], 3)
    >>> np.round(result.weight[0, 0], 3) + 0.0
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    geometry = Geometry(size=int_pair(size, "size"), stride=int_pair(stride, "stride"),
                        dilation=int_pair(dilation, "dilation"), pad_mode=pad_mode)
    settings = LearnSettings(geometry=geometry, depthwise=depthwise, cout=cout, bias=bias,
                             method=method, ridge=ridge, epochs=epochs, lr=lr,
                             holdout=holdout, seed=seed)
    pairs = [tuple(a[..., None] if a.ndim == 2 else a for a in map(np.asarray, pair))
             for pair in pairs]
    return learn(pairs, settings, on_epoch)
