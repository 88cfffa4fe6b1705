"""convcli learn: known kernels recovered, noise, gradient descent, saving, bad input."""

import json

import numpy as np
import pytest

from convcli import conv2d
from convcli.kernels import Catalogue, gaussian_kernel
from convcli.learn import Geometry, LearnSettings, learn

RNG = np.random.default_rng(11)
SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], float)


def synthetic(weight, bias=None, size=(48, 52), cin=1, stride=(1, 1), dilation=(1, 1), noise=0.0,
              rng=RNG, depthwise=False):
    """A random input (H, W, C) and the target conv2d makes from it, padded as apply does."""
    x = rng.standard_normal((*size, cin))
    weight = np.asarray(weight, float)
    kh, kw = weight.shape[-2:]
    geometry = Geometry(size=(kh, kw), stride=stride, dilation=dilation)
    w4 = weight[None, None] if weight.ndim == 2 else weight
    if depthwise:
        w4 = np.repeat(w4, cin, axis=0)
    plan = geometry.plan((cin, *size) if not depthwise else (1, *size), w4.shape[0])
    y = conv2d(np.moveaxis(x, 2, 0), w4, bias, plan.stride, plan.padding, plan.dilation,
               cin if depthwise else 1, "zeros")
    y = np.moveaxis(y, 0, 2)
    return x, y + noise * rng.standard_normal(y.shape), geometry


@pytest.mark.parametrize("weight", [SOBEL_X, gaussian_kernel(1.0), RNG.standard_normal((5, 5)),
                                    RNG.standard_normal((2, 5)), RNG.standard_normal((4, 3))],
                         ids=["sobel", "gaussian", "random5x5", "nonsquare2x5", "even4x3"])
def test_recovers_a_2d_kernel_exactly(weight):
    x, y, geometry = synthetic(weight, bias=[0.75])
    result = learn([(x, y)], LearnSettings(geometry=geometry))
    np.testing.assert_allclose(result.weight[0, 0], weight, atol=1e-4)
    np.testing.assert_allclose(result.bias, [0.75], atol=1e-4)
    assert result.fit["r2"] > 0.999999


def test_recovers_with_stride_and_dilation():
    weight = RNG.standard_normal((3, 3))
    x, y, geometry = synthetic(weight, stride=(2, 1), dilation=(1, 2), size=(60, 61))
    result = learn([(x, y)], LearnSettings(geometry=geometry, bias=False))
    np.testing.assert_allclose(result.weight[0, 0], weight, atol=1e-4)


def test_recovers_a_depthwise_rgb_kernel():
    weight = RNG.standard_normal((3, 3))
    x, y, geometry = synthetic(weight, cin=3, depthwise=True, bias=[2.0, 2.0, 2.0])
    result = learn([(x, y)], LearnSettings(geometry=geometry, depthwise=True))
    assert result.kernel_2d
    np.testing.assert_allclose(result.weight[0, 0], weight, atol=1e-4)
    np.testing.assert_allclose(result.bias, [2.0], atol=1e-4)


def test_recovers_a_3_to_2_channel_layer_with_bias():
    weight = RNG.standard_normal((2, 3, 3, 3))
    x, y, geometry = synthetic(weight, cin=3, bias=[0.5, -1.5])
    result = learn([(x, y)], LearnSettings(geometry=geometry))
    assert result.weight.shape == (2, 3, 3, 3)
    np.testing.assert_allclose(result.weight, weight, atol=1e-4)
    np.testing.assert_allclose(result.bias, [0.5, -1.5], atol=1e-4)


def test_several_pairs_fit_together():
    weight = RNG.standard_normal((3, 3))
    pairs = [synthetic(weight, size=(20 + i, 30))[:2] for i in range(3)]
    result = learn(pairs, LearnSettings(geometry=Geometry(size=(3, 3)), bias=False))
    np.testing.assert_allclose(result.weight[0, 0], weight, atol=1e-4)


def test_noise_error_shrinks_as_the_image_grows():
    weight = RNG.standard_normal((3, 3))
    errors = []
    for side in (32, 128, 512):
        x, y, geometry = synthetic(weight, size=(side, side), noise=0.5, rng=np.random.default_rng(side))
        result = learn([(x, y)], LearnSettings(geometry=geometry))
        errors.append(np.abs(result.weight[0, 0] - weight).max())
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02             # ≈ noise / √pixels


