"""Training, feature visualisation and attacks on small data: the model's backward pass
against finite differences, the loss falling on a fixed seed, and the commands."""

import numpy as np
import pytest

from convcli.model import Model, initial_weights, load_weights
from convcli.net import load_network
from convcli.train import TrainOptions, load_dataset, train

NET = """name: tiny
input: [1, 12, 12]
layers:
  - {name: conv1, type: conv, out: 4, k: 3, p: 1, pad_mode: reflect}
  - {name: relu1, type: relu}
  - {name: pool1, type: maxpool, k: 2}
  - {name: conv2, type: conv, out: 4, k: 3, s: 2, groups: 2}
  - {name: pool2, type: avgpool, k: 2, s: 1, p: 1}
  - {name: flatten, type: flatten}
  - {name: fc, type: dense, out: 2}
  - {name: softmax, type: softmax}
"""


@pytest.fixture
def tiny(tmp_path):
    """A tiny network and a data set it can learn: bright left halves against right."""
    net = tmp_path / "tiny.yaml"
    net.write_text(NET)
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 96)
    images = rng.uniform(0, 0.3, (96, 1, 12, 12))
    for image, label in zip(images, labels):
        image[0, :, :6] += 0.6 * (label == 0)
        image[0, :, 6:] += 0.6 * (label == 1)
    data = tmp_path / "data.npz"
    np.savez(data, images=np.rint(images * 255).astype(np.uint8), labels=labels,
             classes=np.array(["left", "right"]))
    return net, data


def test_model_gradients_match_finite_differences(tiny):
    network = load_network(tiny[0])
    model = Model(network, initial_weights(network, 3), algo="direct")
    model.weights.arrays = {k: v.astype(np.float64) for k, v in model.weights.arrays.items()}
    rng = np.random.default_rng(1)
    images, labels = rng.uniform(0, 1, (3, 1, 12, 12)), np.array([0, 1, 1])

    def loss():
        from convcli.grad import softmax_cross_entropy

        logits, _ = model.forward(images.astype(np.float64))
        return softmax_cross_entropy(logits.astype(np.float64), labels)[0]

    logits, tape = model.forward(images)
    from convcli.grad import softmax_cross_entropy

    _, g = softmax_cross_entropy(logits, labels)
    grads, _ = model.backward(tape, g)
    for name, array in model.weights.arrays.items():
        for index in map(tuple, rng.integers(0, array.shape, (3, array.ndim))):
            saved = array[index]
            array[index] = saved + 1e-3
            up = loss()
            array[index] = saved - 1e-3
            down = loss()
            array[index] = saved
            assert grads[name][index] == pytest.approx((up - down) / 2e-3, rel=2e-2, abs=2e-4), name


@pytest.mark.parametrize("band_values", [None, 64])
def test_training_layout_gives_the_generic_gradients(tiny, monkeypatch, band_values):
    """Training's gemm path (channel-major, patches reused, ReLU fused into max pooling's
    backward pass; or, when a batch's patches take several bands, batch-major) gives the
    gradients of the layer-by-layer path, for the whole net and for a stop inside it."""
    from convcli import conv
    from convcli.grad import softmax_cross_entropy

    if band_values:
        monkeypatch.setattr(conv, "GEMM_BAND_VALUES", band_values)
    network = load_network(tiny[0])
    weights = initial_weights(network, 3)
    fast, slow = Model(network, weights, algo="gemm"), Model(network, weights, algo="direct")
    rng = np.random.default_rng(2)
    images, labels = rng.uniform(0, 1, (5, 1, 12, 12)), np.array([0, 1, 1, 0, 1])
    assert fast.channel_major(images.shape, len(fast.rows) - 2) == (band_values is None)
    for stop in (None, fast.position("conv2")):
        results = []
        for model in (fast, slow):
            out, tape = model.forward(images, stop=stop)
            g = softmax_cross_entropy(out, labels)[1] if stop is None else out
            results.append((out, *model.backward(tape, g, input_grad=True)))
        (out_a, grads_a, gx_a), (out_b, grads_b, gx_b) = results
        np.testing.assert_allclose(out_a, out_b, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(gx_a, gx_b, rtol=1e-4, atol=1e-6)
        assert grads_a.keys() == grads_b.keys()
        for name in grads_a:
            np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6)


