"""The engine: one table of algorithms, PyTorch's empty tensors, the precision-aware
choice for integer outputs, kernel ranks computed once, and when the compiled core loads
(a library loop runs compiled from its second call; a small CLI job never imports numba)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convcli import avg_pool2d, backend, conv2d, max_pool2d, plan
from convcli.algorithms import ALGORITHMS, NAMES
from convcli.errors import ParameterError
from convcli.images import Picture, read_image, write_image
from convcli.kernels import Kernel
from convcli.pipeline import ConvOptions, Pipeline
from convcli.plan import choose_algorithm, kernel_rank, make_plan
from naive import naive_conv2d

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def one_shot_without_core(monkeypatch):
    """A one-shot process that has not loaded the compiled core."""
    monkeypatch.setattr(backend, "jit_loaded", lambda: False)
    monkeypatch.setattr(backend, "_forgone", 0.0)
    with backend.one_shot():
        yield


def test_the_algorithm_table_is_what_the_planner_the_cli_and_the_engine_read():
    from convcli.options import conv_options  # noqa: F401  (the module builds --algo)
    from convcli import options

    assert NAMES == ("direct", "separable", "fft", "gemm", "numpy")
    assert {n for n, a in ALGORITHMS.items() if a.compiled} == {"direct", "separable", "gemm"}
    assert {n for n, a in ALGORITHMS.items() if not a.exact} == {"separable", "fft"}
    assert options.ALGORITHM_NAMES == NAMES
    conv = make_plan((1, 2, 20, 20), (8, 2, 3, 3), padding=1)
    assert set(plan.algorithm_costs(conv, 1)) == set(NAMES)
    rng = np.random.default_rng(0)
    x, w = rng.random((1, 2, 20, 20)), rng.standard_normal((8, 2, 3, 3))
    expected = naive_conv2d(x, w, padding=(1, 1, 1, 1))
    for name in NAMES:
        out = np.empty(conv.output_shape)
        from convcli.conv import run
        run(name, x, w, np.zeros(8), conv, out)
        np.testing.assert_allclose(out, expected, atol=1e-9)


@pytest.mark.parametrize("x_shape, w_shape, groups, expected", [
    # what torch.nn.functional.conv2d returns (PyTorch 2.14, checked by hand)
    ((0, 3, 7, 5), (4, 3, 3, 2), 1, (0, 4, 5, 4)),
    ((0, 4, 7, 5), (4, 2, 3, 2), 2, (0, 4, 5, 4)),
    ((0, 0, 7, 5), (4, 0, 3, 2), 1, (0, 0, 5, 4)),
    ((1, 0, 7, 5), (4, 0, 3, 2), 1, (1, 0, 5, 4)),     # no input channels: no output channels
    ((0, 0, 7, 5), (4, 0, 3, 2), 2, (0, 0, 5, 4)),
])
def test_empty_batches_and_channels_give_what_pytorch_gives(x_shape, w_shape, groups, expected):
    out = conv2d(np.zeros(x_shape, np.float32), np.zeros(w_shape, np.float32),
                 np.ones(w_shape[0], np.float32), groups=groups)
    assert out.shape == expected and out.dtype == np.float32


def test_empty_inputs_are_still_checked_and_pooling_keeps_the_empty_batch():
    with pytest.raises(ParameterError, match="smaller than the 3×3 kernel"):
        conv2d(np.zeros((0, 3, 2, 2)), np.zeros((4, 3, 3, 3)))
    with pytest.raises(ParameterError, match="H, W ≥ 1"):
        conv2d(np.zeros((1, 3, 0, 5)), np.zeros((4, 3, 1, 1)))
    assert max_pool2d(np.zeros((0, 3, 7, 5)), 2).shape == (0, 3, 3, 2)
    assert avg_pool2d(np.zeros((0, 3, 7, 5)), 2).shape == (0, 3, 3, 2)


@pytest.mark.parametrize("padding, include", [(0, True), (1, True), (1, False), ((1, 2), False)])
def test_avg_pool2d_matches_the_mean_of_each_window(padding, include):
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 9, 11))
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    out = avg_pool2d(x, (3, 5), stride=2, padding=padding, count_include_pad=include)
    padded = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    real = np.pad(np.ones(x.shape[2:]), ((ph, ph), (pw, pw)))
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            window = padded[:, :, 2 * i:2 * i + 3, 2 * j:2 * j + 5]
            count = 15 if include else real[2 * i:2 * i + 3, 2 * j:2 * j + 5].sum()
            np.testing.assert_allclose(out[:, :, i, j], window.sum(axis=(2, 3)) / count)
    with pytest.raises(ParameterError, match="at most half"):
        avg_pool2d(x, 3, padding=2)


def _integer_case():
    """The issue's case: x integers 0..65535, k integers −3..3, 25×25, padding same."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 65536, (1, 64, 64))
    k = rng.integers(-3, 4, (1, 1, 25, 25))
    return x, k, np.round(naive_conv2d(x[None].astype(float), k.astype(float),
                                       padding=(12, 12, 12, 12))[0])


