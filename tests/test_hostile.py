"""Hostile and malformed input, by class: outputs that are inputs, YAML bombs, absurd sizes,
non-finite numbers, malformed specs, names from files, stopped workers.

Each case asserts the refusal itself (exit code, the words of the one line, the input left
byte-identical), not merely the absence of a traceback.
"""

import math
import os
import signal
import time

import numpy as np
import pytest

from convcli.errors import ParameterError
from convcli.files import check_distinct, check_yaml_shape, temporaries
from convcli.limits import MAX_ALIAS_NODES, MAX_WEIGHTS, MAX_YAML_DEPTH
from convcli.matrix import equivalent_matrix, matrix_nonzeros
from convcli.plan import make_plan


def one_line(result, code=2):
    assert result.exit_code == code, result.output
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    return result.stderr


# ----------------------------------------------------------------------------------------
# Outputs that would destroy inputs or each other


SPELLINGS = {
    "same": lambda d: d / "in.png",
    "dot-slash": lambda d: d / "." / "in.png",
    "dot-dot": lambda d: d / "sub" / ".." / "in.png",
    "trailing slash": lambda d: f"{d / 'in.png'}/",
    "symlink": lambda d: d / "link.png",
    "hard link": lambda d: d / "hard.png",
    "case": lambda d: d / "IN.png",
}


@pytest.fixture
def folder(samples, tmp_path):
    work = tmp_path / "work"
    (work / "sub").mkdir(parents=True)
    (work / "in.png").write_bytes((samples / "camera.png").read_bytes())
    os.symlink(work / "in.png", work / "link.png")
    os.link(work / "in.png", work / "hard.png")
    return work


@pytest.mark.parametrize("flag, spelling", [(flag, spelling) for flag in ("--report", "-o")
                                             for spelling in SPELLINGS
                                             if (flag, spelling) != ("-o", "trailing slash")])
def test_an_output_spelt_any_way_is_never_the_input(run, folder, spelling, flag):
    """(-o DIR/ names a folder to write into, so it has no trailing-slash spelling.)"""
    before = (folder / "in.png").read_bytes()
    other = "--report" if flag == "-o" else "-o"
    target = SPELLINGS[spelling](folder)
    args = {flag: target, other: folder / ("r.json" if other == "--report" else "out.png")}
    result = run("apply", folder / "in.png", "-k", "box:3", *(x for kv in args.items() for x in kv))
    assert "never overwrites its inputs" in one_line(result) and flag in result.stderr
    assert (folder / "in.png").read_bytes() == before
    assert not (folder / "out.png").exists() and not (folder / "r.json").exists()


@pytest.mark.parametrize("command", [
    ("apply", "{d}/in.png", "-k", "box:3", "-o", "{d}/o.png", "--report", "{d}/./o.png"),
    ("matrix", "--input", "4x4", "-k", "box:3", "--png", "{d}/m.png", "--npy", "{d}/sub/../m.png"),
])
def test_two_outputs_of_one_run_never_share_a_file(run, folder, command):
    result = run(*(a.format(d=folder) for a in command))
    assert "two outputs of one run cannot share a file" in one_line(result)
    assert not (folder / "o.png").exists() and not (folder / "m.png").exists()


@pytest.mark.parametrize("command, changed", [
    (("learn", "{d}/in.png", "{d}/in.png", "-s", "3", "--method", "gd", "--epochs", "2",
      "--plot", "{d}/link.png"), "in.png"),
    (("learn", "{d}/in.png", "{d}/in.png", "-s", "3", "--save", "{d}/in.png"), "in.png"),
    (("matrix", "--input", "4x4", "-k", "@{d}/k.npy", "--npy", "{d}/k.npy"), "k.npy"),
    (("kernels", "--kernels", "{d}/cat.yaml", "show", "mine", "--png", "{d}/CAT.yaml"), "cat.yaml"),
    (("apply", "{d}/in.png", "-k", "@{d}/k.npy", "-o", "{d}/k.npy"), "k.npy"),
])
def test_every_command_refuses_to_write_over_what_it_reads(run, folder, command, changed):
    np.save(folder / "k.npy", np.ones((3, 3)))
    (folder / "cat.yaml").write_text("kernels:\n  mine: {weights: [[1, 2]]}\n")
    before = (folder / changed).read_bytes()
    result = run(*(a.format(d=folder) for a in command))
    assert "never overwrites its inputs" in one_line(result)
    assert (folder / changed).read_bytes() == before


