"""Networks: published figures, shape arithmetic, receptive fields measured by
perturbation, the forward command, and bad network files."""

import json
from pathlib import Path

import numpy as np
import pytest

from convcli import conv2d
from convcli.errors import ParameterError
from convcli.net import fields_at_depth, last_spatial, load_network, window_at
from test_graphs import perturbed_window

NETS = Path(__file__).resolve().parent.parent / "samples" / "nets"


def summary_of(name):
    network = load_network(NETS / f"{name}.yaml")
    return network, {row.node.name: row for row in network.summary()}


def test_vgg16_matches_araujo_and_pytorch():
    network, rows = summary_of("vgg16")
    fields = rows["pool5"].fields
    assert all((f.size, f.stride, f.padding) == (212, 32, 90) for f in fields)
    assert rows["pool5"].output_shape == (512, 7, 7)
    assert network.total_params() == 138_357_544           # torchvision.models.vgg16
    assert rows["conv1_1"].params.total == 1_792 and rows["fc6"].params.total == 102_764_544


def test_alexnet_v2_matches_araujo():
    _, rows = summary_of("alexnet_v2")
    assert [(f.size, f.stride, f.padding) for f in rows["pool5"].fields] == [(195, 32, 64)] * 2


def test_torchvision_alexnet_parameters_and_field():
    network, rows = summary_of("alexnet")
    assert network.total_params() == 61_100_840            # torchvision.models.alexnet
    assert rows["pool5"].output_shape == (256, 6, 6)
    # r and S as published for AlexNet; torchvision pads conv1 by 2, so P is 64 + 2
    assert [(f.size, f.stride, f.padding) for f in rows["pool5"].fields] == [(195, 32, 66)] * 2


def write_net(tmp_path, layers, input_shape=(1, 20, 23), name="n.yaml"):
    import yaml
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"name": "test", "input": list(input_shape), "layers": layers}))
    return path


def test_hand_computed_stack_with_dilation_asymmetric_padding_and_rectangles(tmp_path):
    path = write_net(tmp_path, [
        {"type": "conv", "name": "a", "out": 4, "k": [3, 5], "s": [1, 2], "p": [1, 0, 2, 2]},
        {"type": "maxpool", "name": "b", "k": 2, "s": 2},
        {"type": "conv", "name": "c", "out": 6, "k": 3, "d": 2, "groups": 2, "bias": False},
        {"type": "batchnorm", "name": "bn"},
        {"type": "flatten", "name": "f"},
        {"type": "dense", "name": "d", "out": 5},
    ], input_shape=(2, 20, 23))
    rows = {r.node.name: r for r in load_network(path).summary()}
    # a: H (20+1+0-3)/1+1 = 19, W (23+2+2-5)/2+1 = 12; params 4·2·3·5 + 4
    assert rows["a"].output_shape == (4, 19, 12) and rows["a"].params.total == 124
    assert rows["b"].output_shape == (4, 9, 6)
    # c: span 5 → 5×2; params 6·(4/2)·9, no bias
    assert rows["c"].output_shape == (6, 5, 2) and rows["c"].params.total == 108
    assert rows["bn"].params.total == 12
    assert rows["d"].params.total == 60 * 5 + 5 and rows["d"].fields is None
    rf_h, rf_w = rows["c"].fields
    # H: a (k3,s1,p1) → r3 S1 P1; b (k2,s2) → r4 S2 P1; c (span 5) → r 4+4·2 = 12, P 1
    assert (rf_h.size, rf_h.stride, rf_h.padding) == (12, 2, 1)
    # W: a (k5,s2,p2) → r5 S2 P2; b → r 5+1·2 = 7, S4, P2; c → r 7+4·4 = 23, S4, P2
    assert (rf_w.size, rf_w.stride, rf_w.padding) == (23, 4, 2)


