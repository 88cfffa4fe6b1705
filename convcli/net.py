"""Networks as graphs of layers: network files, shapes, parameters and multiply-accumulates
per layer, receptive fields, and the forward pass that `convcli forward` writes feature
maps from.

A network is a list of nodes in an order where every node's inputs come before it (a
node without inputs takes the one before; the first takes the network's input), so plain
stacks and branching graphs (shortcuts, concatenated branches) are one structure.

The receptive-field arithmetic follows Araujo, Norris and Sim, "Computing Receptive
Fields of Convolutional Neural Networks" (Distill, 2019): per axis, along one path of
layers 1…L,

    r = 1 + Σ (k_l − 1)·d_l·Π_{i<l} s_i      S = Π s_l      P = Σ p_l·Π_{i<l} s_i

and output pixel y sees input pixels y·S − P … y·S − P + r − 1.  Where paths meet (add,
concat) the window is the union of theirs, which is one window only if their effective
strides agree; otherwise the layer's pixels are not on one grid of the input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ParameterError
from .files import check_name, child_path
from .layers import (ACTIVATIONS, AddOp, ActivationOp, BatchNormOp, ConcatOp, ConvOp, DenseOp,
                     FlattenOp, GlobalAvgPoolOp, Op, PadOp, Params, PoolOp, Window)
from .plan import shape_text

#: The name by which nodes refer to the network's input.
INPUT = "input"


@dataclass(frozen=True)
class Node:
    """One layer of a network: its name, its operation (`convcli.layers`), the nodes it
    reads, and where its weights come from (arrays read from a model file, a kernel spec,
    or a seeded random initialisation)."""

    index: int
    name: str
    op: Op
    inputs: tuple[str, ...]
    label: str = ""                  # how messages name it ("block3_add", "7 maxpool")
    kernel: str | None = None
    seed: int = 0
    arrays: dict | None = field(default=None, compare=False, hash=False)

    @property
    def kind(self) -> str:
        return self.op.kind

    def weights(self, input_shape, catalogue=None) -> dict:
        """The arrays `op.run` needs, as float32: a conv's weight and bias (from the model
        file, from its kernel spec — a 2-D kernel is used for every filter and input
        channel — or initialised as PyTorch does, uniform in ±1/√fan_in, from its seed);
        a batchnorm's scale and shift (from the model file, else none: the identity)."""
        import numpy as np

        if self.kind == "batchnorm":
            return {k: np.asarray(v, np.float32) for k, v in (self.arrays or {}).items()}
        if self.kind != "conv":
            return {}
        from .limits import MAX_WEIGHTS, check_size, product

        conv = self.op
        shape = (conv.out, input_shape[0] // conv.groups, *conv.kernel)
        check_size(f"layer {self.label}: {conv.out} filters of {'×'.join(map(str, shape[1:]))}",
                   product(shape), MAX_WEIGHTS, "weights")
        if self.arrays is not None:
            weight, bias = self.arrays["weight"], self.arrays.get("bias")
            if weight.shape != shape:
                raise ParameterError(f"layer {self.label}: weights {weight.shape} do not fit "
                                     f"its input; it needs {shape}")
        elif self.kernel is None:
            rng = np.random.default_rng(self.seed)
            bound = 1 / math.sqrt(shape[1] * shape[2] * shape[3])
            weight = rng.uniform(-bound, bound, shape)
            bias = rng.uniform(-bound, bound, conv.out) if conv.bias else None
        else:
            weight, bias = self._kernel_weights(shape, catalogue)
        bias = np.zeros(conv.out) if bias is None else bias
        return {"weight": np.ascontiguousarray(weight, np.float32),
                "bias": np.ascontiguousarray(bias, np.float32)}

    def _kernel_weights(self, shape, catalogue):
        import numpy as np

        from .kernels import resolve_kernel

        kernel = resolve_kernel(self.kernel, catalogue)
        where = f"layer {self.label}: kernel {self.kernel}"
        if kernel.is_layer:
            if kernel.weights.shape != shape:
                raise ParameterError(f"{where} has shape {kernel.weights.shape}; the layer "
                                     f"needs {shape}")
            weight = kernel.weights
        else:
            if kernel.n_filters != 1 or kernel.size != self.op.kernel:
                raise ParameterError(f"{where} is {kernel.n_filters} filter(s) of "
                                     f"{kernel.size[0]}×{kernel.size[1]}; the layer needs one "
                                     f"{self.op.kernel[0]}×{self.op.kernel[1]} kernel")
            weight = np.broadcast_to(kernel.weights[0], shape)
        bias = np.broadcast_to(kernel.bias[:1], (shape[0],)) if self.op.bias else None
        return weight, bias


@dataclass(frozen=True)
class Field:
    """Receptive field of one axis of a layer: size r, effective stride S and effective
    padding P (before the first pixel).  ``grid`` is False where paths with different
    effective strides meet: the layer's pixels then have no one window formula."""

    size: int = 1
    stride: int = 1
    padding: int = 0
    grid: bool = True

    def then(self, window: Window) -> "Field":
        if not self.grid:
            return self
        return Field(self.size + (window.span - 1) * self.stride, self.stride * window.stride,
                     self.padding + window.padding * self.stride)

    @staticmethod
    def union(fields) -> "Field":
        """The field of a merge: the union of its inputs' windows, on their common grid."""
        fields = list(fields)
        if not all(f.grid for f in fields) or len({f.stride for f in fields}) > 1:
            return Field(0, 0, 0, grid=False)
        padding = max(f.padding for f in fields)
        last = max(f.size - 1 - f.padding for f in fields)
        return Field(padding + last + 1, fields[0].stride, padding)


@dataclass(frozen=True)
class NodeSummary:
    """A node at one input size: its shapes, counts and receptive field."""

    node: Node
    input_shapes: tuple
    output_shape: tuple
    params: Params
    macs: int
    fields: tuple[Field, Field] | None     # None where the layer is not spatial

    @property
    def grid(self) -> bool:
        return self.fields is not None and all(f.grid for f in self.fields)


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: tuple[int, int, int]
    nodes: tuple[Node, ...]

    def summary(self, input_shape=None, spatial_only: bool = False) -> list[NodeSummary]:
        """Shapes, parameters, multiply-accumulates and receptive fields node by node;
        `spatial_only` leaves out flatten, dense and every layer that reads them (what
        `forward` runs, at any image size).

        Raises
        ------
        ParameterError
            "layer NAME: …" when the shapes stop fitting.
        """
        shapes = {INPUT: tuple(input_shape or self.input_shape)}
        if None in shapes[INPUT]:
            raise ParameterError(f"of {self.name} has no fixed size "
                                 f"({shape_text(v or '?' for v in shapes[INPUT])}); give one",
                                 parameter="input_shape")
        found = []
        for node in self.nodes:
            op = node.op
            if spatial_only and (not op.spatial or not all(n in shapes for n in node.inputs)):
                continue
            inputs = tuple(shapes[name] for name in node.inputs)
            arg = inputs if op.arity is None else inputs[0]
            try:
                out = op.output_shape(arg)
                found.append((node, inputs, out, op.params(arg), op.macs(arg)))
            except ParameterError as exc:
                raise ParameterError(f"layer {node.label}: {exc}") from None
            shapes[node.name] = out
        fields = relative_fields([n for n, *_ in found], {n.name: ins for n, ins, *_ in found},
                                 INPUT)
        return [NodeSummary(node, inputs, out, params, macs, fields.get(node.name))
                for node, inputs, out, params, macs in found]

    def total_params(self) -> int:
        return sum(row.params.total for row in self.summary())



def relative_fields(nodes, input_shapes: dict, source: str) -> dict:
    """The fields of every node downstream of `source` (a node's name, or INPUT), with
    respect to `source`'s output grid: {name: (rows Field, cols Field) or None where not
    spatial}.  `input_shapes` gives each node's input shapes."""
    known = {source: (Field(), Field())}
    for node in nodes:
        reached = [known[name] for name in node.inputs if name in known]
        if not reached:
            continue
        if any(f is None for f in reached) or not node.op.spatial:
            known[node.name] = None
            continue
        fields = tuple(Field.union(axis) for axis in zip(*reached))
        if node.op.arity == 1:
            windows = node.op.windows(input_shapes[node.name][0])
            fields = tuple(f.then(w) for f, w in zip(fields, windows))
        known[node.name] = fields
    del known[source]
    return known


def find_layer(rows: list[NodeSummary], key: str) -> int:
    """The position in `rows` of a layer given by name or by its 1-based index."""
    for position, row in enumerate(rows):
        if key in (row.node.name, str(row.node.index)):
            return position
    raise ParameterError(f"{key!r} does not exist; the layers are "
                         f"{', '.join(row.node.name for row in rows)}", parameter="layer")


def last_spatial(rows: list[NodeSummary]) -> int:
    """The position of the last layer with a receptive field per pixel (--at's default)."""
    return max(i for i, row in enumerate(rows) if row.fields is not None)


def window_at(rows: list[NodeSummary], position: int, y: int, x: int) -> tuple[int, int, int, int]:
    """The input window (top, bottom, left, right, inclusive) of output pixel (y, x) of
    layer `position`: the first and last input rows and columns it depends on.

    Computed tap by tap, backwards through every path (per axis, the positions each
    layer reads, dilation's gaps and padding included), so taps that fall on padding
    count for nothing: the window of `Field.span` clipped at every layer, not only at
    the image's border.

    Raises
    ------
    ParameterError
        (``at``) outside the layer's output, or the layer is not spatial.
    """
    import numpy as np

    target = rows[position]
    label = target.node.label
    if target.fields is None:
        raise ParameterError(f"layer {label} is not spatial: each output sees the whole input")
    _, ho, wo = target.output_shape
    if not (0 <= y < ho and 0 <= x < wo):
        raise ParameterError(f"{y},{x} is outside layer {label}'s {ho}×{wo} output",
                             parameter="at")
    needed = {target.node.name: (np.arange(ho) == y, np.arange(wo) == x)}
    for row in reversed(rows[:position + 1]):
        if row.node.name not in needed:
            continue
        masks = needed.pop(row.node.name)
        for source, shape in zip(row.node.inputs, row.input_shapes):
            reads = masks
            if row.node.op.arity == 1:
                reads = tuple(_taps(mask, window, length) for mask, window, length in
                              zip(masks, row.node.op.windows(shape), shape[1:]))
            if not all(mask.any() for mask in reads):
                continue                                      # only padding on this path
            if source in needed:
                reads = tuple(a | b for a, b in zip(needed[source], reads))
            needed[source] = reads
    if INPUT not in needed:
        raise ParameterError(f"{y},{x} of layer {label} sees only padding", parameter="at")
    (top, bottom), (left, right) = ((int(i[0]), int(i[-1])) for i in map(np.flatnonzero,
                                                                          needed[INPUT]))
    return top, bottom, left, right


def _taps(mask, window: Window, length: int):
    """The input positions (a mask over `length`) that outputs `mask` read through `window`."""
    import numpy as np

    outputs = np.flatnonzero(mask)
    positions = (outputs[:, None] * window.stride - window.padding
                 + np.arange(window.kernel) * window.dilation).ravel()
    reads = np.zeros(length, bool)
    reads[positions[(positions >= 0) & (positions < length)]] = True
    return reads


#: How many windows an overlay draws at most.
MAX_WINDOWS = 12


def fields_at_depth(rows: list[NodeSummary], position: int, y: int, x: int):
    """The receptive field, at conv and pooling layers on the way to output pixel (y, x) of
    layer `position`, of the pixel at the centre of that pixel's footprint on each layer's
    grid.  Returns [(NodeSummary, window)], the windows as in `window_at`, growing with
    depth; of more than `MAX_WINDOWS` layers, the widest at each effective stride."""
    target = rows[position]
    last = window_at(rows, position, y, x)                    # checks (y, x)
    nodes = [row.node for row in rows]
    shapes = {row.node.name: row.input_shapes for row in rows}
    chosen = []
    for index, row in enumerate(rows[:position]):
        if row.node.kind not in ("conv", "maxpool", "avgpool") or not row.grid:
            continue
        fields = relative_fields(nodes, shapes, row.node.name).get(target.node.name)
        if fields is None or not all(f.grid for f in fields):
            continue                                          # not on the way to the target
        _, height, width = row.output_shape
        centre = _centre(fields[0], y, height), _centre(fields[1], x, width)
        chosen.append((row, window_at(rows, index, *centre)))
    if len(chosen) >= MAX_WINDOWS:
        widest = {}
        for row, window in chosen:
            stride = row.fields[0].stride
            if stride not in widest or row.fields[0].size >= widest[stride][0].fields[0].size:
                widest[stride] = (row, window)
        widest.pop(target.fields[0].stride, None)
        chosen = sorted(widest.values(), key=lambda pair: pair[0].fields[0].size)
    return chosen[-(MAX_WINDOWS - 1):] + [(target, last)]


def _centre(field: Field, index: int, length: int) -> int:
    first = index * field.stride - field.padding
    return min(length - 1, max(0, first + (field.size - 1) // 2))


# ----------------------------------------------------------------------------------------
# Network files

_SLIDING = {"k", "s", "p", "d"}
_FIELDS = {
    "conv": _SLIDING | {"out", "groups", "bias", "kernel", "init", "seed", "pad_mode"},
    "maxpool": _SLIDING,
    "avgpool": _SLIDING | {"count_include_pad"},
    "global_avgpool": set(),
    "batchnorm": set(),
    "flatten": set(),
    "dense": {"out", "bias"},
    "add": set(),
    "concat": set(),
    "pad": {"p", "pad_mode", "value"},
    **{name: set(defaults) for name, (_, defaults) in ACTIVATIONS.items()},
}
LAYER_TYPES = tuple(_FIELDS)


def load_network(path, input_shape=None) -> Network:
    r"""Read and check a network: a YAML network file (safe loader), or an ONNX model
    (``.onnx``, see `convcli.onnx_net`).  `input_shape` (C, H, W) replaces the file's.

    Its `Network.summary` is what ``convcli receptive-field`` prints: each layer's shapes,
    parameters, multiply-accumulates and receptive field (r, S, P per axis).

    Parameters
    ----------
    path : str or Path
        A network file (``name``, ``input: [C, H, W]``, ``layers``; see README) or an
        ONNX model.
    input_shape : (int, int, int), optional
        Run the network at this input size instead.

    Returns
    -------
    Network
        Its ``summary(input_shape=None)`` gives one `NodeSummary` per layer.

    Raises
    ------
    ParameterError
        Naming the file, the layer and field, and the reason.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> from convcli import load_network
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "tiny.yaml"
    >>> _ = path.write_text("name: tiny\ninput: [3, 32, 32]\nlayers:\n"
    ...                     "  - {name: conv1, type: conv, out: 8, k: 3, p: 1}\n"
    ...                     "  - {name: pool1, type: maxpool, k: 2}\n"
    ...                     "  - {name: conv2, type: conv, out: 16, k: 3, d: 2}\n")
    >>> for row in load_network(path).summary():
    ...     print(row.node.name, row.output_shape, row.params.total, row.fields[0].size)
    conv1 (8, 32, 32) 224 3
    pool1 (8, 16, 16) 0 4
    conv2 (16, 12, 12) 1168 12
    """
    path = Path(path)
    if path.suffix.lower() == ".onnx":
        from .onnx_net import load_onnx

        network = load_onnx(path, input_shape)
    else:
        network = _load_yaml(path, input_shape)
    try:
        if None not in network.input_shape:
            check_input(network, network.input_shape)
            network.summary()
    except ParameterError as exc:
        raise ParameterError(f"network {path}: {exc}") from None
    return network


def _load_yaml(path: Path, input_shape) -> Network:
    from .files import read_yaml

    data = read_yaml(path, "network")
    where = f"network {path}"
    if not isinstance(data, dict):
        raise ParameterError(f"{where}: expected a mapping with name, input and layers")
    unknown = set(data) - {"name", "input", "layers"}
    if unknown:
        raise ParameterError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                             "allowed: name, input, layers")
    shape = data.get("input")
    if (not isinstance(shape, list) or len(shape) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
        raise ParameterError(f"{where}: input must be [C, H, W] with positive whole numbers, "
                             f"got {shape!r}")
    entries = data.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ParameterError(f"{where}: layers must be a non-empty list")
    nodes, earlier = [], [INPUT]
    for index, entry in enumerate(entries, 1):
        node = _node(entry, index, where, earlier)
        if node.name in earlier:
            raise ParameterError(f"{where}: layer name {node.name} used twice"
                                 + " (input names the network's input)" * (node.name == INPUT))
        nodes.append(node)
        earlier.append(node.name)
    return Network(str(data.get("name", path.stem)), tuple(input_shape or shape), tuple(nodes))


def _node(entry, index: int, where: str, earlier: list[str]) -> Node:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ParameterError(f"{where}: layer {index}: expected a mapping with a type")
    kind = entry["type"]
    if kind not in LAYER_TYPES:
        raise ParameterError(f"{where}: layer {index}: unknown type {kind!r}; expected one of "
                             f"{', '.join(LAYER_TYPES)}")
    name = check_name(entry.get("name", f"{kind}{index}"), f"{where}: layer {index}")
    label = name if "name" in entry else f"{index} {kind}"
    allowed = _FIELDS[kind] | {"type", "name", "inputs"}
    unknown = set(entry) - allowed
    if unknown:
        raise ParameterError(f"{where}: layer {label}: unknown field(s) "
                             f"{', '.join(sorted(map(str, unknown)))}; allowed: "
                             f"{', '.join(sorted(allowed - {'type'}))}")
    get = _Getter(entry, f"{where}: layer {label}")
    op = _op(kind, entry, get)
    inputs = get.inputs(earlier, op.arity)
    if kind == "conv":
        return Node(index, name, op, inputs, label, get.kernel_spec(),
                    get.whole("seed", 0, minimum=0))
    return Node(index, name, op, inputs, label)


def _op(kind: str, entry: dict, get: "_Getter") -> Op:
    """The operation of one network-file entry (fields already known to be allowed)."""
    if kind == "conv":
        size = get.pair("k", (3, 3))
        kernel = entry.get("kernel")
        if kernel is not None:
            found = _kernel_size(str(kernel), get.label)
            if "k" in entry and size != found:
                raise ParameterError(f"{get.label}: k {list(size)} does not match kernel "
                                     f"{kernel}, which is {found[0]}×{found[1]}")
            size = found
        if entry.get("init", "random") != "random":
            raise ParameterError(f"{get.label}: init: {entry['init']!r} is not known; use random")
        return ConvOp(size, get.pair("s", 1), get.padding(), get.pair("d", 1),
                      get.whole("out", None, required=True), get.whole("groups", 1),
                      get.flag("bias", True), get.pad_mode())
    if kind in ("maxpool", "avgpool"):
        size = get.pair("k", None)
        if size is None:
            raise ParameterError(f"{get.label}: k (the window) is required")
        return PoolOp(size, get.pair("s", None), get.padding(), get.pair("d", 1), kind,
                      get.flag("count_include_pad", True))
    if kind == "dense":
        return DenseOp(get.whole("out", None, required=True), get.flag("bias", True))
    if kind == "pad":
        amounts = get.padding(words=False)
        amounts = (amounts,) * 4 if isinstance(amounts, int) else (
            (amounts[0], amounts[0], amounts[1], amounts[1]) if len(amounts) == 2 else amounts)
        return PadOp(amounts, get.pad_mode(), get.number("value", 0.0))
    if kind in ACTIVATIONS:
        defaults = ACTIVATIONS[kind][1]
        return ActivationOp(kind, tuple((k, get.number(k, v)) for k, v in defaults.items()
                                        if k in entry))
    return {"batchnorm": BatchNormOp, "flatten": FlattenOp, "global_avgpool": GlobalAvgPoolOp,
            "add": AddOp, "concat": ConcatOp}[kind]()


def _is_whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class _Getter:
    """Typed access to one layer's fields, with errors that name the field."""

    def __init__(self, entry: dict, label: str):
        self.entry, self.label = entry, label

    def _fail(self, key, expected):
        raise ParameterError(f"{self.label}: {key}: {expected}, got {self.entry[key]!r}")

    def whole(self, key, default, required=False, minimum=1):
        if key not in self.entry:
            if required:
                raise ParameterError(f"{self.label}: {key} is required")
            return default
        value = self.entry[key]
        if not _is_whole(value) or value < minimum:
            self._fail(key, f"expected a whole number ≥ {minimum}")
        return value

    def number(self, key, default):
        value = self.entry.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            self._fail(key, "expected a number")
        return float(value)

    def pair(self, key, default):
        if key not in self.entry:
            return default
        value = self.entry[key]
        items = [value] * 2 if _is_whole(value) else value
        if (not isinstance(items, list) or len(items) != 2
                or not all(_is_whole(v) and v >= 1 for v in items)):
            self._fail(key, "expected a whole number ≥ 1 or [h, w]")
        return tuple(items)

    def padding(self, words=True):
        value = self.entry.get("p", 0)
        names = ("same", "valid", "same_upper", "same_lower") if words else ()
        if value in names:
            return value
        if _is_whole(value) and value >= 0:
            return value
        if (isinstance(value, list) and len(value) in (2, 4)
                and all(_is_whole(v) and v >= 0 for v in value)):
            return tuple(value)
        self._fail("p", "expected a whole number ≥ 0, [ph, pw], [pt, pb, pl, pr]"
                   + ", same, valid, same_upper or same_lower" * words)

    def flag(self, key, default):
        value = self.entry.get(key, default)
        if not isinstance(value, bool):
            self._fail(key, "expected true or false")
        return value

    def pad_mode(self):
        from .plan import canonical_pad_mode

        try:
            return canonical_pad_mode(self.entry.get("pad_mode", "zeros"))
        except ParameterError as exc:
            raise ParameterError(f"{self.label}: {exc}") from None

    def kernel_spec(self):
        kernel = self.entry.get("kernel")
        return None if kernel is None else str(kernel)

    def inputs(self, earlier: list[str], arity: int | None) -> tuple[str, ...]:
        """The layers this one reads: `inputs` (a name or a list of names of earlier
        layers, or input), else the layer before."""
        value = self.entry.get("inputs", [earlier[-1]])
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            self._fail("inputs", "expected a layer name or a list of them")
        for name in names:
            if name not in earlier:
                self._fail("inputs", f"{name!r} is not an earlier layer (a layer reads "
                                     f"layers before it, or input)")
        if arity == 1 and len(names) != 1:
            self._fail("inputs", "expected one layer")
        if arity is None and len(names) < 2:
            self._fail("inputs", "expected two or more layers to merge")
        return tuple(names)


def _kernel_size(spec: str, label: str) -> tuple[int, int]:
    from .kernels import resolve_kernel

    try:
        return resolve_kernel(spec).size
    except ParameterError as exc:
        raise ParameterError(f"{label}: kernel: {exc}") from None


# ----------------------------------------------------------------------------------------
# Running a network on an image


def check_input(network: Network, shape, catalogue=None) -> list[NodeSummary]:
    """The summary of `network` on planes of `shape` (C, H, W), after checking that the
    channels match (parameter ``image``), that weights read from a model file fit, and,
    with a `catalogue`, that the kernel specs of conv layers do."""
    if shape[0] != network.input_shape[0]:
        raise ParameterError(f"has {shape[0]} channel(s) but the network {network.name} takes "
                             f"{network.input_shape[0]}; convert with gray=True or rgb=True",
                             parameter="image")
    rows = network.summary(shape, spatial_only=True)
    for row in rows:
        if row.node.arrays is not None or (row.node.kernel is not None and catalogue is not None):
            row.node.weights(row.input_shapes[0], catalogue)
    return rows


def forward(network: Network, planes, catalogue=None):
    """Run the spatial layers on (C, H, W) or (N, C, H, W) float planes; yields
    (NodeSummary, output) per layer in file order.  Layers from flatten on are not run.
    Each output is kept only until the last layer that reads it has run."""
    import numpy as np

    x = np.asarray(planes, np.float32)
    rows = check_input(network, x.shape[-3:])
    readers = Counter(name for row in rows for name in row.node.inputs)
    values = {INPUT: x}
    for row in rows:
        node = row.node
        out = node.op.run([values[name] for name in node.inputs],
                          node.weights(row.input_shapes[0], catalogue))
        for name in node.inputs:
            readers[name] -= 1
            if not readers[name]:
                del values[name]
        if readers[node.name]:
            values[node.name] = out
        yield row, out


def map_file_name(node: Node, count: int, suffix: str) -> str:
    """NN_NAME.SUFFIX, the index zero-padded for `count` layers, the name made safe."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", node.name).strip("._") or node.kind
    return f"{node.index:0{max(2, len(str(count)))}d}_{safe}{suffix}"


def feature_map_paths(network: Network, output_dir, grid: bool = False) -> dict[str, Path]:
    """Where `write_feature_maps` writes each layer's maps, by layer name (inside
    `output_dir`, whatever the names)."""
    suffix = ".png" if grid else ".npy"
    return {node.name: child_path(output_dir, map_file_name(node, len(network.nodes), suffix))
            for node in network.nodes}


def write_feature_maps(network: Network, planes, output_dir, *, grid: bool = False,
                       range_policy: str = "minmax", catalogue=None) -> list[dict]:
    """Run `network` on (C, H, W) `planes` and write each spatial layer's output to
    `output_dir`: an (H, W, C) float32 .npy, or with `grid` one PNG tiling every channel,
    each mapped by `range_policy` on its own.  Returns one record per file written."""
    import numpy as np

    from .images import write_image
    from .pixels import Picture, to_picture

    paths = feature_map_paths(network, output_dir, grid)
    records = []
    for row, maps in forward(network, planes, catalogue):
        target = paths[row.node.name]
        if grid:
            picture, _, _ = to_picture(maps, None, range_policy, np.uint8, "PNG", range_policy,
                                       grid=True)
        else:
            picture = Picture(np.ascontiguousarray(maps.transpose(1, 2, 0)))
        write_image(target, picture)
        records.append({"layer": row.node.name, "type": row.node.kind, "file": str(target),
                        "shape": list(maps.shape), "min": float(maps.min()),
                        "max": float(maps.max())})
    return records


def axes(fields, attribute: str):
    """One number when the H and W fields agree in `attribute`, else [h, w]."""
    h, w = (getattr(f, attribute) for f in fields)
    return h if h == w else [h, w]


def network_report(network: Network, rows: list[NodeSummary], input_shape,
                   fields: bool = True) -> dict:
    """Per layer (name, type, inputs, output shape, parameters, multiply-accumulates and,
    with `fields`, receptive field r, S, P — one number where H and W agree, else [h, w];
    null where the layer is not spatial or, with ``grid`` false, not on one grid) and the
    totals."""
    layers = []
    for row in rows:
        record = {"name": row.node.name, "type": row.node.kind,
                  "inputs": list(row.node.inputs), "output_shape": list(row.output_shape),
                  "params": row.params.total, "macs": row.macs}
        if fields:
            record.update(spatial=row.fields is not None, grid=row.grid)
            for key, attribute in (("rf", "size"), ("stride", "stride"), ("padding", "padding")):
                record[key] = axes(row.fields, attribute) if row.grid else None
        layers.append(record)
    return {"name": network.name, "input_shape": list(input_shape),
            "layers": layers, "total_params": sum(row.params.total for row in rows),
            "total_macs": sum(row.macs for row in rows)}