def test_gradient_descent_reaches_the_least_squares_answer():
    weight = RNG.standard_normal((5, 5))
    x, y, geometry = synthetic(weight, bias=[3.0], size=(64, 64), noise=0.1)
    exact = learn([(x, y)], LearnSettings(geometry=geometry))
    descended = learn([(x, y)], LearnSettings(geometry=geometry, method="gd", epochs=300))
    np.testing.assert_allclose(descended.weight, exact.weight, atol=1e-3)
    np.testing.assert_allclose(descended.bias, exact.bias, atol=1e-3)
    assert descended.losses[0] > 10 * descended.losses[-1]
    assert all(b <= a * 1.0001 for a, b in zip(descended.losses[50:], descended.losses[51:]))


def test_holdout_reports_both_fits():
    x, y, geometry = synthetic(SOBEL_X, noise=0.1, size=(64, 64))
    result = learn([(x, y)], LearnSettings(geometry=geometry, holdout=0.25))
    assert result.held_out is not None
    assert abs(result.held_out["pixels"] / (result.fit["pixels"] + result.held_out["pixels"]) - 0.25) < 0.03
    assert 0.9 < result.held_out["r2"] <= 1


def test_cli_json_and_closest_kernel(run, tmp_path, samples):
    assert run("apply", samples / "camera.png", "-k", "sobel_x", "--range", "float", "-o",
               tmp_path / "edges.npy").exit_code == 0
    result = run("learn", samples / "camera.png", tmp_path / "edges.npy", "-s", "5", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("weights", "bias", "rmse", "r2", "closest"):
        assert key in summary
    assert np.array(summary["weights"]).shape == (5, 5)
    np.testing.assert_allclose(np.array(summary["weights"])[1:4, 1:4], SOBEL_X, atol=1e-4)
    assert summary["closest"][0]["kernel"] == "sobel_x" and summary["closest"][0]["similarity"] > 0.9999
    text = run("learn", samples / "camera.png", tmp_path / "edges.npy", "-s", "3").stdout
    assert "≈ sobel_x (1.0000)" in text


def test_cli_layer_json_is_4d(run, tmp_path):
    weight = RNG.standard_normal((2, 3, 3, 3))
    x, y, _ = synthetic(weight, cin=3)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    summary = json.loads(run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", "3",
                             "--json").stdout)
    assert np.array(summary["weights"]).shape == (2, 3, 3, 3)
    np.testing.assert_allclose(summary["weights"], weight, atol=1e-3)


def test_saved_entry_round_trips_through_apply(run, tmp_path):
    weight = RNG.standard_normal((3, 3))
    x, y, _ = synthetic(weight, size=(40, 40))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    catalogue = tmp_path / "mine.yaml"
    result = run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", "3", "--name", "mine",
                 "--save", catalogue)
    assert result.exit_code == 0, result.output
    kernel = Catalogue.load([catalogue], use_env=False).get("mine")
    assert kernel.learned["sha256"] and kernel.learned["options"]["size"] == [3, 3]
    np.testing.assert_allclose(kernel.weights[0], weight, atol=1e-4)
    assert run("apply", tmp_path / "x.npy", "-k", "mine", "--kernels", catalogue, "-o",
               tmp_path / "z.npy").exit_code == 0
    expected = conv2d(np.moveaxis(x, 2, 0).astype(np.float32), kernel.weights[None], kernel.bias,
                      padding="same", pad_mode="reflect")
    np.testing.assert_allclose(np.load(tmp_path / "z.npy"), expected[0], rtol=1e-5, atol=1e-5)
    assert "learned" in run("kernels", "--kernels", catalogue).stdout
    again = run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", "3", "--name", "mine",
                "--save", catalogue)
    assert again.exit_code == 2 and "exists already" in again.stderr


def test_gd_plot_is_written(run, tmp_path):
    x, y, _ = synthetic(SOBEL_X, size=(32, 32))
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.float32))
    result = run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", "3", "--method", "gd",
                 "--epochs", "30", "--plot", tmp_path / "loss.png")
    assert result.exit_code == 0, result.output
    from PIL import Image
    with Image.open(tmp_path / "loss.png") as im:
        assert im.size == (720, 420)


@pytest.mark.parametrize("case, words", [
    ("mismatch", "gives 40×40"),
    ("constant", "singular"),
    ("nan", "NaN"),
    ("too_big", "no position inside"),
])
def test_bad_input_is_one_clear_line(run, tmp_path, case, words):
    x = RNG.standard_normal((40, 40)).astype(np.float32)
    y = x.copy()
    size = "3"
    if case == "mismatch":
        y = y[:30]
    elif case == "constant":
        x = np.full_like(x, 7.0)
    elif case == "nan":
        x[3, 3] = np.nan
    elif case == "too_big":
        size = "41"
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    result = run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", size)
    assert result.exit_code == 2, result.output
    assert result.stderr.count("\n") == 1 and words in result.stderr
    if case == "constant":
        assert "--ridge" in result.stderr
        ridged = run("learn", tmp_path / "x.npy", tmp_path / "y.npy", "-s", "3", "--ridge", "0.001")
        assert ridged.exit_code == 0