def test_loss_falls_and_training_is_deterministic(tiny):
    network, data = load_network(tiny[0]), load_dataset(tiny[1])
    options = TrainOptions(epochs=3, lr=0.01, batch=16, seed=4)
    runs = [list(train(Model(network, initial_weights(network, 4)), data, options))
            for _ in range(2)]
    first = runs[0]
    assert first[-1].loss < first[0].loss
    assert first[-1].val_accuracy >= 0.7
    for a, b in zip(first[-1].weights.arrays.values(), runs[1][-1].weights.arrays.values()):
        np.testing.assert_array_equal(a, b)


def test_sgd_with_momentum_also_lowers_the_loss(tiny):
    network, data = load_network(tiny[0]), load_dataset(tiny[1])
    epochs = list(train(Model(network, initial_weights(network, 0)), data,
                        TrainOptions(epochs=3, lr=0.05, batch=16, optimizer="sgd")))
    assert epochs[-1].loss < epochs[0].loss


def test_train_command_writes_weights_with_provenance(run, tiny, tmp_path):
    net, data = tiny
    out = tmp_path / "w.npz"
    result = run("train", data, "--net", net, "-o", out, "--epochs", "2", "--lr", "0.01",
                 "--plot", tmp_path / "loss.png")
    assert result.exit_code == 0, result.output
    assert "epoch 2/2" in result.stdout and "val accuracy" in result.stdout
    weights = load_weights(out, load_network(net))
    assert weights.provenance["epochs_completed"] == 2
    assert weights.provenance["classes"] == ["left", "right"]
    assert len(weights.provenance["data_sha256"]) == 64
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_ctrl_c_saves_the_last_completed_epoch(run, tiny, tmp_path, monkeypatch):
    import convcli.train as training

    real = training.Model.loss_and_gradients
    calls = {"n": 0}

    def interrupting(self, images, labels):
        calls["n"] += 1
        if calls["n"] > 5:             # the tiny set has 6 batches per epoch at --batch 16
            raise KeyboardInterrupt
        return real(self, images, labels)

    monkeypatch.setattr(training.Model, "loss_and_gradients", interrupting)
    net, data = tiny
    out = tmp_path / "w.npz"
    result = run("train", data, "--net", net, "-o", out, "--epochs", "5", "--batch", "16",
                 "--val", "0.5")
    assert result.exit_code == 130
    assert "Interrupted: saved epoch 1 of 5" in result.stderr
    assert load_weights(out, load_network(net)).provenance["interrupted"] is True


def test_train_refuses_data_that_does_not_fit_the_network(run, tiny, tmp_path):
    net, _ = tiny
    data = tmp_path / "wrong.npz"
    np.savez(data, images=np.zeros((4, 1, 8, 8), np.uint8), labels=np.zeros(4, np.int64))
    result = run("train", data, "--net", net, "-o", tmp_path / "w.npz")
    assert result.exit_code == 2
    assert "8×8" in result.stderr and "12×12" in result.stderr
    assert not (tmp_path / "w.npz").exists()


def test_train_refuses_a_file_without_labels(run, tiny, tmp_path):
    data = tmp_path / "bad.npz"
    np.savez(data, images=np.zeros((4, 1, 12, 12), np.uint8))
    result = run("train", data, "--net", tiny[0], "-o", tmp_path / "w.npz")
    assert result.exit_code == 2 and "'labels'" in result.stderr


def test_weights_of_another_network_are_refused(run, tiny, tmp_path):
    net, data = tiny
    out = tmp_path / "w.npz"
    run("train", data, "--net", net, "-o", out, "--epochs", "1")
    other = tmp_path / "other.yaml"
    other.write_text(NET.replace("out: 4, k: 3, p: 1", "out: 6, k: 3, p: 1"))
    result = run("receptive-field", other, "--weights", out)
    assert result.exit_code == 2 and "conv1.weight" in result.stderr


def test_visualize_raises_the_channel_activation(tiny, tmp_path, run):
    net, data = tiny
    weights = tmp_path / "w.npz"
    run("train", data, "--net", net, "-o", weights, "--epochs", "1")
    result = run("visualize", net, "--weights", weights, "--layer", "conv1", "--channel", "2",
                 "--steps", "30", "-o", tmp_path / "fv.png")
    assert result.exit_code == 0, result.output
    before, after = (float(v) for v in result.stdout.split("mean activation ")[1]
                     .split("\n")[0].split(" → "))
    assert after > before
    assert (tmp_path / "fv.png").exists()
    bad = run("visualize", net, "--weights", weights, "--layer", "conv1", "--channel", "9",
              "-o", tmp_path / "x.png")
    assert bad.exit_code == 2 and "channels 0…3" in bad.stderr


