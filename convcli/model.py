"""A layer stack with parameters: batched forward and backward passes over `convcli.net`
networks, and weights files with their provenance.

Weights files are ``.npz`` archives holding ``NAME.weight`` and ``NAME.bias`` per conv and
dense layer (PyTorch's ``state_dict`` names and layouts) and ``provenance``, a JSON text.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParameterError
from .net import Network

#: Layers that hold parameters.
PARAMETRIC = ("conv", "dense")
#: The layers training runs (forward and backward).
TRAINABLE = ("conv", "relu", "maxpool", "avgpool", "flatten", "dense", "softmax")


@dataclass
class Weights:
    """The parameters of a network's conv and dense layers, by ``NAME.weight`` /
    ``NAME.bias``, and where they came from."""

    arrays: dict[str, np.ndarray]
    provenance: dict = field(default_factory=dict)

    def layer(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(weight, bias) of one layer."""
        return self.arrays[f"{name}.weight"], self.arrays[f"{name}.bias"]

    def copy(self) -> "Weights":
        return Weights({k: v.copy() for k, v in self.arrays.items()}, dict(self.provenance))

    def save(self, path) -> None:
        """Write the .npz atomically (nothing half-written on failure)."""
        from .files import atomic_write

        text = np.array(json.dumps(self.provenance, sort_keys=True))
        atomic_write(Path(path), lambda out: np.savez(out, provenance=text, **self.arrays))


def weight_shapes(network: Network) -> dict[str, tuple]:
    """The shape of every parameter array of `network`, by its file name."""
    shapes = {}
    for row in network.summary():
        op, name, shape = row.node.op, row.node.name, row.input_shapes[0]
        if op.kind == "conv":
            shapes[f"{name}.weight"] = op.plan(shape).weight_shape
        elif op.kind == "dense":
            shapes[f"{name}.weight"] = (op.out, shape[0])
        else:
            continue
        shapes[f"{name}.bias"] = (op.out,)
    return shapes


def with_weights(network: Network, weights: "Weights") -> Network:
    """`network` with its conv layers reading `weights` (for `convcli.net.forward`)."""
    from dataclasses import replace

    names = {name.rsplit(".", 1)[0] for name in weights.arrays}
    nodes = tuple(replace(node, arrays=dict(zip(("weight", "bias"), weights.layer(node.name))))
                  if node.kind == "conv" and node.name in names else node
                  for node in network.nodes)
    return replace(network, nodes=nodes)


def read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    """Every array of an .npz archive (no pickles); errors start with `where`."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise ParameterError(f"{where}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ParameterError(f"{where}: not a readable .npz archive ({exc})") from None


def conv_layer_names(path) -> list[str]:
    """The conv layers (4-D weights) a weights file holds."""
    path = Path(path)
    return [name[:-len(".weight")] for name, array in read_npz(path, f"weights {path}").items()
            if name.endswith(".weight") and array.ndim == 4]


def load_weights(path, network: Network) -> Weights:
    """Read a weights file and check it holds every parameter of `network`, shaped to fit.

    Raises
    ------
    ParameterError
        Naming the file and the array that is missing or the wrong shape.
    """
    path = Path(path)
    where = f"weights {path}"
    arrays = read_npz(path, where)
    provenance = json.loads(str(arrays.pop("provenance"))) if "provenance" in arrays else {}
    for name, shape in weight_shapes(network).items():
        if name not in arrays:
            raise ParameterError(f"{where}: has no {name}; network {network.name} needs "
                                 f"{', '.join(weight_shapes(network))}")
        if arrays[name].shape != shape or arrays[name].dtype.kind != "f":
            raise ParameterError(f"{where}: {name} is {arrays[name].dtype} {arrays[name].shape}; "
                                 f"network {network.name} needs float {shape}")
        if not np.isfinite(arrays[name]).all():
            raise ParameterError(f"{where}: {name} holds NaN or infinity")
    known = weight_shapes(network)
    return Weights({k: v.astype(np.float32) for k, v in arrays.items() if k in known}, provenance)


def initial_weights(network: Network, seed: int) -> Weights:
    """PyTorch's default initialisation (uniform in ±1/√fan_in for weights and biases),
    each layer from its own stream of `seed`; a conv layer with a ``kernel`` starts from
    it."""
    arrays = {}
    shapes = weight_shapes(network)
    for row in network.summary():
        node = row.node
        if node.kind not in PARAMETRIC:
            continue
        name = node.name
        if node.kind == "conv" and node.kernel is not None:
            found = node.weights(row.input_shapes[0])
            weight, bias = found["weight"], found["bias"]
        else:
            rng = np.random.default_rng([seed, node.index])
            shape = shapes[f"{name}.weight"]
            bound = 1 / math.sqrt(int(np.prod(shape[1:])))
            weight = rng.uniform(-bound, bound, shape)
            bias = rng.uniform(-bound, bound, shape[0]) if node.op.bias else np.zeros(shape[0])
        arrays[f"{name}.weight"] = weight.astype(np.float32)
        arrays[f"{name}.bias"] = bias.astype(np.float32)
    return Weights(arrays)


def keep_freed_memory() -> None:
    """Have glibc's allocator keep freed blocks of up to 32 MiB for reuse instead of
    handing them back to the system: a training step allocates and frees the same arrays
    each time, and memory returned to the system costs a page fault per 4 KiB when it is
    touched again (one step of samples/nets/shapes_cnn.yaml: 4.5 → 2.9 ms).  The process
    keeps up to 256 MiB of freed memory from then on; no effect off glibc."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 256 << 20)