def test_json_gives_integers_when_axes_agree_else_pairs(run, tmp_path):
    path = write_net(tmp_path, [{"type": "conv", "name": "a", "out": 2, "k": 3, "p": 1},
                                {"type": "conv", "name": "b", "out": 2, "k": [3, 1], "s": [2, 1]}])
    result = run("receptive-field", path, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    a, b = data["layers"]
    assert (a["rf"], a["stride"], a["padding"]) == (3, 1, 1)
    assert (b["rf"], b["stride"], b["padding"]) == ([5, 3], [2, 1], 1)
    assert set(a) == {"name", "type", "inputs", "output_shape", "params", "macs", "rf",
                      "stride", "padding", "spatial", "grid"}
    assert data["total_params"] == (2 * 9 + 2) + (2 * 2 * 3 + 2)
    # a: 2 outputs × 20×23 pixels × 1·3·3 weights; b: 2 × 9×23 × 2·3·1
    assert (a["macs"], b["macs"]) == (2 * 20 * 23 * 9, 2 * 9 * 23 * 6)
    assert data["total_macs"] == a["macs"] + b["macs"] and b["inputs"] == ["a"]


def test_receptive_field_at_prints_the_clipped_window(run):
    result = run("receptive-field", NETS / "vgg16.yaml", "--at", "0,6", "--json")
    window = json.loads(result.stdout)["at"]
    assert window["layer"] == "pool5"
    assert window["rows"] == [0, 121] and window["cols"] == [192 - 90, 223]   # clipped
    text = run("receptive-field", NETS / "vgg16.yaml", "--at", "3,3", "--layer", "conv1_1").stdout
    assert "conv1_1 pixel (3, 3) sees input rows 2…4, columns 2…4" in text
    assert "138,357,544" in text


@pytest.mark.parametrize("layers, at", [
    ([{"type": "conv", "out": 2, "k": 3, "p": 1, "name": "a"},
      {"type": "maxpool", "k": 2, "name": "b"},
      {"type": "conv", "out": 2, "k": 3, "s": 2, "name": "c"}], (1, 1)),
    ([{"type": "conv", "out": 2, "k": [3, 5], "d": [2, 1], "p": [2, 0, 1, 3], "name": "a"},
      {"type": "avgpool", "k": 3, "s": [1, 2], "name": "b"},
      {"type": "relu", "name": "r"},
      {"type": "conv", "out": 1, "k": 2, "name": "c"}], (0, 2)),
    ([{"type": "conv", "out": 3, "k": 5, "s": 2, "p": 2, "name": "a"},
      {"type": "conv", "out": 2, "k": 3, "s": 2, "p": 1, "name": "b"}], (4, 0)),
])
def test_measured_receptive_field_equals_the_computed_one(tmp_path, layers, at):
    rng = np.random.default_rng(5)
    channels = 1
    for layer in layers:                              # positive weights: every path counts
        if layer["type"] == "conv":
            k = layer["k"] if isinstance(layer["k"], list) else [layer["k"]] * 2
            name = f"w_{layer['name']}.npy"
            np.save(tmp_path / name, rng.uniform(0.1, 1, (layer["out"], channels, *k)))
            layer["kernel"] = f"@{tmp_path / name}"
            channels = layer["out"]
    path = write_net(tmp_path, layers, input_shape=(1, 21, 19))
    network = load_network(path)
    rows = network.summary()
    computed = window_at(rows, last_spatial(rows), *at)
    (top, bottom, left, right), seen = perturbed_window(network, *at, last_spatial(rows), rng)
    assert (top, bottom, left, right) == computed
    assert seen[top:bottom + 1, left:right + 1].mean() > 0.3


def test_fields_at_depth_grow_and_nest(tmp_path):
    network = load_network(NETS / "alexnet_v2.yaml")
    rows = network.summary()
    windows = [w for _, w in fields_at_depth(rows, last_spatial(rows), 2, 3)]
    sizes = [(b - t + 1) * (r - l + 1) for t, b, l, r in windows]
    assert sizes == sorted(sizes)
    for (t1, b1, l1, r1), (t2, b2, l2, r2) in zip(windows, windows[1:]):
        assert t2 <= t1 and b1 <= b2 and l2 <= l1 and r1 <= r2


STACK = [
    {"type": "conv", "name": "edges", "out": 1, "kernel": "sobel_x", "bias": False, "p": 1},
    {"type": "relu", "name": "r1"},
    {"type": "maxpool", "name": "pool", "k": 2},
    {"type": "conv", "name": "mix", "out": 3, "k": 3, "s": 2, "init": "random", "seed": 3},
    {"type": "flatten", "name": "f"},
    {"type": "dense", "name": "fc", "out": 2},
]


def test_forward_writes_every_layers_maps_the_overlay_and_the_report(run, samples, tmp_path):
    path = write_net(tmp_path, STACK, input_shape=(1, 512, 512))
    out = tmp_path / "maps"
    result = run("forward", samples / "camera.png", path, "-o", f"{out}/",
                 "--rf-overlay", tmp_path / "rf.png", "--at", "10,20",
                 "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["01_edges.npy", "02_r1.npy", "03_pool.npy",
                                                     "04_mix.npy"]
    from convcli.images import read_image
    image = read_image(samples / "camera.png").color.transpose(2, 0, 1).astype(np.float32)
    sobel = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float32)[None, None]
    edges = conv2d(image, sobel, padding=1)[0]
    np.testing.assert_allclose(np.load(out / "01_edges.npy"), edges, rtol=1e-5, atol=1e-3)
    pooled = np.maximum(edges, 0).reshape(256, 2, 256, 2).max(axis=(1, 3))
    np.testing.assert_allclose(np.load(out / "03_pool.npy"), pooled, rtol=1e-5, atol=1e-3)
    assert np.load(out / "04_mix.npy").shape == (127, 127, 3)
    # edges r 3, S 1, P 1; pool r 4, S 2, P 1; mix r 4 + 2·2 = 8, S 4, P 1: 10·4 − 1 = 39
    assert "sees input rows 39…46, columns 79…86" in result.stdout
    assert read_image(tmp_path / "rf.png").shape[2] == 3
    report = json.loads((tmp_path / "r.json").read_text())
    assert [m["layer"] for m in report["maps"]] == ["edges", "r1", "pool", "mix"]
    assert report["maps"][3]["shape"] == [3, 127, 127]
    assert report["at"]["rows"] == [39, 46] and report["at"]["layer"] == "mix"
    assert report["maps"][0]["max"] == pytest.approx(float(edges.max()), rel=1e-5)


