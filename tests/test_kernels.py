"""Kernel specs, parametric kernels and catalogues."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from convcli.errors import KernelError
from convcli.kernels import (Catalogue, box_kernel, dog_kernel, gaussian_kernel, log_kernel,
                             motion_kernel, parse_matrix, resolve_kernel, unsharp_kernel)


@pytest.fixture(scope="module")
def catalogue():
    return Catalogue.load(use_env=False)


REQUIRED = ["identity", "box_blur_3", "gaussian_5", "sharpen", "unsharp_5", "emboss", "sobel_x",
            "sobel_y", "sobel", "scharr_x", "scharr_y", "prewitt_x", "prewitt_y", "roberts",
            "laplacian", "laplacian_8", "log", "dog", "kirsch", "motion_blur_9"]


@pytest.mark.parametrize("name", REQUIRED)
def test_catalogue_has_the_classic_kernels_with_description_and_source(catalogue, name):
    kernel = catalogue.get(name)
    assert kernel.description and kernel.source
    assert np.isfinite(kernel.weights).all()


def test_builtin_catalogue_values(catalogue):
    np.testing.assert_array_equal(catalogue.get("sobel_x").weights[0], [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])
    np.testing.assert_allclose(catalogue.get("gaussian_5").weights.sum(), 1)
    np.testing.assert_allclose(catalogue.get("box_blur_3").weights[0], np.full((3, 3), 1 / 9))
    sobel = catalogue.get("sobel")
    assert sobel.combine == "magnitude" and sobel.weights.shape == (2, 3, 3)
    np.testing.assert_array_equal(sobel.weights[1], catalogue.get("sobel_y").weights[0])
    kirsch = catalogue.get("kirsch")
    assert kirsch.weights.shape == (8, 3, 3) and kirsch.combine == "max"
    # the 8 compass kernels are the 45° rotations of one another: each sums to 0, has one 0
    assert all(k.sum() == 0 and (k == 5).sum() == 3 for k in kirsch.weights)
    assert len({k.tobytes() for k in kirsch.weights}) == 8


def test_range_hints_follow_the_kernels_nature(catalogue):
    assert catalogue.get("gaussian_5").range_hint() == "clip"
    assert catalogue.get("sobel_x").range_hint() == "abs"
    assert catalogue.get("sobel").range_hint() == "clip"
    assert resolve_kernel("1 -2 1").range_hint() == "abs"        # derivative: sums to 0
    assert resolve_kernel("0 -1 0; -1 5 -1; 0 -1 0").range_hint() == "clip"   # sharpening
    assert resolve_kernel("1 1 1").range_hint() == "clip"


def test_separability(catalogue):
    assert catalogue.get("sobel_x").separable() and catalogue.get("gaussian_5").separable()
    assert not catalogue.get("laplacian").separable()


@pytest.mark.parametrize("text, expected", [
    ("[[1,2,1],[2,4,2],[1,2,1]]/16", np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16),
    ("1 2 1; 2 4 2; 1 2 1", [[1, 2, 1], [2, 4, 2], [1, 2, 1]]),
    ("1,2;3,4", [[1, 2], [3, 4]]),
    ("[1, -2, 1]", [[1, -2, 1]]),
    ("[[1, 2], [3, 4]] * 0.5", [[0.5, 1], [1.5, 2]]),
    ("-1 0 1\n-2 0 2\n-1 0 1", [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]),
])
def test_inline_matrices(text, expected):
    np.testing.assert_allclose(parse_matrix(text), expected)


@pytest.mark.parametrize("text, words", [
    ("1 2 1; 2 4; 1 2 1", "row 2 has 2 values but row 1 has 3"),
    ("[[1,2],[3,x]]", "row 2: 'x' is not a number"),
    ("[[1,2],[3,4]", "brackets do not balance"),
    ("1 2 1 / 0", "divide by zero"),
    ("[]", "empty"),
    ("[[1, nan, 1]]", "NaN"),
])
def test_malformed_matrices_say_what_is_wrong(text, words):
    with pytest.raises(KernelError, match=words):
        resolve_kernel(text)


def test_gaussian_default_size_and_normalisation():
    g = gaussian_kernel(2)
    assert g.shape == (13, 13)                      # ⌈3σ⌉·2+1
    np.testing.assert_allclose(g.sum(), 1)
    np.testing.assert_allclose(g, g.T)
    np.testing.assert_allclose(g[6, 7] / g[6, 6], np.exp(-1 / 8))
    assert resolve_kernel("gaussian:sigma=2,size=5").weights.shape == (1, 5, 5)


def test_box_log_dog_unsharp():
    np.testing.assert_allclose(box_kernel(5), np.full((5, 5), 1 / 25))
    assert resolve_kernel("box:3x5").weights.shape == (1, 3, 5)
    log = log_kernel(1.4)
    assert log.shape == (11, 11) and abs(log.sum()) < 1e-12 and log[5, 5] < 0
    dog = dog_kernel(1, 2)
    np.testing.assert_allclose(dog, gaussian_kernel(1, 13) - gaussian_kernel(2, 13))
    unsharp = unsharp_kernel(1, 1.5)
    expected = -1.5 * gaussian_kernel(1)
    expected[3, 3] += 2.5
    np.testing.assert_allclose(unsharp, expected)


@pytest.mark.parametrize("angle", [0, 30, 45, 90, 135])
def test_motion_blur_is_a_line_at_its_angle(angle):
    k = motion_kernel(9, angle)
    np.testing.assert_allclose(k.sum(), 1)
    ys, xs = np.nonzero(k > 0.05 * k.max())
    c = (k.shape[0] - 1) / 2
    theta = np.radians(angle)
    # every strong tap lies within a pixel of the line through the centre at `angle`
    distance = np.abs(-(ys - c) * np.cos(theta) - (xs - c) * np.sin(theta))
    assert distance.max() <= 1.0
    assert np.hypot(ys - c, xs - c).max() >= 3.5


@pytest.mark.parametrize("spec, words", [
    ("gaussian:sigma=-1", "sigma must be > 0"),
    ("gaussian:foo=1", "no parameter 'foo'"),
    ("gaussian", "missing sigma"),
    ("gaussian:sigma=abc", "not a number"),
    ("blur:3", "no parametric kernel 'blur'"),
    ("sobel_xx", "did you mean sobel_x"),
])
def test_bad_specs(spec, words):
    with pytest.raises(KernelError, match=words):
        resolve_kernel(spec)


def test_kernel_files(tmp_path):
    np.save(tmp_path / "k2.npy", np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "k4.npy", np.ones((4, 3, 3, 3)))
    (tmp_path / "k.txt").write_text("# a comment\n1 2 1\n0 0 0\n-1 -2 -1\n")
    (tmp_path / "k.csv").write_text("1,0,-1\n2,0,-2\n1,0,-1\n")
    (tmp_path / "bank.yaml").write_text("kernels:\n  a: {weights: [[1, 2]]}\n  b: {weights: [[3], [4]]}\n")
    assert resolve_kernel(f"@{tmp_path / 'k2.npy'}").weights.shape == (1, 2, 3)
    four = resolve_kernel(f"@{tmp_path / 'k4.npy'}")
    assert four.is_layer and four.weights.shape == (4, 3, 3, 3)
    np.testing.assert_array_equal(resolve_kernel(f"@{tmp_path / 'k.txt'}").weights[0, 2], [-1, -2, -1])
    np.testing.assert_array_equal(resolve_kernel(f"@{tmp_path / 'k.csv'}").weights[0, 1], [2, 0, -2])
    np.testing.assert_array_equal(resolve_kernel(f"@{tmp_path / 'bank.yaml'}:b").weights[0], [[3], [4]])
    with pytest.raises(KernelError, match="name the entry"):
        resolve_kernel(f"@{tmp_path / 'bank.yaml'}")


def test_bad_kernel_files(tmp_path):
    np.save(tmp_path / "k3.npy", np.ones((2, 3, 3)))
    bad = np.ones((3, 3))
    bad[1, 1] = np.inf
    np.save(tmp_path / "inf.npy", bad)
    (tmp_path / "k.bin").write_bytes(b"\0")
    with pytest.raises(KernelError, match="expected 2-D"):
        resolve_kernel(f"@{tmp_path / 'k3.npy'}")
    with pytest.raises(KernelError, match="NaN or infinity"):
        resolve_kernel(f"@{tmp_path / 'inf.npy'}")
    with pytest.raises(KernelError, match="no such file"):
        resolve_kernel(f"@{tmp_path / 'missing.npy'}")
    with pytest.raises(KernelError, match="unknown kind"):
        resolve_kernel(f"@{tmp_path / 'k.bin'}")


@pytest.mark.parametrize("body, words", [
    ("kernels:\n  a: {weights: [[1]]}\n  a: {weights: [[2]]}\n", "'a' is defined twice"),
    ("kernels:\n  a: {weights: [[1, 2], [3]]}\n", "entry 'a': row 2 has 1 values"),
    ("kernels:\n  a: {weights: [[1, .nan]]}\n", "entry 'a': the matrix holds NaN"),
    ("kernels:\n  a: {weights: [[1, .inf]]}\n", "entry 'a': the matrix holds NaN or infinity"),
    ("kernels:\n  a: {weights: []}\n", "entry 'a': weights must be a non-empty matrix"),
    ("kernels:\n  a: {weights: [[1]], colour: red}\n", "unknown field"),
    ("kernels:\n  a: {bank: [b]}\n", "bank member 'b' is not in the catalogue"),
    ("kernels:\n  a: {weights: [[1]], range: loud}\n", "range 'loud'"),
    ("kernels:\n  a: !!python/object/apply:os.system ['echo hi']\n", "not valid YAML"),
    ("kernels: [1, 2]\n", "expected a mapping"),
])
def test_bad_catalogues_name_file_entry_and_reason(tmp_path, body, words):
    path = tmp_path / "bad.yaml"
    path.write_text(body)
    with pytest.raises(KernelError, match=words) as info:
        Catalogue.load([path], use_env=False)
    assert str(path) in str(info.value)


def test_user_catalogues_add_and_override(tmp_path, monkeypatch):
    (tmp_path / "mine.yaml").write_text(
        "kernels:\n  sobel_x: {weights: [[0, 0, 0], [0, -1, 1], [0, 0, 0]], description: mine}\n"
        "  mine: {weights: [[2]]}\n")
    (tmp_path / "env.yaml").write_text("kernels:\n  from_env: {weights: [[3]]}\n")
    monkeypatch.setenv("CONVCLI_KERNELS", str(tmp_path / "env.yaml"))
    catalogue = Catalogue.load([tmp_path / "mine.yaml"])
    assert catalogue.get("sobel_x").description == "mine"
    assert catalogue.get("mine").weights[0, 0, 0] == 2
    assert catalogue.get("from_env").weights[0, 0, 0] == 3
    sobel = catalogue.get("sobel")          # a built-in bank uses the override
    np.testing.assert_array_equal(sobel.weights[0], catalogue.get("sobel_x").weights[0])


def test_an_override_that_breaks_a_bank_is_reported_when_the_bank_is_used(tmp_path):
    (tmp_path / "mine.yaml").write_text("kernels:\n  sobel_x: {weights: [[1, -1]]}\n")
    catalogue = Catalogue.load([tmp_path / "mine.yaml"], use_env=False)
    assert catalogue.get("sobel_x").size == (1, 2)
    with pytest.raises(KernelError, match="entry 'sobel': bank members differ in size"):
        catalogue.get("sobel")


def _copies(folder):
    return sorted((folder / "convcli").glob("catalogue-*.json"))


def test_a_catalogue_is_read_from_its_json_copy_while_its_contents_are_unchanged(tmp_path,
                                                                              monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "c.yaml"
    path.write_text("kernels:\n  k: {weights: [[1, 2]]}\n")
    assert Catalogue.load([path], use_env=False).get("k").weights.tolist() == [[[1, 2]]]
    [copy] = [c for c in _copies(tmp_path / "cache") if str(path) in c.read_text()]
    copy.write_text(copy.read_text().replace("[[1, 2]]", "[[7, 8]]"))
    assert Catalogue.load([path], use_env=False).get("k").weights.tolist() == [[[7, 8]]]
    path.write_text("kernels:\n  k: {weights: [[3, 4]]}\n")     # same size, new contents
    assert Catalogue.load([path], use_env=False).get("k").weights.tolist() == [[[3, 4]]]
    assert "[[3, 4]]" in copy.read_text()


def test_catalogue_data_that_json_cannot_hold_exactly_is_not_copied(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "c.yaml"
    path.write_text("kernels:\n  k: {weights: [[1]], learned: {date: 2026-11-25, 3: x}}\n")
    catalogue = Catalogue.load([path], use_env=False)
    assert str(catalogue.get("k").learned["date"]) == "2026-11-25"
    assert not [c for c in _copies(tmp_path / "cache") if str(path) in c.read_text()]


@pytest.mark.parametrize("where", ["a file", "no home"])
def test_catalogues_load_where_no_cache_can_be_written(tmp_path, monkeypatch, where):
    if where == "a file":
        (tmp_path / "not-a-folder").write_text("")
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder"))
    else:
        monkeypatch.delenv("XDG_CACHE_HOME")
        monkeypatch.setattr(Path, "home", lambda: (_ for _ in ()).throw(RuntimeError("no home")))
    path = tmp_path / "c.yaml"
    path.write_text("kernels:\n  k: {weights: [[5]]}\n")
    for _ in range(2):
        assert Catalogue.load([path], use_env=False).get("k").weights.tolist() == [[[5]]]


def test_catalogue_scale_and_bias(tmp_path):
    (tmp_path / "c.yaml").write_text("kernels:\n  k: {weights: [[1, 2, 1]], scale: 1/4, bias: 0.5}\n")
    kernel = Catalogue.load([tmp_path / "c.yaml"], use_env=False).get("k")
    np.testing.assert_allclose(kernel.weights[0], [[0.25, 0.5, 0.25]])
    np.testing.assert_allclose(kernel.bias, [0.5])


def test_scipy_agrees_with_catalogue_laplacian(catalogue):
    image = np.random.default_rng(0).standard_normal((6, 7))
    expected = ndimage.laplace(image, mode="mirror")
    from convcli import conv2d
    got = conv2d(image[None], catalogue.get("laplacian").weights[None], padding="same",
                 pad_mode="reflect")[0]
    np.testing.assert_allclose(got, expected, atol=1e-12)
