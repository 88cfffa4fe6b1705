"""Layer stacks: network files, shapes and parameters per layer, receptive fields, and the
forward pass that `apply --net` draws feature maps from.

The receptive-field arithmetic follows Araujo, Norris and Sim, "Computing Receptive
Fields of Convolutional Neural Networks" (Distill, 2019): per axis, after layers 1…L,

    r = 1 + Σ (k_l − 1)·d_l·Π_{i<l} s_i      S = Π s_l      P = Σ p_l·Π_{i<l} s_i

and output pixel y sees input pixels y·S − P … y·S − P + r − 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import ParameterError
from .layers import BatchNorm, Conv, Dense, Flatten, Layer, Params, Pool, ReLU, Softmax, Window

LAYER_TYPES = ("conv", "relu", "maxpool", "avgpool", "batchnorm", "flatten", "dense", "softmax")
_FIELDS = {
    "conv": {"type", "name", "out", "k", "s", "p", "d", "groups", "bias", "kernel", "init",
             "seed", "pad_mode"},
    "maxpool": {"type", "name", "k", "s", "p", "d"},
    "avgpool": {"type", "name", "k", "s", "p", "d"},
    "relu": {"type", "name"},
    "batchnorm": {"type", "name"},
    "flatten": {"type", "name"},
    "dense": {"type", "name", "out", "bias"},
    "softmax": {"type", "name"},
}


@dataclass(frozen=True)
class NetLayer:
    """One layer of a network file: its arithmetic, its name, and how to get its weights."""

    index: int
    name: str
    layer: Layer
    kernel: str | None = None        # a kernel spec for a conv layer's weights
    seed: int = 0                    # for random initialisation

    @property
    def kind(self) -> str:
        return self.layer.kind


@dataclass(frozen=True)
class Field:
    """Receptive field of one axis after some layers: size r, effective stride S and
    effective padding P (before the first pixel)."""

    size: int = 1
    stride: int = 1
    padding: int = 0

    def then(self, window: Window) -> "Field":
        return Field(self.size + (window.span - 1) * self.stride, self.stride * window.stride,
                     self.padding + window.padding * self.stride)

    def span(self, index: int, length: int) -> tuple[int, int]:
        """The input pixels [first, last] output pixel `index` sees, clipped to the axis."""
        first = index * self.stride - self.padding
        return max(0, first), min(length - 1, first + self.size - 1)


@dataclass(frozen=True)
class LayerSummary:
    layer: NetLayer
    input_shape: tuple
    output_shape: tuple
    params: Params
    fields: tuple[Field, Field] | None     # None once the layer is no longer spatial


@dataclass(frozen=True)
class Network:
    name: str
    input_shape: tuple[int, int, int]
    layers: tuple[NetLayer, ...]

    def summary(self, input_shape=None) -> list[LayerSummary]:
        """Shapes, parameters and receptive fields layer by layer.

        Raises
        ------
        ParameterError
            "layer N TYPE: …" when the shapes stop fitting.
        """
        shape = tuple(input_shape or self.input_shape)
        fields = (Field(), Field())
        rows = []
        for net_layer in self.layers:
            layer = net_layer.layer
            try:
                out = layer.output_shape(shape)
                params = layer.params(shape)
                if fields is not None and layer.spatial:
                    fields = tuple(f.then(w) for f, w in zip(fields, layer.windows(shape)))
                else:
                    fields = None
            except ParameterError as exc:
                raise ParameterError(f"layer {net_layer.index} {net_layer.kind}: {exc}") from None
            rows.append(LayerSummary(net_layer, shape, out, params, fields))
            shape = out
        return rows

    def total_params(self) -> int:
        return sum(row.params.total for row in self.summary())

    def find(self, key: str) -> int:
        """The position of a layer given by name or by its 1-based index."""
        for position, net_layer in enumerate(self.layers):
            if key in (net_layer.name, str(net_layer.index)):
                return position
        raise ParameterError(f"{key!r} does not exist; the layers are "
                             f"{', '.join(layer.name for layer in self.layers)}", parameter="layer")


def window_at(summary: LayerSummary, y: int, x: int, input_shape) -> tuple[int, int, int, int]:
    """The input window (top, bottom, left, right, inclusive, clipped) of output pixel (y, x)."""
    if summary.fields is None:
        raise ParameterError(f"layer {summary.layer.index} {summary.layer.kind} is not spatial: "
                             "each output sees the whole input")
    _, ho, wo = summary.output_shape
    if not (0 <= y < ho and 0 <= x < wo):
        raise ParameterError(f"{y},{x} is outside layer {summary.layer.index}'s "
                             f"{ho}×{wo} output", parameter="at")
    rows, cols = summary.fields
    top, bottom = rows.span(y, input_shape[1])
    left, right = cols.span(x, input_shape[2])
    return top, bottom, left, right


def fields_at_depth(rows: list[LayerSummary], y: int, x: int, input_shape):
    """The receptive field, at each conv or pooling layer, of the pixel on the way to output
    pixel (y, x) of the last spatial layer: for each layer, the pixel at the centre of the
    final pixel's footprint on that layer's grid.  Returns [(LayerSummary, window)], the
    windows as in `window_at`, growing with depth."""
    spatial = [row for row in rows if row.fields is not None]
    last = spatial[-1]
    window_at(last, y, x, input_shape)                      # checks (y, x)
    chosen = []
    for position, row in enumerate(spatial):
        if row.layer.kind not in ("conv", "maxpool", "avgpool"):
            continue
        # the final pixel's footprint on this layer's grid: the layers after it, composed
        fields = (Field(), Field())
        for later in spatial[position + 1:]:
            fields = tuple(f.then(w) for f, w in zip(fields, later.layer.layer.windows(
                later.input_shape)))
        _, height, width = row.output_shape
        cy = _centre(fields[0], y, height)
        cx = _centre(fields[1], x, width)
        chosen.append((row, window_at(row, cy, cx, input_shape)))
    return chosen


def _centre(field: Field, index: int, length: int) -> int:
    first = index * field.stride - field.padding
    return min(length - 1, max(0, first + (field.size - 1) // 2))


# ----------------------------------------------------------------------------------------
# Network files


def load_network(path) -> Network:
    """Read and check a network file (YAML, safe loader).

    Raises
    ------
    ParameterError
        Naming the file, the layer index and field, and the reason.
    """
    from .kernels import read_yaml

    path = Path(path)
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
    layers = tuple(_layer(entry, index, where) for index, entry in enumerate(entries, 1))
    names = [layer.name for layer in layers]
    duplicated = {n for n in names if names.count(n) > 1}
    if duplicated:
        raise ParameterError(f"{where}: layer name(s) {', '.join(sorted(duplicated))} used twice")
    network = Network(str(data.get("name", path.stem)), tuple(shape), layers)
    try:
        network.summary()
    except ParameterError as exc:
        raise ParameterError(f"{where}: {exc}") from None
    return network


def _layer(entry, index: int, where: str) -> NetLayer:
    if not isinstance(entry, dict) or "type" not in entry:
        raise ParameterError(f"{where}: layer {index}: expected a mapping with a type")
    kind = entry["type"]
    label = f"{where}: layer {index} {kind}"
    if kind not in LAYER_TYPES:
        raise ParameterError(f"{where}: layer {index}: unknown type {kind!r}; expected one of "
                             f"{', '.join(LAYER_TYPES)}")
    unknown = set(entry) - _FIELDS[kind]
    if unknown:
        raise ParameterError(f"{label}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                             f"allowed: {', '.join(sorted(_FIELDS[kind] - {'type'}))}")
    name = str(entry.get("name", f"{kind}{index}"))
    get = _Getter(entry, label)
    if kind == "conv":
        kernel = entry.get("kernel")
        size = get.pair("k", 3)
        if kernel is not None:
            found = _kernel_size(str(kernel), label)
            if "k" in entry and size != found:
                raise ParameterError(f"{label}: k {list(size)} does not match kernel {kernel}, "
                                     f"which is {found[0]}×{found[1]}")
            size = found
        layer = Conv(size, get.pair("s", 1), get.padding(), get.pair("d", 1),
                     get.whole("out", None, required=True), get.whole("groups", 1),
                     get.flag("bias", True), get.pad_mode())
        if entry.get("init", "random") != "random":
            raise ParameterError(f"{label}: init: {entry['init']!r} is not known; use random")
        return NetLayer(index, name, layer, None if kernel is None else str(kernel),
                        get.whole("seed", 0, minimum=0))
    if kind in ("maxpool", "avgpool"):
        size = get.pair("k", None)
        if size is None:
            raise ParameterError(f"{label}: k (the window) is required")
        return NetLayer(index, name, Pool(size, get.pair("s", None), get.padding(),
                                          get.pair("d", 1), kind))
    if kind == "dense":
        return NetLayer(index, name, Dense(get.whole("out", None, required=True),
                                           get.flag("bias", True)))
    return NetLayer(index, name, {"relu": ReLU, "batchnorm": BatchNorm, "flatten": Flatten,
                                  "softmax": Softmax}[kind]())


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
        if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
            self._fail(key, f"expected a whole number ≥ {minimum}")
        return value

    def pair(self, key, default):
        if key not in self.entry:
            return default
        value = self.entry[key]
        items = [value] * 2 if isinstance(value, int) and not isinstance(value, bool) else value
        if (not isinstance(items, list) or len(items) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in items)):
            self._fail(key, "expected a whole number ≥ 1 or [h, w]")
        return tuple(items)

    def padding(self):
        value = self.entry.get("p", 0)
        if value in ("same", "valid"):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if (isinstance(value, list) and len(value) in (2, 4)
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
            return tuple(value)
        self._fail("p", "expected a whole number ≥ 0, [ph, pw], [pt, pb, pl, pr], same or valid")

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


def _kernel_size(spec: str, label: str) -> tuple[int, int]:
    from .kernels import resolve_kernel

    try:
        return resolve_kernel(spec).size
    except ParameterError as exc:
        raise ParameterError(f"{label}: kernel: {exc}") from None


# ----------------------------------------------------------------------------------------
# Running a network on an image


def layer_weights(net_layer: NetLayer, in_channels: int, catalogue=None, trained=None):
    """The (weight, bias) of a conv layer: from `trained` (a `convcli.model.Weights`) when
    given, else from its kernel spec (a 2-D kernel is used for every filter and input
    channel), or initialised as PyTorch does (uniform in ±1/√fan_in) from its seed."""
    import numpy as np

    from .kernels import resolve_kernel

    conv = net_layer.layer
    shape = (conv.out, in_channels // conv.groups, *conv.kernel)
    if trained is not None:
        return trained.layer(net_layer.name)
    if net_layer.kernel is None:
        rng = np.random.default_rng(net_layer.seed)
        bound = 1 / math.sqrt(shape[1] * shape[2] * shape[3])
        weight = rng.uniform(-bound, bound, shape)
        bias = rng.uniform(-bound, bound, conv.out) if conv.bias else np.zeros(conv.out)
        return weight, bias
    kernel = resolve_kernel(net_layer.kernel, catalogue)
    where = f"layer {net_layer.index} conv: kernel {net_layer.kernel}"
    if kernel.is_layer:
        if kernel.weights.shape != shape:
            raise ParameterError(f"{where} has shape {kernel.weights.shape}; the layer needs {shape}")
        weight = kernel.weights
    else:
        if kernel.n_filters != 1 or kernel.size != conv.kernel:
            raise ParameterError(f"{where} is {kernel.n_filters} filter(s) of "
                                 f"{kernel.size[0]}×{kernel.size[1]}; the layer needs one "
                                 f"{conv.kernel[0]}×{conv.kernel[1]} kernel")
        weight = np.broadcast_to(kernel.weights[0], shape).copy()
    bias = np.broadcast_to(kernel.bias[:1], (conv.out,)).copy() if conv.bias else np.zeros(conv.out)
    return weight, bias


def forward(network: Network, planes, catalogue=None, trained=None):
    """Run the spatial layers on (C, H, W) planes; yields (NetLayer, output) per layer,
    stopping before flatten.  Batchnorm is the identity (its parameters at their start)."""
    import numpy as np

    from .conv import conv2d, max_pool2d

    x = np.asarray(planes, np.float32)
    for row in network.summary(x.shape):
        net_layer, layer = row.layer, row.layer.layer
        if not layer.spatial:
            return
        if layer.kind == "conv":
            weight, bias = layer_weights(net_layer, x.shape[0], catalogue, trained)
            x = conv2d(x, weight.astype(np.float32), bias.astype(np.float32), layer.stride,
                       layer.padding, layer.dilation, layer.groups, layer.pad_mode)
        elif layer.kind == "maxpool":
            x = max_pool2d(x, layer.kernel, layer.stride, layer.padding, layer.dilation)
        elif layer.kind == "avgpool":
            plan = layer.plan(x.shape)
            weight = np.full((x.shape[0], 1, *layer.kernel), 1 / np.prod(layer.kernel), np.float32)
            x = conv2d(x, weight, None, plan.stride, plan.padding, plan.dilation, x.shape[0])
        elif layer.kind == "relu":
            x = np.maximum(x, 0)
        yield net_layer, x