def test_forward_grid_writes_one_tiled_png_per_layer(run, samples, tmp_path):
    path = write_net(tmp_path, STACK, input_shape=(1, 512, 512))
    result = run("forward", samples / "camera.png", path, "-o", f"{tmp_path}/g/", "--grid")
    assert result.exit_code == 0, result.output
    from convcli.images import read_image
    mix = read_image(tmp_path / "g" / "04_mix.png").color[:, :, 0]
    # three 127×127 tiles on a 2×2 grid with 2-pixel borders, each stretched 0…255
    assert mix.shape == (2 * 129 + 2, 2 * 129 + 2)
    tile = mix[2:129, 2:129]
    assert tile.min() == 0 and tile.max() == 255


@pytest.mark.parametrize("extra, words", [
    (["--at", "200,20", "--rf-overlay", "rf.png"], "--at 200,20 is outside layer mix's 127×127"),
    (["--at", "1,2"], "--rf-overlay and --at go together"),
    (["--rf-overlay", "rf.npy", "--at", "1,2"], "--rf-overlay"),
    (["--at", "1,2", "--rf-overlay", "rf.png", "--layer", "nope"], "--layer 'nope' does not exist"),
    (["--at", "1,2", "--rf-overlay", "rf.png", "--layer", "fc"], "the layers are edges, r1, pool, mix"),
    (["--range", "abs"], "--range maps the tiles of --grid"),
    (["--gray", "--rgb"], "exclude each other"),
    (["--rgb"], "--rgb"),
])
def test_forward_checks_every_option_before_writing_anything(run, samples, tmp_path, extra, words):
    path = write_net(tmp_path, STACK, input_shape=(1, 512, 512))
    out = tmp_path / "maps"
    result = run("forward", samples / "camera.png", path, "-o", f"{out}/",
                 *[str(tmp_path / a) if a.startswith("rf.") else a for a in extra])
    assert result.exit_code == 2 and words in result.stderr and result.stderr.count("\n") == 1
    assert not out.exists() and not (tmp_path / "rf.png").exists()


def test_forward_needs_the_networks_channels(run, samples, tmp_path):
    path = write_net(tmp_path, STACK, input_shape=(1, 512, 512))
    wrong = run("forward", samples / "astronaut.png", path, "-o", f"{tmp_path}/w/")
    assert wrong.exit_code == 2 and "--gray" in wrong.stderr and not (tmp_path / "w").exists()
    gray = run("forward", samples / "astronaut.png", path, "-o", f"{tmp_path}/w/", "--gray")
    assert gray.exit_code == 0, gray.output


@pytest.mark.parametrize("flag", [["--net", "n.yaml"], ["--rf-overlay", "rf.png"], ["--at", "1,2"]])
def test_apply_points_network_options_to_forward(run, samples, tmp_path, flag):
    result = run("apply", samples / "camera.png", "-k", "box:3", "-o", tmp_path / "o.png", *flag)
    assert result.exit_code == 2 and "convcli forward IMAGE NET.yaml" in result.stderr
    assert result.stderr.count("\n") == 1 and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("body, words", [
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv2d, out: 4}\n", "layer 1: unknown type 'conv2d'"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, k: 3}\n", "layer 1 conv: out is required"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, k: 0}\n", "layer 1 conv: k"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, p: -1}\n", "layer 1 conv: p"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 4, stride: 2}\n", "unknown field(s) stride"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: maxpool}\n", "layer 1 maxpool: k (the window) is required"),
    ("name: x\ninput: [3, 8]\nlayers:\n  - {type: relu}\n", "input must be [C, H, W]"),
    ("name: x\ninput: [3, 8, 8]\nlayers: []\n", "layers must be a non-empty list"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: relu, name: a}\n  - {type: relu, name: a}\n", "used twice"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: flatten}\n  - {type: conv, out: 2}\n", "layer 2 conv: needs a C×H×W input"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 2, kernel: sobel_q}\n", "did you mean sobel"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 2, kernel: sobel_x, k: 5}\n", "does not match"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 2, groups: 2}\n", "groups=2 must divide"),
    ("name: x\ninput: [3, 8, 8]\nlayers: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ("name: x\ninput: [3, 8, 8]\nlayers:\n  - [conv]\n", "expected a mapping with a type"),
])
def test_bad_network_files(run, tmp_path, body, words):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(ParameterError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[").replace("]", r"\]")):
        load_network(path)
    result = run("receptive-field", path)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and str(path) in result.stderr


def test_shapes_that_stop_fitting_name_the_layer(run, tmp_path):
    layers = [{"type": "conv", "out": 4, "k": 3}] + [{"type": "maxpool", "k": 2}] * 6
    path = write_net(tmp_path, layers, input_shape=(1, 64, 64))
    with pytest.raises(ParameterError, match="layer 7 maxpool: input 1×1 is smaller than the 2×2 window"):
        load_network(path)