def test_attack_keeps_within_eps_and_lowers_the_true_class(tiny, tmp_path):
    from convcli.attack import attack

    network, data = load_network(tiny[0]), load_dataset(tiny[1])
    model = Model(network, initial_weights(network, 0))
    for _ in train(model, data, TrainOptions(epochs=2, lr=0.01, batch=16)):
        pass
    image = data.images[0]
    result = attack(model, image, 0.05, steps=5)
    label = int(result.before.argmax())
    assert np.abs(result.change).max() <= 0.05 + 1 / 255
    assert result.after[label] < result.before[label]
    towards = attack(model, image, 0.05, target=1 - label, steps=5)
    assert towards.after[1 - label] > towards.before[1 - label]


def test_attack_command_reports_and_writes_both_pictures(tiny, tmp_path, run):
    from PIL import Image

    net, data = tiny
    weights = tmp_path / "w.npz"
    run("train", data, "--net", net, "-o", weights, "--epochs", "1")
    with np.load(data) as arrays:
        Image.fromarray(arrays["images"][0, 0]).save(tmp_path / "in.png")
    result = run("attack", net, tmp_path / "in.png", "--weights", weights, "--eps", "0.03",
                 "-o", tmp_path / "adv.png")
    assert result.exit_code == 0, result.output
    assert "L∞" in result.stdout and "0 left" in result.stdout
    adv = np.asarray(Image.open(tmp_path / "adv.png"), np.int32)
    original = np.asarray(Image.open(tmp_path / "in.png"), np.int32)
    assert np.abs(adv - original).max() <= round(0.03 * 255) + 1
    assert (tmp_path / "adv_change.png").exists()


def test_trained_conv_layer_is_a_kernel_bank(tiny, tmp_path):
    from convcli.kernels import resolve_kernel

    net, data = tiny
    network = load_network(net)
    weights = initial_weights(network, 0)
    weights.save(tmp_path / "w.npz")
    kernel = resolve_kernel(f"@{tmp_path / 'w.npz'}:conv1")
    np.testing.assert_array_equal(kernel.weights, weights.arrays["conv1.weight"][:, 0])
    with pytest.raises(ValueError, match="conv1, conv2"):
        resolve_kernel(f"@{tmp_path / 'w.npz'}:fc")


def test_forward_with_weights_runs_the_trained_conv_layers(tiny, tmp_path, run):
    from PIL import Image

    from convcli import conv2d

    net, data = tiny
    network = load_network(net)
    weights = initial_weights(network, 5)
    weights.save(tmp_path / "w.npz")
    pixels = np.random.default_rng(0).integers(0, 256, (12, 12)).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.png")
    result = run("forward", tmp_path / "in.png", net, "--weights", tmp_path / "w.npz",
                 "-o", tmp_path / "maps")
    assert result.exit_code == 0, result.output
    conv1 = np.load(next((tmp_path / "maps").glob("*conv1.npy")))
    weight, bias = weights.layer("conv1")
    expected = conv2d((pixels / 255.0)[None].astype(np.float32), weight, bias, padding=1,
                      pad_mode="reflect")
    np.testing.assert_allclose(conv1.transpose(2, 0, 1), expected[:, :, :], rtol=1e-5, atol=1e-5)


def test_the_catalogue_ships_the_trained_conv1_bank_matching_the_shipped_weights():
    from pathlib import Path

    from convcli.kernels import Catalogue

    kernel = Catalogue.load(use_env=False).get("cnn_conv1")
    root = Path(__file__).resolve().parents[1]
    network = load_network(root / "samples/nets/shapes_cnn.yaml")
    weights = load_weights(root / "samples/nets/shapes_cnn.npz", network)
    np.testing.assert_allclose(kernel.weights, weights.arrays["conv1.weight"][:, 0], atol=5e-5)
    assert kernel.learned["recipe"] == "samples/nets/recipe.py"
    assert kernel.learned["val_accuracy"] == weights.provenance["val_accuracy"] > 0.9