def swap_images_and_channels(x: np.ndarray) -> np.ndarray:
    """(N, C, H, W) ↔ (C, N, H, W), C-contiguous (no copy when N or C is 1)."""
    return np.ascontiguousarray(x.transpose(1, 0, 2, 3))


@dataclass
class Tape:
    """What `Model.forward` keeps for `Model.backward`: each layer's input (as it ran) and
    what its backward pass reuses; `channel_major` says the layers before the flatten ran
    on (C, N, H, W)."""

    entries: list
    channel_major: bool


#: The algorithm of every convolution in training: BLAS products suit a batch of many
#: channels and, unlike a choice by timing, give the same rounding on every run (one
#: epoch of samples/nets/shapes_cnn.yaml: 16 s with the planner's choices, see README).
TRAIN_ALGO = "gemm"


@dataclass
class Model:
    """A network with weights: `forward` on a batch (N, C, H, W) keeps what `backward`
    needs; every convolution, forward and backward, runs `algo`."""

    network: Network
    weights: Weights
    algo: str = TRAIN_ALGO

    def __post_init__(self):
        from .net import INPUT
        from .plan import shape_text

        self.rows = self.network.summary()
        self.kinds = [row.node.kind for row in self.rows]
        if "softmax" in self.kinds[:-1]:
            raise ParameterError(f"network {self.network.name}: softmax must be the last layer")
        previous = INPUT
        for row in self.rows:
            if row.node.inputs != (previous,) or row.node.kind not in TRAINABLE:
                raise ParameterError(
                    f"network {self.network.name}: layer {row.node.label} — training runs "
                    f"chains of {', '.join(TRAINABLE)} layers, each reading the one before")
            if row.node.kind in ("dense", "softmax") and len(row.input_shapes[0]) != 1:
                raise ParameterError(
                    f"network {self.network.name}: layer {row.node.label} — training needs a "
                    f"flatten before dense and softmax layers (its input is "
                    f"{shape_text(row.input_shapes[0])})")
            if row.node.kind == "avgpool" and not row.node.op.count_include_pad and any(
                    row.node.op.plan(row.input_shapes[0]).padding):
                raise ParameterError(
                    f"network {self.network.name}: layer {row.node.label} — training runs "
                    "average pooling that counts the padding in the mean (count_include_pad)")
            previous = row.node.name
        self._plans, self._layouts = {}, {}
        #: layers with ``bias: false``: their zero biases get no gradient, so stay zero
        self.without_bias = {row.node.name for row in self.rows
                             if row.node.kind in PARAMETRIC and not row.node.op.bias}

    def position(self, key: str) -> int:
        from .net import find_layer

        return find_layer(self.rows, key)

    def plan(self, position: int, shape: tuple):
        """The `ConvPlan` of layer `position` (conv or pooling) on a batch of `shape`,
        made once per shape."""
        key = (position, shape)
        if key not in self._plans:
            from dataclasses import replace

            layer = self.rows[position].node.op
            self._plans[key] = replace(layer.plan(shape[1:]), input_shape=shape)
        return self._plans[key]

    def channel_major(self, shape: tuple, stop: int) -> bool:
        """Whether layers 0 … `stop` run on a batch of `shape` channel-major: on the gemm
        path, with every conv layer's patch matrix for one image in one band."""
        key = (shape, stop)
        if key not in self._layouts:
            from .conv import gemm_bands

            fits = self.algo == "gemm" and len(shape) == 4
            for position, row in enumerate(self.rows[:stop + 1]):
                if not fits or row.node.kind == "flatten":
                    break
                if row.node.kind == "conv":
                    plan = self.plan(position, (shape[0], *row.input_shapes[0]))
                    fits = gemm_bands(plan)[1] == plan.output_shape[2]
            self._layouts[key] = fits
        return self._layouts[key]

    def forward(self, x: np.ndarray, stop: int | None = None):
        """Layers 0 … `stop` (default: all but a softmax head) on the batch `x`; returns
        (output, tape), the tape holding what `backward` needs of each layer: its input
        and, for conv layers, their patch matrix if it was built in one piece, for max
        pooling where each maximum came from and the pooled values.

        On the gemm path the layers before the flatten run channel-major, on (C, N, H, W):
        then the products need no transposition and a ReLU after a conv works in place.  A
        conv, ReLU and max pooling in a row pool the conv's product first and add the bias
        and take the ReLU on the pooled values only (the same values: both commute with a
        maximum), leaving the ReLU's backward pass to the pooling's."""
        from .conv import conv2d, gemm_channel_major, max_pool_planned, run_gemm

        last = len(self.rows) - 1
        if stop is None:
            stop = last - 1 if self.rows[-1].node.kind == "softmax" else last
        x = np.ascontiguousarray(x, np.float32)
        major = started_major = self.channel_major(x.shape, stop)
        if major:
            x = swap_images_and_channels(x)
        entries, owned, bias_after_pool = [], False, None
        for position, row in enumerate(self.rows[:stop + 1]):
            layer, name = row.node.op, row.node.name
            kept = None
            if layer.kind == "conv":
                weight, bias = self.weights.layer(name)
                if major:
                    plan = self.plan(position, (x.shape[1], x.shape[0], *x.shape[2:]))
                    if position + 2 <= stop and \
                            self.kinds[position + 1:position + 3] == ["relu", "maxpool"]:
                        bias, bias_after_pool = None, bias
                    out, kept = gemm_channel_major(x, weight, bias, plan)
                elif self.algo == "gemm":
                    plan = self.plan(position, x.shape)
                    out = np.empty(plan.output_shape, x.dtype)
                    run_gemm(x, weight, bias, plan, out)
                else:
                    out = conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation,
                                 layer.groups, layer.pad_mode, algo=self.algo)
            elif layer.kind == "relu" and bias_after_pool is not None:
                out = x                         # taken after the pooling
            elif layer.kind == "relu":
                # a conv's output is read by nothing else; x > 0 still gives the mask
                out = np.maximum(x, 0, out=x if owned else None)
            elif layer.kind == "maxpool":
                out, where = max_pool_planned(x, self.plan(position, x.shape), indices=True)
                if bias_after_pool is not None:
                    out += bias_after_pool[:, None, None, None]
                    np.maximum(out, 0, out=out)
                    bias_after_pool = None
                kept = (where, out)
            elif layer.kind == "avgpool":
                from .grad import mean_weight

                plan = self.plan(position, x.shape)
                out = conv2d(x, mean_weight(x.shape[1], layer.kernel), None, plan.stride,
                             plan.padding, plan.dilation, x.shape[1])
            elif layer.kind == "flatten":
                if major:
                    x, major = swap_images_and_channels(x), False
                out = x.reshape(x.shape[0], -1)
            elif layer.kind == "dense":
                weight, bias = self.weights.layer(name)
                out = x @ weight.T + bias
            elif layer.kind == "softmax":
                from .grad import softmax

                out = softmax(x)
            entries.append((x, kept))
            owned = layer.kind == "conv"
            x = out
        if major:
            x = swap_images_and_channels(x)
        return x, Tape(entries, started_major)

    def backward(self, tape: "Tape", grad_output: np.ndarray, input_grad: bool = False):
        """Back through the layers `tape` recorded: returns (gradients by weight name,
        gradient with respect to the input or None)."""
        from . import grad

        grads = {}
        g = np.ascontiguousarray(grad_output, np.float32)
        major = tape.channel_major and g.ndim == 4      # stopped before the flatten
        if major:
            g = swap_images_and_channels(g)
        relu_done = None
        for position in range(len(tape.entries) - 1, -1, -1):
            row, (x, kept) = self.rows[position], tape.entries[position]
            layer, name = row.node.op, row.node.name
            needed = position > 0 or input_grad
            if layer.kind == "conv":
                weight, _ = self.weights.layer(name)
                if self.algo == "gemm":
                    logical = (x.shape[1], x.shape[0], *x.shape[2:]) if major else x.shape
                    gw, gb, g = grad.gemm_backward(self.plan(position, logical), weight, g, x=x,
                                                   patches=kept, input_grad=needed,
                                                   channel_major=major)
                    grads[f"{name}.weight"], grads[f"{name}.bias"] = gw, gb
                else:
                    options = (layer.stride, layer.padding, layer.dilation, layer.groups,
                               layer.pad_mode, self.algo)
                    grads[f"{name}.weight"] = grad.conv2d_weight(x, weight.shape, g, *options)
                    grads[f"{name}.bias"] = g.sum(axis=(0, 2, 3))
                    g = grad.conv2d_input(x.shape, weight, g, *options) if needed else None
            elif layer.kind == "dense":
                weight, _ = self.weights.layer(name)
                g, grads[f"{name}.weight"], grads[f"{name}.bias"] = grad.dense_backward(
                    x, weight, g)
            elif layer.kind == "relu":
                if position != relu_done:
                    g = grad.relu_backward(x, g)
            elif layer.kind == "maxpool":
                where, pooled = kept
                # after a ReLU, only positive maxima pass: that is the ReLU's backward too
                after_relu = position > 0 and self.kinds[position - 1] == "relu"
                g = grad.max_unpool(g, where, self.plan(position, x.shape),
                                    pooled if after_relu else None)
                relu_done = position - 1 if after_relu else None
            elif layer.kind == "avgpool":
                plan = self.plan(position, x.shape)
                g = grad.avg_pool2d_backward(x.shape, g, layer.kernel, plan.stride,
                                             plan.padding, plan.dilation)
            elif layer.kind == "flatten":
                g = g.reshape(x.shape)
                if tape.channel_major:
                    g, major = swap_images_and_channels(g), True
            elif layer.kind == "softmax":
                s = grad.softmax(x)
                g = s * (g - np.sum(g * s, axis=1, keepdims=True))
            if name in self.without_bias:
                grads.pop(f"{name}.bias", None)
            if g is None:
                break
        if major and g is not None:
            g = swap_images_and_channels(g)
        return grads, g

    def loss_and_gradients(self, images: np.ndarray, labels: np.ndarray):
        """Mean cross-entropy of the batch, its parameter gradients and its logits."""
        from .grad import softmax_cross_entropy

        logits, tape = self.forward(images)
        loss, g = softmax_cross_entropy(logits, labels)
        grads, _ = self.backward(tape, g)
        return loss, grads, logits

    def probabilities(self, images: np.ndarray, batch: int = 256) -> np.ndarray:
        """Class probabilities, in batches."""
        from .grad import softmax

        return np.concatenate([softmax(self.forward(images[i:i + batch])[0])
                               for i in range(0, len(images), batch)])

