"""ONNX models: graphs built with onnx.helper, read into networks whose forward pass is
compared with a numpy reference of every node, their counts, and what is refused."""

import json
import sys
import warnings

import numpy as np
import pytest

from convcli.errors import ConvcliError, ParameterError
from convcli.net import forward, load_network
from naive import naive_conv2d

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

RNG = np.random.default_rng(7)
SHAPE = (3, 10, 11)


def tensor(name, array):
    return numpy_helper.from_array(np.asarray(array, np.float32), name)


def weights():
    return {
        "w1": RNG.normal(0, 0.5, (4, 3, 3, 2)), "b1": RNG.normal(0, 0.5, 4),
        "scale": RNG.uniform(0.5, 2, 4), "shift": RNG.normal(0, 1, 4),
        "mean": RNG.normal(0, 1, 4), "var": RNG.uniform(0.5, 2, 4),
        "w2": RNG.normal(0, 0.5, (4, 2, 3, 3)), "b2": RNG.normal(0, 0.5, 4),
        "w3": RNG.normal(0, 0.5, (4, 4, 1, 1)),
        "wg": RNG.normal(0, 0.5, (5, 8)), "cg": RNG.normal(0, 0.5, 5),
    }


def build_model(w, input_dims=(1, *SHAPE), extra_nodes=(), reshape=None):
    """conv (asymmetric pads, strides, dilations) → batchnorm → relu → maxpool (pads) →
    two branches: grouped conv (auto_pad SAME_UPPER, stride 2) and a 1×1/2 conv → add →
    concat → reflect pad → average pool without the pad → leaky relu → clip (0, 6) →
    global average pool → flatten (or a flattening reshape) → gemm."""
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 0, 2, 1], strides=[1, 2],
          dilations=[2, 1], kernel_shape=[3, 2]),
        n("BatchNormalization", ["c1", "scale", "shift", "mean", "var"], ["bn"], name="bn1",
          epsilon=1e-3),
        n("Relu", ["bn"], ["r"], name="relu1"),
        n("Dropout", ["r"], ["rd"], name="drop"),
        n("MaxPool", ["rd"], ["mp"], name="pool1", kernel_shape=[2, 2], strides=[1, 1],
          pads=[0, 1, 1, 0]),
        n("Conv", ["mp", "w2", "b2"], ["c2"], name="conv2", group=2, auto_pad="SAME_UPPER",
          strides=[2, 2]),
        n("Conv", ["mp", "w3"], ["c3"], name="conv3", strides=[2, 2]),
        n("Add", ["c2", "c3"], ["sum"], name="add"),
        n("Concat", ["sum", "c3"], ["cat"], name="cat", axis=1),
        n("Constant", [], ["pads"], name="pads_const",
          value=numpy_helper.from_array(np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64))),
        n("Pad", ["cat", "pads"], ["pad"], name="pad", mode="reflect"),
        n("AveragePool", ["pad"], ["avg"], name="avg", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("LeakyRelu", ["avg"], ["lr"], name="leaky", alpha=0.1),
        n("Clip", ["lr", "zero", "six"], ["clip"], name="relu6"),
        *extra_nodes,
        n("GlobalAveragePool", ["clip"], ["gap"], name="gap"),
        n("Reshape", ["gap", "shape"], ["flat"], name="reshape") if reshape is not None else
        n("Flatten", ["gap"], ["flat"], name="flatten"),
        n("Gemm", ["flat", "wg", "cg"], ["y"], name="fc", transB=1),
    ]
    initializers = [tensor(k, v) for k, v in w.items()] + [tensor("zero", 0), tensor("six", 6)]
    if reshape is not None:
        initializers.append(numpy_helper.from_array(np.array(reshape, np.int64), "shape"))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(input_dims))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def save(model, tmp_path, name="m.onnx"):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def pool(x, k, pads, reduce, fill):
    """A stride-1 pool of (N, C, H, W) x with (top, bottom, left, right) pads of `fill`."""
    t, b, l, r = pads
    padded = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=fill)
    windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
    return reduce(windows, axis=(-2, -1))