def test_network_recipe_check_tells_drift_by_rounding_from_a_different_training():
    """recipe.py --check: within 1e-3 is the same; beyond, every array still pointing the
    same way (cosine ≥ 0.99) at the same validation accuracy is rounding drift; else not."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "samples" / "nets" / "recipe.py"
    spec = importlib.util.spec_from_file_location("nets_recipe", path)
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)

    def weights(array, accuracy=0.988):
        return {"w": np.asarray(array, np.float32),
                "provenance": np.array(json.dumps({"val_accuracy": accuracy}))}

    shipped = weights([0.5, -0.2, 0.3, 0.1])
    assert recipe.same_training(weights([0.5004, -0.2, 0.3, 0.1]), shipped)
    assert recipe.same_training(weights([0.52, -0.21, 0.3, 0.11]), shipped)
    assert not recipe.same_training(weights([0.52, -0.21, 0.3, 0.11], 0.95), shipped)
    assert not recipe.same_training(weights([0.1, 0.4, -0.3, 0.1]), shipped)


def test_training_step_matches_pytorch_autograd_where_installed():
    """One batch through samples/nets/shapes_cnn.yaml on the training path: loss and every
    parameter gradient as PyTorch's autograd computes them."""
    torch = pytest.importorskip("torch")
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    network = load_network(root / "samples" / "nets" / "shapes_cnn.yaml")
    model = Model(network, initial_weights(network, 5))
    rng = np.random.default_rng(6)
    images = rng.uniform(0, 1, (32, 1, 28, 28)).astype(np.float32)
    labels = rng.integers(0, 6, 32)
    loss, grads, _ = model.loss_and_gradients(images, labels)
    layers = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 6))
    named = {"conv1": layers[0], "conv2": layers[3], "fc": layers[7]}
    with torch.no_grad():
        for name, layer in named.items():
            layer.weight.copy_(torch.tensor(model.weights.arrays[f"{name}.weight"]))
            layer.bias.copy_(torch.tensor(model.weights.arrays[f"{name}.bias"]))
    expected = torch.nn.functional.cross_entropy(layers(torch.tensor(images)),
                                                 torch.tensor(labels))
    expected.backward()
    assert loss == pytest.approx(float(expected), rel=1e-5)
    for name, layer in named.items():
        for part in ("weight", "bias"):
            np.testing.assert_allclose(grads[f"{name}.{part}"],
                                       getattr(layer, part).grad.numpy(), rtol=1e-3, atol=1e-5)


def test_training_refuses_average_pooling_that_leaves_padding_out(run, tiny, tmp_path):
    """count_include_pad: false divides by a window's pixels inside the image; training's
    backward pass counts the padding (PyTorch's default), so it says so instead."""
    net = tmp_path / "uncounted.yaml"
    net.write_text(NET.replace("{name: pool2, type: avgpool, k: 2, s: 1, p: 1}",
                               "{name: pool2, type: avgpool, k: 2, s: 1, p: 1, "
                               "count_include_pad: false}"))
    with pytest.raises(ValueError, match="count_include_pad"):
        Model(load_network(net), initial_weights(load_network(net), 0))
    result = run("train", str(tiny[1]), "--net", str(net), "-o", str(tmp_path / "w.npz"),
                 "--epochs", "1")
    assert result.exit_code == 2 and "layer" in result.stderr and "count_include_pad" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w.npz").exists()


def _random_chain(rng) -> str:
    """A random trainable chain: convs of every option, ReLUs, pools, a dense head."""
    layers, channels, size = [], int(rng.integers(1, 4)), int(rng.integers(10, 17))
    first = channels
    for index in range(int(rng.integers(1, 3))):
        groups = int(rng.choice([g for g in (1, 2) if channels % g == 0]))
        out = groups * int(rng.integers(1, 4))
        k, s, d = int(rng.integers(1, 4)), int(rng.integers(1, 3)), int(rng.integers(1, 3))
        p = int(rng.integers(0, k))
        mode = str(rng.choice(["zeros", "reflect", "replicate", "circular", "symmetric"]))
        if mode == "reflect":
            p = min(p, 1)
        layers.append(f"  - {{name: conv{index}, type: conv, out: {out}, k: {k}, s: {s}, "
                      f"p: {p}, d: {d}, groups: {groups}, pad_mode: {mode}}}")
        channels = out
        if rng.random() < 0.7:
            layers.append(f"  - {{name: relu{index}, type: relu}}")
        if rng.random() < 0.6:
            kind = "maxpool" if rng.random() < 0.7 else "avgpool"
            layers.append(f"  - {{name: pool{index}, type: {kind}, k: 2}}")
    layers += ["  - {name: flatten, type: flatten}", "  - {name: fc, type: dense, out: 3}",
               "  - {name: softmax, type: softmax}"]
    return f"name: chain\ninput: [{first}, {size}, {size}]\nlayers:\n" + "\n".join(layers)