@pytest.mark.parametrize("dtype", [np.float32, np.uint16])
def test_integer_results_stay_exact_where_fft_would_round_them_wrong(one_shot_without_core,
                                                                     dtype):
    x, k, exact = _integer_case()
    conv = make_plan(x.shape, k.shape, padding="same")
    assert choose_algorithm(conv, k.astype(np.float32), jit=False) == "fft"   # uninformed
    assert np.abs(conv2d(x.astype(np.float32), k, padding="same", algo="fft") - exact).max() >= 1
    np.testing.assert_array_equal(conv2d(x.astype(dtype), k.astype(np.float32),
                                         padding="same"), exact)


def test_integer_weights_on_fractional_inputs_may_still_use_fft(one_shot_without_core):
    from convcli.conv import integer_rounding

    x, k, _ = _integer_case()
    x = x + 0.5                                   # the exact results are not integers
    conv = make_plan(x.shape, k.shape, padding="same")
    assert integer_rounding(x, x, k) is None
    assert choose_algorithm(conv, k, jit=False,
                            rounding=lambda: integer_rounding(x, x, k)) == "fft"


def _sixteen_bit_job(tmp_path, algo):
    rng = np.random.default_rng(3)
    k = rng.integers(-3, 4, (25, 25)).astype(np.float64)
    k[12, 12] += 1 - k.sum()                               # sum 1, gain Σ|k| ≈ 1000
    picture = read_image(ROOT / "samples" / "astronaut_gray16.png")
    kernel = Kernel("k", k[None], np.zeros(1))
    options = ConvOptions(algo=algo)
    return picture, k, Pipeline(picture, [kernel], options, output_step=1.0)


