"""Branching networks: the published receptive fields and parameter counts of ResNet-50
and MobileNet v1, unions and "not a grid" at merges, receptive fields measured by
perturbation through conv2d on random graphs with shortcuts and concatenations, the
operations' forward passes against numpy references, and bad graph files."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from convcli.errors import ParameterError
from convcli.net import forward, last_spatial, load_network, window_at

NETS = Path(__file__).resolve().parent.parent / "samples" / "nets"


def rows_of(path, input_shape=None):
    network = load_network(path, input_shape)
    return network, {row.node.name: row for row in network.summary()}


def field_of(row):
    return [(f.size, f.stride, f.padding) for f in row.fields]


def test_resnet50_v1_block4_matches_araujo_and_torchvision_parameters():
    network, rows = rows_of(NETS / "resnet50_v1.yaml")
    assert field_of(rows["block4"]) == [(483, 32, 239)] * 2          # Distill, TF-slim
    assert rows["block4"].output_shape == (2048, 7, 7)
    assert network.total_params() == 25_557_032                      # torchvision resnet50


def test_resnet50_as_torchvision_builds_it():
    network, rows = rows_of(NETS / "resnet50_torchvision.yaml")
    assert network.total_params() == 25_557_032
    # stride in a stage's first unit and pool1 padded by 1: conv1 r 7 S 2 P 3, pool1
    # r 11 S 4 P 5, layer1 +3·(8, 4), layer2 +(8, 4) then S 8 +3·(16, 8), layer3 +(16, 8)
    # then S 16 +5·(32, 16), layer4 +(32, 16) then S 32 +2·(64, 32)
    assert field_of(rows["block4"]) == [(427, 32, 213)] * 2
    assert round(sum(row.macs for row in network.summary()) / 1e9, 2) == 4.09   # torchinfo


def test_mobilenet_v1_matches_araujo_and_tf_slim():
    network, rows = rows_of(NETS / "mobilenet_v1.yaml")
    assert field_of(rows["Conv2d_13_pointwise"]) == [(315, 32, 126)] * 2
    # Keras' MobileNet (1000 classes) trains 4,231,976; TF-slim has 1001: + 1024 + 1
    assert network.total_params() == 4_231_976 + 1025
    assert round(sum(row.macs for row in network.summary()) / 1e6) == 569   # TF-slim's table
    assert rows["Conv2d_1_depthwise"].params.total == 32 * 9


def test_receptive_field_table_of_a_branching_network(run):
    result = run("receptive-field", NETS / "mobilenet_v1.yaml")
    assert result.exit_code == 0, result.output
    line = next(l for l in result.stdout.splitlines() if " Conv2d_13_pointwise " in l)
    assert line.split("│")[-4:-1] == [" 315 ", "  32 ", " 126 "]
    assert "total parameters: 4,233,001; mult-adds: 568,741,376" in result.stdout
    data = json.loads(run("receptive-field", NETS / "resnet50_v1.yaml", "--json").stdout)
    block4 = next(l for l in data["layers"] if l["name"] == "block4")
    assert (block4["rf"], block4["stride"], block4["padding"]) == (483, 32, 239)
    assert data["total_params"] == 25_557_032
    assert data["total_macs"] == sum(l["macs"] for l in data["layers"])


def write_net(tmp_path, layers, input_shape, name="g.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "g", "input": list(input_shape), "layers": layers}))
    return path


def test_merge_takes_the_union_of_windows_and_H_W_apart(tmp_path):
    path = write_net(tmp_path, [
        {"name": "a", "type": "conv", "out": 2, "k": [3, 1], "p": [2, 0, 0, 0]},
        {"name": "b", "type": "conv", "out": 2, "k": [3, 1], "p": [0, 2, 0, 0], "inputs": "input"},
        {"name": "sum", "type": "add", "inputs": ["a", "b"]},
        {"name": "c", "type": "conv", "out": 3, "k": 3, "s": 2, "p": 1},
        {"name": "both", "type": "concat", "inputs": ["c", "c"]},
    ], (1, 12, 12))
    _, rows = rows_of(path)
    # rows: a sees y − 2 … y, b sees y … y + 2: the union y − 2 … y + 2 is r 5, P 2
    assert field_of(rows["sum"]) == [(5, 1, 2), (1, 1, 0)]
    # c (k 3, s 2, p 1): rows r 5 + 2, S 2, P 2 + 1; cols r 3, S 2, P 1
    assert field_of(rows["c"]) == [(7, 2, 3), (3, 2, 1)]
    assert rows["both"].output_shape == (6, 6, 6) and field_of(rows["both"]) == field_of(rows["c"])


def test_paths_with_different_strides_are_not_a_grid_from_there_on(run, tmp_path):
    path = write_net(tmp_path, [
        {"name": "fine", "type": "conv", "out": 1, "k": 5},                      # 8 → 4, S 1
        {"name": "coarse", "type": "conv", "out": 1, "k": 2, "s": 2, "inputs": "input"},  # S 2
        {"name": "mix", "type": "add", "inputs": ["fine", "coarse"]},
        {"name": "after", "type": "conv", "out": 1, "k": 3, "p": 1},
        {"name": "pool", "type": "global_avgpool"},
    ], (1, 8, 8))
    network, rows = rows_of(path)
    assert [rows[n].grid for n in ("fine", "coarse", "mix", "after", "pool")] == [
        True, True, False, False, False]
    data = json.loads(run("receptive-field", path, "--json").stdout)
    mix = data["layers"][2]
    assert (mix["grid"], mix["rf"], mix["stride"], mix["padding"]) == (False, None, None, None)
    table = run("receptive-field", path).stdout
    assert sum("not a grid" in line for line in table.splitlines()) == 3
    # one pixel still has one window: coarse's 2×2 at (2, 2) and fine's 5×5 at (2, 2)
    result = run("receptive-field", path, "--at", "2,2", "--layer", "mix")
    assert "mix pixel (2, 2) sees input rows 2…6, columns 2…6" in result.stdout


def perturbed_window(network, y, x, position, rng):
    """The first and last input rows and columns whose change alters output pixel (y, x)
    of layer `position`, and the mask of those pixels: every pixel's perturbation runs
    through forward (conv2d, max_pool2d) as one batch."""
    c, h, w = network.input_shape
    base = rng.uniform(0, 1, (c, h, w)).astype(np.float32)
    batch = np.repeat(base[None], h * w + 1, axis=0)
    for index in range(h * w):
        batch[index + 1, :, index // w, index % w] += 50.0
    name = network.nodes[position].name
    out = next(maps for row, maps in forward(network, batch) if row.node.name == name)
    values = out[:, :, y, x]
    seen = (np.abs(values[1:] - values[0]) > 1e-3).any(axis=1).reshape(h, w)
    rows, cols = np.nonzero(seen)
    return (rows.min(), rows.max(), cols.min(), cols.max()), seen


def random_graph(rng, tmp_path, channels=2):
    """Blocks of two branches (convolutions of random windows, strides, dilations and
    paddings that agree in output size, or the block's input as an identity shortcut)
    merged by add or concat (then mixed back to `channels` by a 1×1 conv), sometimes
    followed by a pool; positive weights, so that no path cancels another."""
    layers, previous, count = [], "input", 0

    def conv(source, k, s, d, cin):
        nonlocal count
        count += 1
        name = f"conv{count}"
        span = d * (k - 1)
        before = int(rng.integers(0, span + 1))
        np.save(tmp_path / f"{name}.npy", rng.uniform(0.1, 1, (channels, cin, k, k)))
        layers.append({"name": name, "type": "conv", "out": channels, "k": k, "s": s, "d": d,
                       "p": [before, span - before, span - before, before],
                       "kernel": f"@{tmp_path / name}.npy", "inputs": source})
        return name

    for block in range(3):
        s = int(rng.integers(1, 3))
        branches = []
        for _ in range(2):
            if s == 1 and not branches and rng.random() < 0.4:
                branches.append(previous)                     # identity shortcut
            else:
                branches.append(conv(previous, int(rng.integers(1, 4)), s,
                                     int(rng.integers(1, 3)), channels))
        merge = "add" if rng.random() < 0.5 else "concat"
        layers.append({"name": f"merge{block}", "type": merge, "inputs": branches})
        previous = f"merge{block}"
        if merge == "concat":
            previous = conv(previous, 1, 1, 1, 2 * channels)
        if rng.random() < 0.4:
            kind = "maxpool" if rng.random() < 0.5 else "avgpool"
            layers.append({"name": f"pool{block}", "type": kind, "k": 2, "s": 1,
                           "p": [0, 1, 1, 0]})
            previous = f"pool{block}"
    return layers


@pytest.mark.parametrize("seed", range(6))
def test_measured_receptive_field_of_random_graphs_equals_the_computed_one(tmp_path, seed):
    rng = np.random.default_rng(seed)
    path = write_net(tmp_path, random_graph(rng, tmp_path), (2, 17, 15))
    network = load_network(path)
    rows = network.summary()
    position = last_spatial(rows)
    _, ho, wo = rows[position].output_shape
    y, x = int(rng.integers(0, ho)), int(rng.integers(0, wo))
    assert perturbed_window(network, y, x, position, rng)[0] == window_at(rows, position, y, x)
    merges = [row for row in rows if row.node.kind in ("add", "concat")]
    assert len(merges) == 3 and all(row.grid for row in rows)


def reference_run(x, kind, **settings):
    """numpy references of the parameter-free operations."""
    from naive import NUMPY_PAD
    if kind == "pad":
        t, b, l, r = settings["p"]
        mode = NUMPY_PAD[settings["pad_mode"]]
        extra = {"constant_values": settings.get("value", 0.0)} if mode == "constant" else {}
        return np.pad(x, ((0, 0), (t, b), (l, r)), mode=mode, **extra)
    if kind == "global_avgpool":
        return x.mean(axis=(1, 2), keepdims=True)
    if kind == "avgpool":                           # k 3, s 2, p 1, as ONNX: without the pad
        padded = np.pad(x, ((0, 0), (1, 1), (1, 1)), constant_values=np.nan)
        windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))[:, ::2, ::2]
        return np.nanmean(windows, axis=(-2, -1)) if not settings["count_include_pad"] else \
            np.nan_to_num(windows).sum(axis=(-2, -1)) / 9
    functions = {"relu6": lambda v: np.minimum(np.maximum(v, 0), 6),
                 "leaky_relu": lambda v: np.where(v > 0, v, settings["alpha"] * v),
                 "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
                 "elu": lambda v: np.where(v > 0, v, settings.get("alpha", 1.0) * (np.exp(v) - 1)),
                 "hard_swish": lambda v: v * np.minimum(np.maximum(v + 3, 0), 6) / 6,
                 "softplus": lambda v: np.log1p(np.exp(v)),
                 "clip": lambda v: np.minimum(np.maximum(v, settings["min"]), settings["max"])}
    return functions[kind](x)


@pytest.mark.parametrize("entry", [
    {"type": "pad", "p": [1, 2, 0, 3], "pad_mode": "reflect"},
    {"type": "pad", "p": [2, 0, 1, 1], "pad_mode": "zeros", "value": -1.5},
    {"type": "pad", "p": [1, 1, 2, 2], "pad_mode": "replicate"},
    {"type": "global_avgpool"},
    {"type": "avgpool", "k": 3, "s": 2, "p": 1, "count_include_pad": False},
    {"type": "avgpool", "k": 3, "s": 2, "p": 1, "count_include_pad": True},
    {"type": "relu6"}, {"type": "leaky_relu", "alpha": 0.2}, {"type": "sigmoid"},
    {"type": "tanh"}, {"type": "elu"}, {"type": "hard_swish"}, {"type": "softplus"},
    {"type": "clip", "min": -1, "max": 2},
])
def test_operations_forward_match_numpy(tmp_path, entry):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 4, (2, 7, 9)).astype(np.float32)
    network = load_network(write_net(tmp_path, [{"name": "op", **entry}], x.shape))
    (_, out), = list(forward(network, x))
    settings = {k: v for k, v in entry.items() if k != "type"}
    np.testing.assert_allclose(out, reference_run(x.astype(np.float64), entry["type"], **settings),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layers, words", [
    ([{"name": "a", "type": "conv", "out": 2, "k": 3},
      {"name": "block3_add", "type": "add", "inputs": ["input", "a"]}],
     "layer block3_add: inputs 1×8×8 and 2×6×6 differ"),
    ([{"name": "a", "type": "conv", "out": 2, "k": 3},
      {"name": "cat", "type": "concat", "inputs": ["input", "a"]}],
     "layer cat: inputs 1×8×8 and 2×6×6 differ in H×W"),
    ([{"name": "a", "type": "relu", "inputs": ["b"]}, {"name": "b", "type": "relu"}],
     "layer a: inputs: 'b' is not an earlier layer"),
    ([{"name": "a", "type": "add", "inputs": ["input"]}], "layer a: inputs: expected two or more"),
    ([{"name": "a", "type": "relu", "inputs": ["input", "input"]}], "layer a: inputs: expected one"),
    ([{"name": "a", "type": "relu", "inputs": 3}], "layer a: inputs: expected a layer name"),
    ([{"name": "input", "type": "relu"}], "layer name input used twice"),
    ([{"name": "a", "type": "pad", "p": "same"}], "layer a: p: expected a whole number"),
    ([{"name": "a", "type": "leaky_relu", "alpha": "x"}], "layer a: alpha: expected a number"),
    ([{"name": "a", "type": "relu", "alpha": 1}], "layer a: unknown field(s) alpha"),
    ([{"name": "g", "type": "global_avgpool"}, {"name": "f", "type": "flatten"},
      {"name": "c", "type": "conv", "out": 1, "k": 1}], "layer c: needs a C×H×W input"),
])
def test_bad_graph_files_name_the_layer_field_and_reason(run, tmp_path, layers, words):
    path = write_net(tmp_path, layers, (1, 8, 8))
    with pytest.raises(ParameterError) as caught:
        load_network(path)
    assert words in str(caught.value)
    result = run("receptive-field", path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and words in result.stderr


def test_forward_on_a_graph_keeps_only_what_later_layers_read(run, samples, tmp_path):
    path = write_net(tmp_path, [
        {"name": "stem", "type": "conv", "out": 2, "k": 3, "p": 1, "seed": 1},
        {"name": "left", "type": "conv", "out": 2, "k": 3, "p": 1, "seed": 2},
        {"name": "right", "type": "maxpool", "k": 3, "s": 1, "p": 1, "inputs": "stem"},
        {"name": "sum", "type": "add", "inputs": ["left", "right", "stem"]},
        {"name": "pool", "type": "global_avgpool"},
    ], (1, 64, 64))
    from convcli import conv2d
    from convcli.conv import max_pool2d
    network = load_network(path)
    image = np.random.default_rng(0).uniform(0, 255, (1, 40, 30)).astype(np.float32)
    maps = {row.node.name: out for row, out in forward(network, image)}
    weights = {n.name: n.weights((2 if n.name == "left" else 1, 40, 30)) for n in network.nodes[:2]}
    stem = conv2d(image, weights["stem"]["weight"], weights["stem"]["bias"], padding=1)
    left = conv2d(stem, weights["left"]["weight"], weights["left"]["bias"], padding=1)
    expected = left + max_pool2d(stem, 3, 1, 1) + stem
    np.testing.assert_allclose(maps["sum"], expected, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(maps["pool"][:, 0, 0], expected.mean(axis=(1, 2)), rtol=1e-4)
    result = run("forward", samples / "camera.png", path, "-o", tmp_path / "maps",
                 "--rf-overlay", tmp_path / "rf.png", "--at", "0,0")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "maps").iterdir())) == 5
    assert "pool pixel (0, 0) sees input rows 0…511, columns 0…511" in result.stdout


def test_stats_net_counts_every_layer_at_any_input(run):
    at_160 = json.loads(run("stats", "--net", NETS / "mobilenet_v1.yaml", "--input", "3x160x160",
                            "--json").stdout)
    assert at_160["input_shape"] == [3, 160, 160] and at_160["total_params"] == 4_233_001
    assert round(at_160["total_macs"] / 1e6) == 291          # TF-slim's table: 1.0, 160
    assert "rf" not in at_160["layers"][0] and at_160["layers"][0]["macs"] == 32 * 80 * 80 * 27
    table = run("stats", "--net", NETS / "resnet50_v1.yaml").stdout
    assert "total parameters: 25,557,032" in table and " block4 " in table
    both = run("stats", "--net", NETS / "vgg16.yaml", "-k", "box:3")
    assert both.exit_code == 2 and "drop -k" in both.stderr
    neither = run("stats", "--input", "3x8x8")
    assert neither.exit_code == 2 and "'-k'" in neither.stderr


def test_overlay_of_a_deep_graph_keeps_the_widest_window_at_each_stride():
    from convcli.net import MAX_WINDOWS, fields_at_depth, find_layer
    network = load_network(NETS / "resnet50_v1.yaml")
    rows = network.summary()
    position = find_layer(rows, "block4")
    drawn = fields_at_depth(rows, position, 3, 3)
    strides = [row.fields[0].stride for row, _ in drawn]
    sizes = [row.fields[0].size for row, _ in drawn]
    assert len(drawn) <= MAX_WINDOWS and drawn[-1][0].node.name == "block4"
    assert strides == [2, 4, 8, 16, 32] and sizes == sorted(sizes) and sizes[-1] == 483
    assert drawn[-1][1] == window_at(rows, position, 3, 3)