def test_the_catalogue_ships_learned_kernels_with_provenance():
    catalogue = Catalogue.load(use_env=False)
    learned = {n: catalogue.get(n) for n in catalogue.names()
               if catalogue.get(n).learned and catalogue.get(n).source == "convcli learn"}
    assert {"learned_edge_x", "learned_deblur", "learned_denoise"} <= set(learned)
    for kernel in learned.values():
        provenance = kernel.learned
        assert provenance["sha256"] and provenance["options"] and provenance["fit"]["r2"] > 0.9
        assert provenance["recipe"] == "samples/learned/recipe.py"
    assert closest_name(learned["learned_edge_x"]) == "sobel_x"


def closest_name(kernel):
    from convcli.learn import closest_kernels
    return closest_kernels(kernel.weights[None], Catalogue.load(use_env=False))[0][0]


def _recipe():
    import importlib.util
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("recipe", root / "samples" / "learned" / "recipe.py")
    recipe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(recipe)
    return recipe


def test_recipe_check_allows_a_thousandth_of_the_largest_weight():
    recipe = _recipe()
    shipped = {"weights": [[4.0, -2.0], [1.0, 0.5]]}
    assert recipe.same_weights({"weights": [[4.003, -2.0], [1.0, 0.5]]}, shipped)
    assert not recipe.same_weights({"weights": [[4.0, -2.0], [1.0, 0.505]]}, shipped)
    assert not recipe.same_weights({"weights": [[4.0, -2.0]]}, shipped)
    assert not recipe.same_weights(shipped, None)


@pytest.mark.slow
def test_recipe_regenerates_the_shipped_learned_kernels_within_its_tolerance():
    recipe = _recipe()
    fresh = recipe.learn_all()
    shipped = Catalogue.load(use_env=False)
    for name, entry in fresh.items():
        assert recipe.same_weights(entry, {"weights": shipped.get(name).weights[0].tolist()}), name
    for name in ("learned_deblur", "learned_denoise"):
        evaluation = fresh[name]["learned"]["evaluation"]
        assert evaluation["psnr_after_db"] > evaluation["psnr_before_db"] + 3   # on an unseen image


def test_readme_colour_example_learns_sobel_x(run, tmp_path, samples):
    """`learn photo.png edges.npy -s 3` on a colour photo and its Sobel map: one 2-D kernel,
    printed once, ≈ sobel_x (1.0000)."""
    edges = tmp_path / "edges.npy"
    assert run("apply", samples / "astronaut.png", "-k", "sobel_x", "--range", "float",
               "-o", edges).exit_code == 0
    result = run("learn", samples / "astronaut.png", edges, "-s", "3")
    assert result.exit_code == 0, result.output
    assert "one 2-D kernel 3×3" in result.stdout and "filter" not in result.stdout
    assert result.stdout.rstrip().endswith("≈ sobel_x (1.0000)")


def test_a_layers_filters_and_their_matches_are_numbered_alike(run, tmp_path, samples):
    """With --cout, the printed blocks are 'filter F, channel C' and the matches 'filter F':
    the diagonal of a per-channel Sobel, so each filter is sobel_x on one of 3 channels."""
    edges = tmp_path / "edges.npy"
    run("apply", samples / "astronaut.png", "-k", "sobel_x", "--range", "float", "-o", edges)
    result = run("learn", samples / "astronaut.png", edges, "-s", "3", "--cout", "3", "--json")
    weight = np.array(json.loads(result.stdout)["weights"])
    for f in range(3):
        for c in range(3):
            expected = SOBEL_X if f == c else np.zeros((3, 3))
            np.testing.assert_allclose(weight[f, c], expected, atol=1e-6)
    text = run("learn", samples / "astronaut.png", edges, "-s", "3", "--cout", "3").stdout
    headers = [line for line in text.splitlines() if line.startswith("filter")]
    assert headers[:9] == [f"filter {f}, channel {c}:" for f in (1, 2, 3) for c in (1, 2, 3)]
    assert headers[9:] == [f"filter {f} ≈ sobel_x ({1 / np.sqrt(3):.4f})" for f in (1, 2, 3)]