def test_a_sixteen_bit_png_through_a_high_gain_kernel_avoids_fft(tmp_path,
                                                                  one_shot_without_core):
    import cv2
    import warnings

    picture, k, pipeline = _sixteen_bit_job(tmp_path, "auto")
    stage = pipeline.stages[0]
    assert choose_algorithm(stage.plan, stage.weight, jit=pipeline.jit) == "fft"   # uninformed
    assert ALGORITHMS[stage.algorithm].exact
    result = pipeline.result("clip").planes[0]
    reference = cv2.filter2D(picture.color[..., 0].astype(np.float64), -1, k,
                             borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_array_equal(np.clip(np.round(result), 0, 65535),
                                  np.clip(np.round(reference), 0, 65535))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _sixteen_bit_job(tmp_path, "fft")
    assert len(caught) == 1 and "may be off by up to" in str(caught[0].message)


def test_forced_fft_on_sixteen_bit_data_warns_once_on_the_command_line(run, tmp_path):
    rng = np.random.default_rng(3)
    k = rng.integers(-3, 4, (25, 25)).astype(np.float64)
    k[12, 12] += 1 - k.sum()
    np.save(tmp_path / "k.npy", k)
    args = [ROOT / "samples" / "astronaut_gray16.png", "-k", f"@{tmp_path / 'k.npy'}"]
    forced = run("apply", *args, "--algo", "fft", "-o", tmp_path / "fft.png")
    assert forced.exit_code == 0 and forced.stderr.count("may be off by up to") == 1
    quiet = run("apply", ROOT / "samples" / "astronaut_gray16.png", "-k", "gaussian:2",
                "--algo", "fft", "-o", tmp_path / "gauss.png")
    assert quiet.exit_code == 0 and "may be off" not in quiet.stderr


def test_kernel_ranks_are_computed_once_per_weight_and_sketched_when_large(monkeypatch):
    calls = []
    svd = np.linalg.svd
    monkeypatch.setattr(np.linalg, "svd", lambda a, **kw: calls.append(a.shape) or svd(a, **kw))
    plan._RANKS.clear()
    rng = np.random.default_rng(4)
    gauss = np.outer(np.hanning(33)[1:-1], np.hanning(33)[1:-1])[None, None]
    conv = make_plan((1, 1, 512, 512), gauss.shape, padding="same")
    for _ in range(5):
        choose_algorithm(conv, gauss, jit=True)
    assert len(calls) == 1
    assert kernel_rank(gauss) == 1
    two = (np.outer(rng.random(40), rng.random(40)) + np.outer(rng.random(40), rng.random(40)))
    assert kernel_rank(two[None, None], at_most=5) == 2
    assert kernel_rank(rng.random((1, 1, 40, 40)), at_most=5) == 5
    assert kernel_rank(rng.random((1, 1, 40, 40))) == 40
    calls.clear()
    residual = rng.standard_normal((1, 1, 380, 380))          # learn's gradient kernel
    choose_algorithm(make_plan((1, 1, 384, 384), residual.shape), residual, jit=True)
    assert all(shape[-1] < 40 for shape in calls)              # a sketch, not a 380² SVD


LOOP = """
import sys
import numpy as np
import convcli, convcli.conv as conv
from convcli.algorithms import ALGORITHMS
ran = []
run = conv.run
conv.run = lambda name, *args: (ran.append(name), run(name, *args))
x = np.random.default_rng(0).random((3, 2048, 2048), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((3, 1, 3, 3)).astype(np.float32)
for _ in range(10):
    convcli.conv2d(x, w, padding="same", pad_mode="reflect", groups=3)
print(" ".join(ran))
"""


@pytest.mark.slow
def test_a_library_loop_runs_on_the_compiled_core_from_its_second_call():
    out = subprocess.run([sys.executable, "-c", LOOP], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert len(out) == 10
    assert all(ALGORITHMS[name].compiled for name in out[1:]), out


def test_apply_on_a_512_png_never_imports_numba(tmp_path):
    source = tmp_path / "photo512.png"
    rgb = read_image(ROOT / "samples" / "astronaut.png").color
    write_image(source, Picture(np.ascontiguousarray(
        np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)[:512, :512])))
    code = ("import sys; from convcli.cli import cli; "
            f"code = cli.main(['apply', {str(source)!r}, '-k', 'sobel', '-o', "
            f"{str(tmp_path / 'out.png')!r}], standalone_mode=False); "
            "print('numba' in sys.modules, code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.split()
    assert out[-2:] == ["False", "0"]
    assert read_image(tmp_path / "out.png").color.shape == (512, 512, 3)


def test_gradient_descent_counts_as_repeated_work_even_in_a_one_shot_job(monkeypatch):
    monkeypatch.setattr(backend, "jit_loaded", lambda: False)
    monkeypatch.setattr(backend, "_forgone", 0.0)
    monkeypatch.setattr(backend, "_gains", 0)
    with backend.one_shot():
        assert not backend.jit_pays(0.01) and not backend.jit_pays(0.01)
        with backend.repeating():                    # one-shot calls never count as gains
            assert not backend.jit_pays(0.01) and backend.jit_pays(0.01)
        assert not backend.jit_pays(0.01)
        assert backend.jit_pays(backend.JIT_LOAD)    # forgone savings add up (ski rental)
    monkeypatch.setattr(backend, "_forgone", 0.0)
    assert backend.jit_pays(0.01)                   # a library process after a gaining call


def test_parallel_for_runs_small_jobs_on_the_calling_thread(monkeypatch):
    """Below SERIAL_WORK a job is one call on this thread; above, pieces on the pool
    cover the tasks once each."""
    import threading

    from convcli import threads

    monkeypatch.setattr(threads, "_threads", {**threads._threads, "count": 2})
    calls = []

    def kernel(start, stop):
        calls.append((start, stop, threading.get_ident()))
        return stop - start

    assert threads.parallel_for(kernel, 10, work=threads.SERIAL_WORK - 1) == [10]
    assert calls == [(0, 10, threading.get_ident())]
    calls.clear()
    assert sum(threads.parallel_for(kernel, 10, work=threads.SERIAL_WORK)) == 10
    assert sorted(c[:2] for c in calls)[0][0] == 0 and len(calls) > 1
    assert all(c[2] != threading.get_ident() for c in calls)
