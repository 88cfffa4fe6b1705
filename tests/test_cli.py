"""The command line: apply, kernels, errors and start-up."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convcli import conv2d
from convcli.images import read_image
from convcli.kernels import Catalogue


def test_help_lists_the_commands(run):
    result = run("--help")
    assert result.exit_code == 0
    assert "apply" in result.output and "kernels" in result.output


@pytest.mark.parametrize("command", [["apply"], ["kernels"], ["kernels", "show"], ["stats"],
                                     ["matrix"], ["learn"], ["receptive-field"],
                                     ["animate"]])
def test_every_command_has_help(run, command):
    result = run(*command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output


@pytest.mark.parametrize("argv", [["--help"], ["kernels"], ["apply", "--help"],
                                  ["receptive-field", "samples/nets/vgg16.yaml", "--json"]])
def test_commands_that_do_not_convolve_do_not_import_numba(argv):
    code = ("import sys; from convcli.cli import cli; "
            f"cli.main({argv!r}, standalone_mode=False); "
            "sys.exit(3 if 'numba' in sys.modules else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr


def test_python_dash_m_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "convcli", "--version"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "convcli" in result.stdout


def test_apply_sobel_is_the_magnitude_of_sobel_x_and_y_clipped(run, samples, tmp_path):
    out = tmp_path / "out" / "sobel.png"
    result = run("apply", samples / "astronaut.png", "-k", "sobel", "-o", out)
    assert result.exit_code == 0, result.output
    assert "clipped" in result.stdout
    image = read_image(samples / "astronaut.png").color.astype(np.float64)
    planes = image.transpose(2, 0, 1)
    sobel = Catalogue.load().get("sobel").weights
    gx = conv2d(planes[:, None], sobel[0][None, None], padding="same", pad_mode="reflect")[:, 0]
    gy = conv2d(planes[:, None], sobel[1][None, None], padding="same", pad_mode="reflect")[:, 0]
    expected = np.clip(np.rint(np.hypot(gx, gy)), 0, 255).transpose(1, 2, 0)
    got = read_image(out).color
    assert got.dtype == np.uint8 and got.shape == image.shape
    # float32 arithmetic may round a value that sits on .5 the other way
    assert np.abs(got.astype(int) - expected).max() <= 1
    assert np.mean(got == expected) > 0.999


def test_apply_signed_kernel_writes_absolute_values(run, tmp_path):
    from PIL import Image
    step = np.zeros((8, 8), np.uint8)
    step[:, 4:] = 200
    Image.fromarray(step).save(tmp_path / "step.png")
    result = run("apply", tmp_path / "step.png", "-k", "sobel_x", "-o", tmp_path / "edge.png")
    assert result.exit_code == 0, result.output
    edge = read_image(tmp_path / "edge.png").color[:, :, 0]
    # Sobel x on a step of 200: 4·200 = 800 on both sides of the edge, clipped to 255.
    assert (edge[:, 3:5] == 255).all() and (edge[:, :3] == 0).all() and (edge[:, 5:] == 0).all()


def test_apply_smoothing_rounds_to_nearest(run, tmp_path):
    from PIL import Image
    image = np.zeros((5, 5), np.uint8)
    image[2, 2] = 14          # box blur: 14/9 = 1.56 → 2 (truncation would give 1)
    Image.fromarray(image).save(tmp_path / "dot.png")
    result = run("apply", tmp_path / "dot.png", "-k", "box_blur_3", "-o", tmp_path / "blur.png")
    assert result.exit_code == 0, result.output
    blur = read_image(tmp_path / "blur.png").color[:, :, 0]
    assert (blur[1:4, 1:4] == 2).all() and blur.sum() == 18


def test_apply_keeps_alpha_unfiltered(run, samples, tmp_path):
    out = tmp_path / "blur.png"
    assert run("apply", samples / "chelsea_alpha.png", "-k", "gaussian_5", "-o", out).exit_code == 0
    source, result = read_image(samples / "chelsea_alpha.png"), read_image(out)
    np.testing.assert_array_equal(result.alpha, source.alpha)
    assert result.color.shape == source.color.shape


def test_apply_keeps_16_bit_depth(run, samples, tmp_path):
    out = tmp_path / "id.png"
    assert run("apply", samples / "astronaut_gray16.png", "-k", "identity", "-o", out).exit_code == 0
    np.testing.assert_array_equal(read_image(out).color, read_image(samples / "astronaut_gray16.png").color)


def test_unknown_kernel_suggests_names_on_one_line(run, samples, tmp_path):
    result = run("apply", samples / "camera.png", "-k", "sobel_xx", "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "did you mean sobel_x" in result.stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("args, code, words", [
    (["--stride", "0"], 2, "--stride"),
    (["--padding", "lots"], 2, "--padding"),
    (["--pad-mode", "bogus"], 2, "--pad-mode"),
    (["--range", "loud"], 2, "--range"),
])
def test_bad_options_exit_2_with_one_line(run, samples, tmp_path, args, code, words):
    result = run("apply", samples / "camera.png", "-k", "sobel", "-o", tmp_path / "o.png", *args)
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and words in result.stderr
    assert not (tmp_path / "o.png").exists()


def test_missing_input_exits_1_naming_it(run, tmp_path):
    result = run("apply", tmp_path / "nope.png", "-k", "sobel", "-o", tmp_path / "o.png")
    assert result.exit_code == 1 and "nope.png" in result.stderr
    assert result.stderr.count("\n") == 1


def test_output_equal_to_input_is_refused(run, samples):
    before = (samples / "camera.png").read_bytes()
    result = run("apply", samples / "camera.png", "-k", "sobel", "-o", samples / "camera.png")
    assert result.exit_code == 2 and "never overwrites its input" in result.stderr
    assert (samples / "camera.png").read_bytes() == before


def test_kernels_lists_the_catalogue(run):
    result = run("kernels")
    assert result.exit_code == 0
    for name in ("identity", "box_blur_3", "gaussian_5", "sharpen", "sobel_x", "sobel_y", "sobel",
                 "laplacian"):
        assert name in result.stdout


def test_kernels_show_prints_weights(run):
    result = run("kernels", "show", "gaussian_5")
    assert result.exit_code == 0
    assert "1/256" in result.stdout and "36" in result.stdout


@pytest.mark.slow
def test_it_runs_where_numba_can_cache_nothing(tmp_path):
    root = Path(__file__).resolve().parent.parent
    package = tmp_path / "package"
    shutil.copytree(root / "convcli", package / "convcli",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(root / "kernels.yaml", package)
    for folder in ("convcli", "convcli/_core"):                 # a file: no cache in the tree
        (package / folder / "__pycache__").write_text("")
    blocked = tmp_path / "blocked"
    blocked.write_text("")                                    # nor under $HOME or $XDG_CACHE_HOME
    env = {**os.environ, "PYTHONPATH": str(package), "HOME": str(blocked),
           "XDG_CACHE_HOME": str(blocked / "cache"), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("NUMBA_CACHE_DIR", None)
    source = root / "samples" / "camera.png"
    result = subprocess.run([sys.executable, "-m", "convcli", "apply", "-k", "sobel_x", str(source),
                             "--algo", "direct", "-o", str(tmp_path / "out.npy")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 1 and "NUMBA_CACHE_DIR" in warnings[0]
    image = read_image(source).color.transpose(2, 0, 1).astype(np.float32)
    expected = conv2d(image, Catalogue.load().get("sobel_x").weights[None], padding=1,
                      pad_mode="reflect")
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected[0], rtol=1e-6, atol=1e-4)


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("args", [["kernels"], ["stats", "--input", "3x8x8", "-k", "box:3", "--json"]])
def test_a_full_stdout_is_one_line_exit_1(args):
    """Data to a full device (``> /dev/full``): one line on stderr, no traceback."""
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "convcli", *args], stdout=full,
                                stderr=subprocess.PIPE, text=True)
    assert result.returncode == 1
    assert result.stderr == "Error: standard output: No space left on device\n"


def test_convcli_alone_prints_its_help_without_error(run):
    result = run()
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ")
    assert "COMMAND [ARGS]" in result.stdout and "apply" in result.stdout
    assert "Error" not in result.stdout + result.stderr


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_pipe_or_device_is_named_for_what_it_is(run, tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.png"
        os.mkfifo(path)
        words = "is a pipe (FIFO), not an image file"
    else:
        path, words = Path("/dev/zero"), "is a character device, not an image file"
    result = run("apply", path, "-k", "sobel", "-o", tmp_path / "o.png")
    assert result.exit_code == 1 and result.stderr == f"Error: {path}: {words}\n"


def test_an_output_without_extension_suggests_a_folder(run, samples, tmp_path):
    result = run("apply", samples / "camera.png", "-k", "sobel", "-o", tmp_path / "newdir")
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith(f"or write {tmp_path / 'newdir'}/ for a folder")


def test_a_numba_environment_it_refuses_is_one_line(samples, tmp_path):
    env = {**os.environ, "NUMBA_NUM_THREADS": "0"}
    result = subprocess.run([sys.executable, "-m", "convcli", "apply", samples / "camera.png",
                             "-k", "sobel", "--algo", "direct", "-o", tmp_path / "o.png"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 1 and not (tmp_path / "o.png").exists()
    assert result.stderr == ("Error: numba cannot start: Number of threads specified must be "
                             "> 0. (check NUMBA_NUM_THREADS and the other NUMBA_* variables)\n")


def test_ctrl_c_while_the_cli_loads_is_one_line_and_exit_130(monkeypatch, capsys):
    """A Ctrl-C during the imports, before click runs, ends as one during a run does."""
    import builtins

    from convcli.__main__ import run

    real_import = builtins.__import__

    def interrupted(name, *args, **kwargs):
        if name == "cli" or name.endswith(".cli"):
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as stopped:
        run()
    assert stopped.value.code == 130
    assert capsys.readouterr().err == "Interrupted.\n"