@pytest.mark.parametrize("seed", range(25))
def test_training_path_matches_the_layer_by_layer_path_on_random_networks(seed, tmp_path):
    """Random chains and batch sizes: the training path (channel-major gemm, fused ReLU and
    pooling) gives the layer-by-layer path's loss and gradients, and its input gradient."""
    from convcli.errors import ParameterError
    from convcli.grad import softmax_cross_entropy

    rng = np.random.default_rng(seed)
    path = tmp_path / "chain.yaml"
    for _ in range(10):             # draw again where a chain shrinks the image away
        path.write_text(_random_chain(rng))
        try:
            network = load_network(path)
            break
        except ParameterError:
            continue
    weights = initial_weights(network, seed)
    shape = (int(rng.integers(1, 7)), *network.summary()[0].input_shapes[0])
    images, labels = rng.uniform(0, 1, shape), rng.integers(0, 3, shape[0])
    results = []
    for algo in ("gemm", "direct"):
        model = Model(network, weights, algo=algo)
        logits, tape = model.forward(images)
        loss, g = softmax_cross_entropy(logits, labels)
        results.append((loss, *model.backward(tape, g, input_grad=True)))
    (loss_a, grads_a, gx_a), (loss_b, grads_b, gx_b) = results
    assert loss_a == pytest.approx(loss_b, rel=1e-5)
    np.testing.assert_allclose(gx_a, gx_b, rtol=1e-3, atol=1e-6)
    for name in grads_b:
        np.testing.assert_allclose(grads_a[name], grads_b[name], rtol=1e-3, atol=1e-6,
                                   err_msg=name)


def test_layers_without_bias_keep_zero_biases(tiny, tmp_path):
    """bias: false, as PyTorch's bias=False: no bias gradient, so the zeros stay zeros."""
    net = tmp_path / "nobias.yaml"
    net.write_text(NET.replace("p: 1, pad_mode: reflect}", "p: 1, pad_mode: reflect, bias: false}")
                   .replace("{name: fc, type: dense, out: 2}",
                            "{name: fc, type: dense, out: 2, bias: false}"))
    network = load_network(net)
    model = Model(network, initial_weights(network, 0))
    epochs = list(train(model, load_dataset(tiny[1]), TrainOptions(epochs=2, lr=0.01, batch=16)))
    arrays = epochs[-1].weights.arrays
    assert not arrays["conv1.bias"].any() and not arrays["fc.bias"].any()
    assert np.abs(arrays["conv2.bias"]).max() > 0          # conv2 keeps its bias
    assert epochs[-1].loss < epochs[0].loss


@pytest.mark.parametrize("layers, says", [
    ("  - {name: conv1, type: conv, out: 2, k: 12}\n  - {name: softmax, type: softmax}",
     "needs a flatten before dense and softmax layers (its input is 2×1×1)"),
    ("  - {name: conv1, type: conv, out: 2, k: 3}\n  - {name: fc, type: dense, out: 2}\n"
     "  - {name: softmax, type: softmax}", "needs a flatten before dense"),
    ("  - {name: pool, type: maxpool, k: 2, p: 2}\n  - {name: flatten, type: flatten}\n"
     "  - {name: fc, type: dense, out: 2}\n  - {name: softmax, type: softmax}",
     "padding 2 must be at most half the 2×2 window"),
])
def test_train_refuses_networks_it_cannot_train(run, tiny, tmp_path, layers, says):
    net = tmp_path / "net.yaml"
    net.write_text(f"name: net\ninput: [1, 12, 12]\nlayers:\n{layers}\n")
    result = run("train", tiny[1], "--net", net, "-o", tmp_path / "w.npz", "--epochs", "1")
    assert result.exit_code == 2 and says in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "w.npz").exists()