def reference(w, x):
    """Every node of `build_model` by its ONNX definition, in float64."""
    out = {}
    out["conv1"] = naive_conv2d(x, w["w1"], w["b1"], (1, 2), (1, 2, 0, 1), (2, 1))
    c = lambda v: v[None, :, None, None]                        # noqa: E731
    out["bn1"] = (out["conv1"] - c(w["mean"])) / np.sqrt(c(w["var"]) + 1e-3) * c(w["scale"]) \
        + c(w["shift"])
    out["relu1"] = np.maximum(out["bn1"], 0)
    out["pool1"] = pool(out["relu1"], 2, (0, 1, 1, 0), np.max, -np.inf)
    h, wd = out["pool1"].shape[2:]
    pads = []
    for size in (h, wd):                          # SAME_UPPER: ⌈size/2⌉ outputs, odd pad after
        total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
        pads.append((total // 2, total - total // 2))
    out["conv2"] = naive_conv2d(out["pool1"], w["w2"], w["b2"], (2, 2), (*pads[0], *pads[1]),
                                groups=2)
    out["conv3"] = naive_conv2d(out["pool1"], w["w3"], None, (2, 2))
    out["add"] = out["conv2"] + out["conv3"]
    out["cat"] = np.concatenate([out["add"], out["conv3"]], axis=1)
    out["pad"] = np.pad(out["cat"], ((0, 0), (0, 0), (1, 0), (0, 2)), mode="reflect")
    out["avg"] = pool(out["pad"], 3, (1, 1, 1, 1), np.nanmean, np.nan)   # count_include_pad 0
    out["leaky"] = np.where(out["avg"] > 0, out["avg"], 0.1 * out["avg"])
    out["relu6"] = np.clip(out["leaky"], 0, 6)
    out["gap"] = out["relu6"].mean(axis=(2, 3), keepdims=True)
    return out


def test_forward_matches_the_onnx_definition_of_every_node(tmp_path):
    w = weights()
    network = load_network(save(build_model(w), tmp_path))
    x = RNG.uniform(0, 1, SHAPE)
    expected = reference(w, x[None])
    maps = {row.node.name: out for row, out in forward(network, x.astype(np.float32))}
    assert list(maps) == list(expected)                  # Dropout passed, Constant read
    for name, value in expected.items():
        np.testing.assert_allclose(maps[name], value[0], rtol=1e-4, atol=1e-4, err_msg=name)


def test_counts_and_receptive_fields_of_an_onnx_model(run, tmp_path):
    w = weights()
    path = save(build_model(w), tmp_path)
    rows = {row.node.name: row for row in load_network(path).summary()}
    # conv1: H k 3 d 2 (span 5) s 1 pad 1 before; W k 2 s 2 no pad before
    assert [(f.size, f.stride, f.padding) for f in rows["conv1"].fields] == [(5, 1, 1), (2, 2, 0)]
    data = json.loads(run("stats", "--net", path, "--json").stdout)
    buffers = w["mean"].size + w["var"].size              # running statistics are not trained
    assert data["total_params"] == sum(v.size for v in w.values()) - buffers
    fc = data["layers"][-1]
    assert (fc["name"], fc["params"], fc["macs"]) == ("fc", 5 * 8 + 5, 5 * 8)
    conv1 = next(l for l in data["layers"] if l["name"] == "conv1")
    # H (10 + 1 + 2 − 5) + 1 = 9, W (11 + 0 + 1 − 2)/2 + 1 = 6; 3·3·2 weights per output
    assert conv1["macs"] == 4 * 9 * 6 * 3 * 3 * 2
    table = run("receptive-field", path)
    assert table.exit_code == 0 and " conv1 " in table.stdout and "total parameters" in table.stdout


def test_forward_command_runs_the_models_weights_on_an_image(run, samples, tmp_path):
    path = save(build_model(weights(), input_dims=(1, 3, "H", "W")), tmp_path)
    result = run("forward", samples / "astronaut.png", path, "-o", tmp_path / "maps",
                 "--rf-overlay", tmp_path / "rf.png", "--at", "3,4", "--layer", "conv2")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "maps").iterdir())) == 13
    fixed = save(build_model(weights()), tmp_path, "fixed.onnx")        # declared 10×11
    assert run("forward", samples / "astronaut.png", fixed, "-o", tmp_path / "f").exit_code == 0
    no_size = run("receptive-field", path)
    assert no_size.exit_code == 2 and "--input" in no_size.stderr
    sized = run("receptive-field", path, "--input", "3x32x32", "--json")
    assert json.loads(sized.stdout)["input_shape"] == [3, 32, 32]


def test_a_flattening_reshape_is_read_and_others_are_refused(tmp_path):
    w = weights()
    network = load_network(save(build_model(w, reshape=[1, -1]), tmp_path))
    assert network.summary()[-2].output_shape == (8,)
    with pytest.raises(ParameterError, match=r"node reshape \(Reshape\): shape \[1, 2, -1\]"):
        load_network(save(build_model(w, reshape=[1, 2, -1]), tmp_path, "r.onnx"))
    with pytest.raises(ParameterError, match="reshapes 8×1×1 to 9 values"):
        load_network(save(build_model(w, reshape=[1, 9]), tmp_path, "r9.onnx"))


def test_an_unknown_operator_is_one_line_naming_it_the_node_and_what_is_supported(run, tmp_path):
    lrn = helper.make_node("LRN", ["clip"], ["lrn"], name="norm7", size=3)
    model = build_model(weights(), extra_nodes=[lrn])
    path = save(model, tmp_path)
    result = run("receptive-field", path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "node norm7 (LRN): operator LRN is not supported; convcli reads Conv, MaxPool" \
        in result.stderr


def test_without_the_onnx_package_one_line_says_how_to_install_it(run, tmp_path, monkeypatch):
    path = save(build_model(weights()), tmp_path)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ConvcliError, match=r"pip install 'convcli\[onnx\]'"):
        load_network(path)
    result = run("stats", "--net", path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "convcli[onnx]" in result.stderr


def test_a_file_that_is_not_onnx_is_one_line(run, tmp_path):
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x08\x07not a model at all \xff\xff")
    result = run("receptive-field", path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "broken.onnx" in result.stderr


def test_a_torchvision_style_model_exported_by_torch(tmp_path):
    torch = pytest.importorskip("torch")
    nn = torch.nn
    block = nn.Sequential(nn.Conv2d(3, 8, 7, 2, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 8, 3, 1, 1, groups=4))
    model = nn.Sequential(block, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()
    x = torch.rand(1, 3, 32, 32)
    path = tmp_path / "t.onnx"
    import inspect
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():                   # the TorchScript exporter is deprecated
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), **legacy)
    network = load_network(path)
    rows = network.summary()
    # the exporter folds the batch norm into the conv before it: its 2·8 parameters become
    # that conv's 8 biases
    assert sum(row.params.total for row in rows) == sum(
        p.numel() for p in model.parameters()) - 2 * 8 + 8
    assert [row.output_shape for row in rows if row.node.kind == "conv"] == [(8, 16, 16), (8, 8, 8)]
    maps = list(forward(network, x[0].numpy()))
    with torch.no_grad():
        expected = block(x)[0].numpy()
    conv = [out for row, out in maps if row.node.kind == "conv"][-1]
    np.testing.assert_allclose(conv, expected, rtol=1e-4, atol=1e-4)