def test_a_batch_report_inside_the_input_folder_cannot_replace_an_input(run, folder, tmp_path):
    before = (folder / "in.png").read_bytes()
    result = run("apply", folder, "-k", "box:3", "-o", tmp_path / "out", "--report",
                 folder / "hard.png")
    assert "never overwrites its inputs" in one_line(result)
    assert (folder / "in.png").read_bytes() == before and not (tmp_path / "out").exists()


def test_check_distinct_allows_distinct_files(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    check_distinct([("input", tmp_path / "a.png")], [("-o", tmp_path / "b.png"),
                                                      ("--report", None)])
    with pytest.raises(ParameterError, match="same file as input"):
        check_distinct([("input", tmp_path / "a.png")], [("-o", tmp_path / "A.PNG")])


# ----------------------------------------------------------------------------------------
# YAML: alias bombs, deep nesting, recursion


def laughs(levels: int = 9) -> str:
    lines = ['  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


BOMB = "kernels:\n  ok: {weights: [[1]]}\nunused:\n" + laughs()
DEEP = "kernels:\n  ok: {weights: [[1]], learned: " + "[" * (MAX_YAML_DEPTH + 5) + "1" + \
    "]" * (MAX_YAML_DEPTH + 5) + "}\n"
RECURSIVE = "kernels:\n  ok: {weights: [[1]]}\nloop: &a [1, *a]\n"
NET_BOMB = "name: x\ninput: [3, 8, 8]\nlayers:\n  - {type: relu}\nextra:\n" + laughs()


@pytest.mark.parametrize("body, words", [
    (BOMB, f"aliases expand the file by more than {MAX_ALIAS_NODES:,} nodes"),
    (DEEP, f"nested more than {MAX_YAML_DEPTH} levels deep"),
    (RECURSIVE, "alias *a refers to a node that contains it"),
])
@pytest.mark.parametrize("use", ["catalogue", "bank"])
def test_yaml_bombs_are_refused_quickly_naming_the_file(run, tmp_path, body, words, use):
    path = tmp_path / "bomb.yaml"
    path.write_text(body)
    start = time.perf_counter()
    args = ("kernels", "--kernels", path) if use == "catalogue" else \
        ("kernels", "show", f"@{path}:ok")
    stderr = one_line(run(*args))
    assert time.perf_counter() - start < 10
    assert words in stderr and str(path) in stderr


def test_a_network_file_bomb_is_refused_naming_the_file(run, tmp_path):
    path = tmp_path / "net.yaml"
    path.write_text(NET_BOMB)
    stderr = one_line(run("receptive-field", path))
    assert f"network {path}" in stderr and "aliases expand" in stderr


def test_a_few_aliases_are_fine():
    check_yaml_shape("a: &a [1, 2, 3]\nb: *a\nc: *a\n")


def test_a_bank_of_banks_cannot_multiply_past_the_weight_limit(run, tmp_path):
    levels = ["  b0: {weights: [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}"]
    levels += [f"  b{i}: {{bank: [{', '.join([f'b{i - 1}'] * 8)}]}}" for i in range(1, 9)]
    path = tmp_path / "banks.yaml"
    path.write_text("kernels:\n" + "\n".join(levels) + "\n")
    stderr = one_line(run("kernels", "--kernels", path))
    assert f"over the limit of {MAX_WEIGHTS:,}" in stderr and "bank" in stderr


# ----------------------------------------------------------------------------------------
# Absurd sizes


@pytest.mark.parametrize("spec, shown", [
    ("box:1000000", "a 1000000×1000000 kernel"),
    ("box:3x100000000", "a 3×100000000 kernel"),
    ("gaussian:sigma=1e9", "a 6000000001×6000000001 kernel"),
    ("gaussian:sigma=1,size=1e9", "a 1000000000×1000000000 kernel"),
    ("log:sigma=1e5", "a 600001×600001 kernel"),
    ("dog:sigma1=1,sigma2=1e5", "a 600001×600001 kernel"),
    ("motion:length=1e6", "a 1000001×1000001 kernel"),
    ("unsharp:sigma=1e9", "a 6000000001×6000000001 kernel"),
])
def test_huge_parametric_kernels_are_refused_before_allocating(run, spec, shown):
    stderr = one_line(run("kernels", "show", spec))
    assert shown in stderr and f"over the limit of {MAX_WEIGHTS:,}" in stderr


def test_padding_that_implies_a_huge_output_is_refused(run, samples, tmp_path):
    stderr = one_line(run("apply", samples / "camera.png", "-k", "box:3", "-o",
                          tmp_path / "o.png", "--padding", "100000"))
    assert stderr.startswith("Error: --padding 100000,100000,100000,100000 on a 1×")
    assert "over the limit of 1,073,741,824" in stderr and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("extra", [(), ("--sparse", "m.npz"), ("--im2col",), ("--npy", "m.npy")])
def test_matrix_refuses_huge_inputs_pointing_at_a_smaller_one(run, tmp_path, extra):
    stderr = one_line(run("matrix", "--input", "4096x4096", "-k", "box:3",
                          *(str(tmp_path / e) if "." in e else e for e in extra)))
    assert "150,847,524" in stderr and "smaller --input" in stderr
    assert not list(tmp_path.iterdir())


def test_stats_only_counts_with_big_integers(run):
    import json

    result = run("stats", "--input", "3x1000000000x1000000000", "-k", "box:3", "--json")
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    side = 10**9 - 2
    assert stats["output_shape"] == [3, side, side]
    assert stats["dense_in"] == 3 * 10**18
    assert stats["dense_weights"] == 3 * 10**18 * 3 * side * side
    assert stats["matrix_nonzeros"] == 3 * side * side * 9
    assert stats["conv_params"] == 27


@pytest.mark.parametrize("shape, kernel, padding, stride, dilation, pad_mode", [
    ((1, 7, 6), (3, 3), (1, 1, 1, 1), (1, 1), (1, 1), "zeros"),
    ((2, 5, 9), (3, 2), (2, 3, 0, 4), (2, 1), (1, 2), "reflect"),
    ((1, 4, 4), (3, 3), (5, 5, 5, 5), (1, 1), (1, 1), "circular"),
    ((1, 3, 8), (2, 3), (4, 1, 3, 6), (1, 3), (2, 1), "symmetric"),
    ((1, 6, 2), (5, 1), (6, 6, 0, 0), (2, 1), (1, 1), "replicate"),
])
def test_counted_nonzeros_match_the_built_matrix(shape, kernel, padding, stride, dilation,
                                                 pad_mode):
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((2, shape[0], *kernel))
    plan = make_plan(shape, weight.shape, stride, padding, dilation, 1, pad_mode)
    dense = equivalent_matrix(shape, weight, stride, padding, dilation, 1, pad_mode)
    assert matrix_nonzeros(plan, weight) == np.count_nonzero(dense)


def test_stats_cout_that_implies_huge_weights_is_refused(run):
    stderr = one_line(run("stats", "--input", "3x8x8", "-k", "box:3", "--cout", "1000000000"))
    assert stderr.startswith("Error: --cout 1000000000 filters of 3×3×3") and "weights" in stderr


def test_a_network_with_a_huge_layer_is_refused_before_allocating(run, samples, tmp_path):
    net = tmp_path / "net.yaml"
    net.write_text("name: big\ninput: [3, 8, 8]\nlayers:\n  - {type: conv, out: 100000000}\n")
    stderr = one_line(run("forward", samples / "astronaut.png", net, "-o", tmp_path / "m/"))
    assert "layer 1 conv: 100000000 filters of 3×3×3" in stderr and "over the limit" in stderr


@pytest.mark.parametrize("shape, what", [((40000, 30000), "image"), ((3000, 3000), "kernel")])
def test_npy_headers_are_checked_before_loading(run, tmp_path, samples, shape, what):
    path = tmp_path / "big.npy"
    with open(path, "wb") as out:
        np.lib.format.write_array_header_1_0(out, {"descr": "|u1" if what == "image" else "<f8",
                                                   "fortran_order": False, "shape": shape})
        out.truncate(out.tell() + math.prod(shape) * (1 if what == "image" else 8))
    args = ("apply", path, "-k", "box:3", "-o", tmp_path / "o.npy") if what == "image" else \
        ("apply", samples / "camera.png", "-k", f"@{path}", "-o", tmp_path / "o.png")
    stderr = one_line(run(*args))
    assert f"an array of shape {shape}" in stderr and "over the limit" in stderr


# ----------------------------------------------------------------------------------------
# Non-finite numbers


@pytest.mark.parametrize("option, value", [
    ("--bias", "nan"), ("--bias", "inf"), ("--bias", "1,-inf"), ("--bias", "1e400"),
])
def test_non_finite_bias_is_refused(run, samples, tmp_path, option, value):
    stderr = one_line(run("apply", samples / "camera.png", "-k", "box:3", "-o",
                          tmp_path / "o.png", option, value))
    assert "must be finite" in stderr and option in stderr and not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("option, value", [
    ("--ridge", "nan"), ("--ridge", "inf"), ("--lr", "inf"), ("--lr", "nan"), ("--holdout", "nan"),
])
def test_non_finite_learning_options_are_refused(run, samples, option, value):
    stderr = one_line(run("learn", samples / "camera.png", samples / "camera.png", "-s", "3",
                          option, value))
    assert "is not a finite number" in stderr and option in stderr


@pytest.mark.parametrize("spec, words", [
    ("gaussian:sigma=inf", "sigma=inf is not a finite number"),
    ("gaussian:sigma=nan", "sigma=nan is not a finite number"),
    ("motion:length=5,angle=nan", "angle=nan is not a finite number"),
    ("box:inf", "size=inf is not a finite number"),
    ("[[1,2],[3,4]]*1e400", "is not a finite number"),
    ("[[1e300,1]]*1e300", "overflows to infinity"),
])
def test_non_finite_spec_values_are_refused(run, spec, words):
    assert words in one_line(run("kernels", "show", spec))


@pytest.mark.parametrize("entry, words", [
    ("{weights: [[1, 1e400]]}", "holds NaN or infinity"),
    ("{weights: [[1, 2]], scale: 1e400}", "is not a finite number"),
    ("{weights: [[1, 2]], scale: .inf}", "is not a finite number"),
    ("{weights: [[1e300, 2]], scale: 1e300}", "overflow to infinity"),
    ("{weights: [[1, 2]], bias: .nan}", "is not a finite number"),
    ("{weights: [[1, 2]], bias: '1e999'}", "is not a finite number"),
])
def test_non_finite_catalogue_values_are_refused(run, tmp_path, entry, words):
    path = tmp_path / "cat.yaml"
    path.write_text(f"kernels:\n  k: {entry}\n")
    stderr = one_line(run("kernels", "--kernels", path))
    assert words in stderr and "entry 'k'" in stderr


# ----------------------------------------------------------------------------------------
# Malformed specs


@pytest.mark.parametrize("spec", ["[1,[2,3]]", "[[1,2];[3,4]]", "[1,2] 3", "1 2; [3]",
                                  "[[1,2],[3,4]]]", "1,,2", "[1,2,]"])
def test_malformed_matrices_are_refused_with_the_forms(run, spec):
    stderr = one_line(run("kernels", "show", spec))
    assert "a matrix is [[a,b],[c,d]]" in stderr or "brackets do not balance" in stderr


@pytest.mark.parametrize("spec, words", [
    ("gaussian:sigma=2,sigma=3", "sigma is given twice"),
    ("gaussian:2,sigma=3", "sigma is given twice"),
    ("box:3x", "is not a number; the form is box:size=V,width=V"),
    ("gaussian:sigma=2x", "is not a number; the form is gaussian:sigma=V,size=V"),
])
def test_malformed_parametric_specs_are_refused_with_the_form(run, spec, words):
    assert words in one_line(run("kernels", "show", spec))


@pytest.mark.parametrize("option, value", [
    ("--padding", "1x"), ("--padding", "x1"), ("--padding", "1,,2,3"), ("--padding", "1.5"),
    ("--padding", "1x2x3"), ("--stride", "2x"), ("--stride", "1_0"), ("--dilation", "2,"),
    ("--bias", "1,,2"), ("--input", "3x"), ("--input", "3xx4"),
])
def test_malformed_option_values_are_refused(run, option, value):
    args = ("stats", "-k", "box:3") + (() if option == "--input" else ("--input", "8x8"))
    if option == "--bias":
        args = ("apply", "x.png", "-k", "box:3", "-o", "y.png")
    stderr = one_line(run(*args, option, value))
    assert f"Invalid value for '{option}'" in stderr and repr(value) in stderr


# ----------------------------------------------------------------------------------------
# stats --input H×W×C


@pytest.mark.parametrize("text, shape, noted", [
    ("224x224x3", [3, 224, 224], True),
    ("64x48x1", [1, 64, 48], True),
    ("3x224x224", [3, 224, 224], False),
    ("4x4x3", [4, 4, 3], False),
    ("16x16x16", [16, 16, 16], False),
    ("224x224", [1, 224, 224], False),
])
def test_stats_reads_hxwxc_where_unambiguous(run, text, shape, noted):
    import json

    result = run("stats", "--input", text, "-k", "box:1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["input_shape"] == shape
    assert ("read as H×W×C" in result.stderr) == noted


# ----------------------------------------------------------------------------------------
# Names from files


@pytest.mark.parametrize("name", ["../../evil", "a/b", ".hidden", "x y", "[red]r"])
def test_layer_names_that_could_leave_the_output_folder_are_refused(run, samples, tmp_path,
                                                                     name):
    net = tmp_path / "net.yaml"
    net.write_text(f"name: n\ninput: [3, 8, 8]\nlayers:\n  - {{type: relu, name: '{name}'}}\n")
    stderr = one_line(run("forward", samples / "astronaut.png", net, "-o",
                          tmp_path / "maps/"))
    assert f"name {name!r}: a name is letters" in stderr
    assert not (tmp_path / "maps").exists() and not (tmp_path / "evil.npy").exists()


def test_names_and_descriptions_from_files_are_shown_as_text(run, tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text("kernels:\n  marked: {weights: [[1]], description: '[red]boom[/red] [bold]x',"
                    " source: '[link=http://e]s[/link]'}\n")
    result = run("kernels", "--kernels", path, "show", "marked")
    assert result.exit_code == 0
    assert "[red]boom[/red] [bold]x" in result.stdout and "[link=http://e]s[/link]" in result.stdout
    listing = run("kernels", "--kernels", path)
    assert "[red]boom[/red]" in listing.stdout


# ----------------------------------------------------------------------------------------
# A worker told to stop


def test_a_stopped_worker_exits_at_once_without_a_traceback(capfd, tmp_path):
    from convcli.batch import STOPPED, WorkerPool
    from convcli.kernels import resolve_kernel
    from convcli.pipeline import ApplyJob

    pool = WorkerPool(1, ApplyJob(kernels=(resolve_kernel("box:3"),)), 1)
    process, _ = pool._workers[0]
    time.sleep(0.2)
    os.kill(process.pid, signal.SIGTERM)
    process.join(5)
    pool.close()
    assert process.exitcode == STOPPED
    assert capfd.readouterr().err == ""


def test_temporaries_are_found_by_the_one_pattern(tmp_path):
    from convcli.files import atomic_write

    target = tmp_path / "o[1].png"

    def fail(out):
        out.write(b"half")
        assert temporaries(target) and temporaries(target)[0].name.startswith(".o[1].png.")
        raise OSError(28, "No space left on device")

    with pytest.raises(Exception, match="No space left"):
        atomic_write(target, fail)
    assert temporaries(target) == [] and not target.exists()


@pytest.mark.parametrize("args, words", [
    (("matrix", "--input", "4x4", "-k", "box:3", "--seed", "-1"), "-1 is not in the range x>=0"),
    (("apply", "x.png", "-k", "box:3", "-o", "y.png", "--threads", "100000"),
     "100000 is not in the range 1<=x<=1024"),
    (("apply", "x.png", "-k", "box:3", "-o", "y/", "-j", "100000"),
     "100000 is not in the range 1<=x<=1024"),
    (("learn", "x.png", "y.png", "-s", "3", "--method", "gd", "--epochs", "1000000000"),
     "1000000000 is not in the range 1<=x<=1000000"),
])
def test_counts_that_mean_time_or_processes_are_bounded(run, args, words):
    assert words in one_line(run(*args))


def test_learning_a_huge_kernel_is_refused_before_building_equations(run, samples):
    stderr = one_line(run("learn", samples / "camera.png", samples / "camera.png", "-s", "200"))
    assert stderr.startswith("Error: --size 200×200 on 1 channel(s) gives 40,001 unknowns")
    assert "1,600,080,001 entries, over the limit of 67,108,864" in stderr


def test_a_heatmap_too_large_to_draw_is_refused_before_printing(run, tmp_path):
    result = run("kernels", "show", "box:2000", "--png", tmp_path / "k.png", "--cell", "200")
    assert one_line(result).startswith("Error: --cell 200 pixels per weight of 1 2000×2000")
    assert result.stdout == "" and not (tmp_path / "k.png").exists()


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels_are_refused(run, tmp_path, value):
    pixels = np.ones((8, 8), np.float32)
    pixels[2, 3] = value
    np.save(tmp_path / "x.npy", pixels)
    stderr = one_line(run("apply", tmp_path / "x.npy", "-k", "box:3", "-o", tmp_path / "y.npy"))
    assert "1 of its values is NaN or infinity" in stderr and not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("spec, got", [("gaussian:sigma=1e-300", "got nan"),
                                       ("[[1e308,1e308]]", "got 1e+308"),
                                       ("[[1, 2e21]]", "got 2e+21"),
                                       ("log:sigma=1e-200", "got nan")])
def test_kernels_whose_weights_overflow_float32_are_refused(run, samples, tmp_path, spec, got):
    """Finite parameters whose weights are not finite, or too large for float32 sums: one
    line, no numpy warnings, nothing written."""
    stderr = one_line(run("apply", samples / "camera.png", "-k", spec, "-o", tmp_path / "o.png"))
    assert "weights must be finite and at most 1e+20 in magnitude" in stderr and got in stderr
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("command", ["train", "visualize", "attack", "attack-change"])
def test_the_cnn_commands_never_overwrite_their_inputs(run, samples, command):
    """train's data, visualize's weights (through a link), attack's image, and attack's
    change picture landing on its image: each refused, every input byte-identical."""
    nets = samples / "nets"
    net, weights = nets / "shapes_cnn.yaml", nets / "shapes_cnn.npz"
    data, image = samples / "shapes" / "shapes.npz", samples / "shapes" / "a_change.png"
    image.write_bytes((samples / "shapes" / "bar_45.png").read_bytes())
    (samples / "w.png").symlink_to(weights)
    args = {"train": ["train", data, "--net", net, "-o", data, "--epochs", "1"],
            "visualize": ["visualize", net, "--weights", weights, "--layer", "conv1",
                          "--channel", "0", "-o", samples / "w.png"],
            "attack": ["attack", net, "--weights", weights, image, "-o", image],
            "attack-change": ["attack", net, "--weights", weights, image, "-o",
                              image.with_name("a.png")]}[command]
    before = {p: p.read_bytes() for p in (net, weights, data, image)}
    stderr = one_line(run(*args))
    assert "convcli never overwrites its inputs" in stderr
    assert all(p.read_bytes() == b for p, b in before.items())
    assert not image.with_name("a.png").exists()