def test_max_pooling_refuses_padding_over_half_the_window():
    from convcli import max_pool2d

    with pytest.raises(ValueError, match="padding 2 must be at most half the 2×2 window"):
        max_pool2d(np.ones((1, 4, 4)), 2, padding=2)
    assert max_pool2d(np.ones((1, 4, 4)), 2, padding=1).shape == (1, 3, 3)


def test_diverging_training_stops_and_writes_nothing(run, tiny, tmp_path):
    out = tmp_path / "w.npz"
    result = run("train", tiny[1], "--net", tiny[0], "-o", out, "--epochs", "2",
                 "--lr", "1e30")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: training diverged in epoch 1, batch 2: the loss is nan; nothing written "
        "(try a smaller --lr 1e+30)"]
    assert not out.exists()
    assert run("train", tiny[1], "--net", tiny[0], "-o", out, "--lr", "inf").exit_code == 2


@pytest.mark.parametrize("command", ["train", "visualize"])
def test_negative_seeds_are_usage_errors(run, tiny, tmp_path, command):
    from convcli.model import initial_weights as start

    weights = tmp_path / "w.npz"
    start(load_network(tiny[0]), 0).save(weights)
    args = (["train", tiny[1], "--net", tiny[0], "-o", tmp_path / "out.npz"]
            if command == "train" else
            ["visualize", tiny[0], "--weights", weights, "--layer", "conv1", "-o",
             tmp_path / "fv.png"])
    result = run(*args, "--seed", "-1")
    assert result.exit_code == 2 and "'--seed': -1 is not in the range x>=0" in result.stderr


def test_sixteen_bit_images_are_scaled_and_odd_data_is_refused_or_flagged(tiny, tmp_path):
    with np.load(tiny[1]) as archive:
        images, labels = archive["images"], archive["labels"]
    wide = tmp_path / "u16.npz"
    np.savez(wide, images=images.astype(np.uint16) * 257, labels=labels)
    np.testing.assert_allclose(load_dataset(wide).images, load_dataset(tiny[1]).images,
                               atol=1e-7)
    for name, arrays, says in [
            ("i32.npz", dict(images=images.astype(np.int32), labels=labels), "uint8, uint16"),
            ("u32.npz", dict(images=images.astype(np.uint32), labels=labels), "got uint32"),
            ("names.npz", dict(images=images, labels=labels,
                               classes=np.array([["a", "b"], ["c", "d"]])), "list of names")]:
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(ValueError, match=says):
            load_dataset(tmp_path / name)
    np.savez(tmp_path / "f.npz", images=images.astype(np.float32), labels=labels)
    with pytest.warns(RuntimeWarning, match=r"range over 0 … \d+; training expects 0 … 1"):
        load_dataset(tmp_path / "f.npz")


def test_a_plot_that_is_not_png_is_refused_before_training(run, tiny, tmp_path):
    result = run("train", tiny[1], "--net", tiny[0], "-o", tmp_path / "w.npz",
                 "--plot", tmp_path / "loss.xyz")
    assert result.exit_code == 2 and "the loss plot is a PNG" in result.stderr
    assert result.stdout == "" and not (tmp_path / "w.npz").exists()


def test_attack_target_is_a_class_number_or_name(run, tiny, tmp_path):
    from PIL import Image

    network = load_network(tiny[0])
    weights = initial_weights(network, 1)
    weights.provenance = {"classes": ["left", "right"]}
    weights.save(tmp_path / "w.npz")
    Image.fromarray(np.full((12, 12), 90, np.uint8)).save(tmp_path / "grey.png")
    outputs = []
    for target in ("right", "1"):
        out = tmp_path / f"adv_{target}.png"
        result = run("attack", tiny[0], tmp_path / "grey.png", "--weights", tmp_path / "w.npz",
                     "--target", target, "-o", out)
        assert result.exit_code == 0, result.output
        outputs.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(*outputs)
    result = run("attack", tiny[0], tmp_path / "grey.png", "--weights", tmp_path / "w.npz",
                 "--target", "up", "-o", tmp_path / "adv.png")
    assert result.exit_code == 2
    assert "'up' is not a class: the network has classes 0…1 (left, right)" in result.stderr
