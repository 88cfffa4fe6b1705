"""ONNX models as convcli networks: the graph and its initializers, read with the `onnx`
package (an optional extra, ``pip install 'convcli[onnx]'``; no ONNX runtime).

Each supported node becomes a `convcli.net.Node` whose arrays (conv and dense weights,
batch-norm statistics folded into a scale and a shift) come from the initializers, so
`convcli forward` runs the model's own weights.  Identity and Dropout are skipped (the
identity at inference); a Constant node is read as an initializer; an Add of a constant
to a MatMul is that dense layer's bias.  Anything else is refused with one line naming
the operator and the node.
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import ConvcliError, ParameterError
from .layers import (AddOp, ActivationOp, BatchNormOp, ConcatOp, ConvOp, DenseOp, FlattenOp,
                     GlobalAvgPoolOp, PadOp, PoolOp)
from .net import INPUT, Network, Node

#: ONNX element-wise activations → (convcli activation, {ONNX attribute: (setting, default)}).
ACTIVATIONS = {
    "Relu": ("relu", {}),
    "LeakyRelu": ("leaky_relu", {"alpha": ("alpha", 0.01)}),
    "Elu": ("elu", {"alpha": ("alpha", 1.0)}),
    "Selu": ("selu", {"alpha": ("alpha", 1.67326319217681884765625),
                      "gamma": ("gamma", 1.05070102214813232421875)}),
    "Sigmoid": ("sigmoid", {}),
    "HardSigmoid": ("hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)}),
    "HardSwish": ("hard_swish", {}),
    "Tanh": ("tanh", {}),
    "Softplus": ("softplus", {}),
    "Softsign": ("softsign", {}),
    "Softmax": ("softmax", {}),
}
PASSED = ("Identity", "Dropout")
SUPPORTED = ("Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "BatchNormalization",
             "Add", "Concat", "Flatten", "Reshape (flatten only)", "Gemm", "MatMul", "Pad",
             "Clip", *ACTIVATIONS, *PASSED, "Constant")
PAD_MODES = {"constant": "zeros", "reflect": "reflect", "edge": "replicate", "wrap": "circular"}


def load_onnx(path, input_shape=None) -> Network:
    """Read an ONNX model's graph as a `Network` (one image: batch size 1 or symbolic).

    Raises
    ------
    ConvcliError
        Without the onnx package, or for a file that is not an ONNX model.
    ParameterError
        For an operator, attribute or input convcli does not support, naming the node.
    """
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        raise ConvcliError(f"{path}: reading ONNX models needs the onnx package: "
                           "pip install 'convcli[onnx]'") from None
    path = Path(path)
    try:
        model = onnx.load(str(path))
    except (OSError, DecodeError, ValueError) as exc:
        raise ConvcliError(f"network {path}: not a readable ONNX model "
                           f"({getattr(exc, 'strerror', None) or exc})") from None
    return _Reader(model.graph, f"network {path}", input_shape, path.stem).network()


class _Reader:
    def __init__(self, graph, where: str, input_shape, stem: str):
        from onnx import numpy_helper

        self.graph, self.where, self.stem = graph, where, stem
        self.to_array = numpy_helper.to_array
        self.constants = {t.name: self.to_array(t) for t in graph.initializer}
        self.producer: dict[str, str] = {}        # tensor → node name (or INPUT)
        self.nodes: list[Node] = []
        self.input_shape = self._input(input_shape)

    def _input(self, override):
        inputs = [i for i in self.graph.input if i.name not in self.constants]
        if len(inputs) != 1:
            raise ParameterError(f"{self.where}: expected one image input, found "
                                 f"{len(inputs)} ({', '.join(i.name for i in inputs)})")
        dims = [d.dim_value if d.HasField("dim_value") else None
                for d in inputs[0].type.tensor_type.shape.dim]
        if len(dims) != 4 or dims[0] not in (None, 1):
            raise ParameterError(f"{self.where}: input {inputs[0].name} must be N×C×H×W with "
                                 f"N = 1, got {dims}")
        self.producer[inputs[0].name] = INPUT
        if override is not None:
            return tuple(override)
        if dims[1] in (None, 0):
            raise ParameterError(f"{self.where}: input {inputs[0].name} has no fixed number "
                                 "of channels; give the input shape", parameter="input_shape")
        return tuple(d or None for d in dims[1:])       # H, W may be left to the image

    def network(self) -> Network:
        for index, node in enumerate(self.graph.node, 1):
            self._read(index, node)
        return Network(self.graph.name or self.stem, self.input_shape, tuple(self.nodes))

    # -- helpers ------------------------------------------------------------------------

    def _fail(self, node, message: str):
        raise ParameterError(f"{self.where}: node {node.name or '(unnamed)'} ({node.op_type}): "
                             f"{message}")

    def _attrs(self, node) -> dict:
        from onnx import helper

        values = {}
        for attribute in node.attribute:
            value = helper.get_attribute_value(attribute)
            values[attribute.name] = value.decode() if isinstance(value, bytes) else value
        return values

    def _constant(self, node, position: int, required: bool = True):
        name = node.input[position] if position < len(node.input) else ""
        if name in self.constants:
            return self.constants[name]
        if required or name:
            self._fail(node, f"input {position + 1} ({name or 'missing'}) must be an "
                             "initializer or a Constant")
        return None

    def _source(self, node, tensor: str) -> str:
        if tensor not in self.producer:
            self._fail(node, f"input {tensor} comes from no node convcli read (a constant "
                             "where an image tensor is expected?)")
        return self.producer[tensor]

    def _add(self, index, node, op, inputs, arrays=None) -> None:
        taken = {n.name for n in self.nodes} | {INPUT}
        name = node.name or f"{node.op_type}_{index}"
        if name in taken:
            name = f"{name}_{index}"
        self.nodes.append(Node(index, name, op, tuple(inputs), f"{name} ({node.op_type})",
                               arrays=arrays))
        for output in node.output[:1]:
            self.producer[output] = name

    def _window(self, node, attrs, kernel):
        """strides, padding, dilations of a Conv or pool node in convcli's terms."""
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        auto = attrs.get("auto_pad", "NOTSET")
        if len(kernel) != 2 or len(strides) != 2 or len(dilations) != 2:
            self._fail(node, f"only 2-D windows are supported, got kernel_shape {list(kernel)}")
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            padding = auto.lower()
        elif auto == "VALID":
            padding = 0
        elif auto == "NOTSET":
            pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
            if len(pads) != 4:
                self._fail(node, f"pads {list(pads)}: expected 4 values")
            padding = (pads[0], pads[2], pads[1], pads[3])     # ONNX: begins, then ends
        else:
            self._fail(node, f"auto_pad {auto!r} is not one of NOTSET, SAME_UPPER, SAME_LOWER, "
                             "VALID")
        return strides, padding, dilations

    # -- operators ----------------------------------------------------------------------

    def _read(self, index: int, node) -> None:
        kind, attrs = node.op_type, self._attrs(node)
        if node.domain not in ("", "ai.onnx"):
            self._fail(node, f"operator domain {node.domain!r} is not supported")
        if kind == "Constant":
            if "value" not in attrs:
                self._fail(node, "only a Constant with a tensor value is supported")
            self.constants[node.output[0]] = self.to_array(attrs["value"])
            return
        if kind in PASSED:
            self.producer[node.output[0]] = self._source(node, node.input[0])
            return
        reader = getattr(self, f"_{kind}", None)
        if reader is None and kind not in ACTIVATIONS:
            self._fail(node, f"operator {kind} is not supported; convcli reads "
                             f"{', '.join(SUPPORTED)}")
        if kind in ACTIVATIONS:
            function, settings = ACTIVATIONS[kind]
            if kind == "Softmax" and attrs.get("axis", 1) not in (1, -1):
                self._fail(node, f"axis {attrs['axis']}: only the channel axis (1) is supported")
            op = ActivationOp(function, tuple((name, float(attrs.get(key, default)))
                                              for key, (name, default) in settings.items()))
            self._add(index, node, op, [self._source(node, node.input[0])])
            return
        reader(index, node, attrs)

    def _Conv(self, index, node, attrs):
        weight = self._constant(node, 1)
        bias = self._constant(node, 2, required=False)
        kernel = tuple(attrs.get("kernel_shape", weight.shape[2:]))
        strides, padding, dilations = self._window(node, attrs, kernel)
        op = ConvOp(kernel, strides, padding, dilations, int(weight.shape[0]),
                    int(attrs.get("group", 1)), bias is not None)
        self._add(index, node, op, [self._source(node, node.input[0])],
                  {"weight": weight, **({"bias": bias} if bias is not None else {})})

    def _pool(self, index, node, attrs, kind):
        if attrs.get("ceil_mode", 0):
            self._fail(node, "ceil_mode 1 is not supported (PyTorch's default, 0, is)")
        kernel = tuple(attrs["kernel_shape"])
        strides, padding, dilations = self._window(node, attrs, kernel)
        op = PoolOp(kernel, strides, padding, dilations, kind,
                    bool(attrs.get("count_include_pad", 0)))
        self._add(index, node, op, [self._source(node, node.input[0])])

    def _MaxPool(self, index, node, attrs):
        if len(node.output) > 1 and node.output[1]:
            self._fail(node, "the Indices output is not supported")
        self._pool(index, node, attrs, "maxpool")

    def _AveragePool(self, index, node, attrs):
        self._pool(index, node, attrs, "avgpool")

    def _GlobalAveragePool(self, index, node, attrs):
        self._add(index, node, GlobalAvgPoolOp(), [self._source(node, node.input[0])])

    def _BatchNormalization(self, index, node, attrs):
        import numpy as np

        scale, shift, mean, var = (self._constant(node, i).astype(np.float64) for i in range(1, 5))
        factor = scale / np.sqrt(var + attrs.get("epsilon", 1e-5))
        self._add(index, node, BatchNormOp(), [self._source(node, node.input[0])],
                  {"scale": factor, "shift": shift - mean * factor})

    def _Clip(self, index, node, attrs):
        low = self._constant(node, 1, required=False) if len(node.input) > 1 else None
        high = self._constant(node, 2, required=False) if len(node.input) > 2 else None
        low = float(attrs.get("min", -math.inf) if low is None else low)
        high = float(attrs.get("max", math.inf) if high is None else high)
        op = (ActivationOp("relu6") if (low, high) == (0.0, 6.0) else
              ActivationOp("clip", (("min", low), ("max", high))))
        self._add(index, node, op, [self._source(node, node.input[0])])

    def _Add(self, index, node, attrs):
        constant = [name for name in node.input if name in self.constants]
        if not constant:
            self._add(index, node, AddOp(), [self._source(node, n) for n in node.input])
            return
        other = next((n for n in node.input if n not in self.constants), None)
        source = self.producer.get(other)
        last = self.nodes[-1] if self.nodes else None
        if last is None or last.name != source or last.kind != "dense" or last.op.bias:
            self._fail(node, "adding a constant is supported only as the bias of a MatMul")
        bias = self.constants[constant[0]].reshape(-1)
        self.nodes[-1] = Node(last.index, last.name, DenseOp(last.op.out, True, last.op.features),
                              last.inputs,
                              last.label, arrays={**last.arrays, "bias": bias})
        self.producer[node.output[0]] = last.name

    def _Concat(self, index, node, attrs):
        if attrs.get("axis") != 1:
            self._fail(node, f"axis {attrs.get('axis')}: only the channel axis (1) is supported")
        self._add(index, node, ConcatOp(), [self._source(node, n) for n in node.input])

    def _Flatten(self, index, node, attrs):
        if attrs.get("axis", 1) != 1:
            self._fail(node, f"axis {attrs['axis']}: only axis 1 (one image) is supported")
        self._add(index, node, FlattenOp(), [self._source(node, node.input[0])])

    def _Reshape(self, index, node, attrs):
        shape = [int(v) for v in self._constant(node, 1).reshape(-1)]
        if len(shape) != 2 or shape[0] not in (0, 1, -1) or (shape[0] == -1 and shape[1] == -1):
            self._fail(node, f"shape {shape}: only a flatten (shape [N, -1]) is supported")
        features = None if shape[1] == -1 else shape[1]
        self._add(index, node, FlattenOp(features), [self._source(node, node.input[0])])

    def _Gemm(self, index, node, attrs):
        import numpy as np

        if attrs.get("transA", 0):
            self._fail(node, "transA 1 is not supported")
        weight = self._constant(node, 1)
        weight = (weight if attrs.get("transB", 0) else weight.T) * attrs.get("alpha", 1.0)
        bias = self._constant(node, 2, required=False)
        arrays = {"weight": weight}
        if bias is not None:
            arrays["bias"] = np.broadcast_to(bias * attrs.get("beta", 1.0), (weight.shape[0],))
        self._add(index, node, DenseOp(int(weight.shape[0]), bias is not None,
                                       int(weight.shape[1])),
                  [self._source(node, node.input[0])], arrays)

    def _MatMul(self, index, node, attrs):
        weight = self._constant(node, 1)
        if weight.ndim != 2:
            self._fail(node, f"only a 2-D weight matrix is supported, got {list(weight.shape)}")
        self._add(index, node, DenseOp(int(weight.shape[1]), False, int(weight.shape[0])),
                  [self._source(node, node.input[0])], {"weight": weight.T})

    def _Pad(self, index, node, attrs):
        if len(node.input) > 1:
            pads = [int(v) for v in self._constant(node, 1).reshape(-1)]
            value = self._constant(node, 2, required=False) if len(node.input) > 2 else None
            if len(node.input) > 3 and node.input[3]:
                self._fail(node, "the axes input is not supported")
        else:
            pads, value = list(attrs.get("pads", ())), attrs.get("value")
        mode = attrs.get("mode", "constant")
        if len(pads) != 8 or pads[0] or pads[1] or pads[4] or pads[5] or min(pads) < 0:
            self._fail(node, f"pads {pads}: only non-negative padding of H and W is supported")
        if mode not in PAD_MODES:
            self._fail(node, f"mode {mode!r} is not one of {', '.join(PAD_MODES)}")
        op = PadOp((pads[2], pads[6], pads[3], pads[7]), PAD_MODES[mode],
                   0.0 if value is None else float(value))
        self._add(index, node, op, [self._source(node, node.input[0])])
