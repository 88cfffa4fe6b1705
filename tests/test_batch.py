"""Batch apply: folders in, a mirrored folder out, failures reported, nothing lost."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from convcli.images import read_image


def make_tree(root: Path) -> dict:
    """A nested tree of good and bad images; returns {relative path: bytes} of every file."""
    rng = np.random.default_rng(0)
    (root / "a" / "b").mkdir(parents=True)
    for rel, size in (("top.png", 40), ("a/mid.png", 30), ("a/b/deep.png", 20), ("a/b/photo.jpg", 48)):
        Image.fromarray(rng.integers(0, 256, (size, size + 3, 3), dtype=np.uint8)).save(root / rel)
    good = (root / "top.png").read_bytes()
    (root / "corrupt.png").write_bytes(good[:40] + b"\x00" * 200 + good[240:])
    jpeg = (root / "a/b/photo.jpg").read_bytes()
    (root / "a" / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (root / "a" / "text.png").write_text("not an image\n")
    (root / "a" / "b" / "empty.png").write_bytes(b"")
    (root / "notes.txt").write_text("ignored: not an image extension\n")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


GOOD = ["top_sobel.png", "a/mid_sobel.png", "a/b/deep_sobel.png", "a/b/photo_sobel.jpg"]
BAD = ["corrupt.png", "a/truncated.jpg", "a/text.png", "a/b/empty.png"]


def outputs(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_batch_mirrors_the_tree_reports_failures_and_leaves_inputs_alone(run, tmp_path, jobs):
    src, out = tmp_path / "in", tmp_path / "out"
    before = make_tree(src)
    report_path = tmp_path / "report.json"
    result = run("apply", src, "-r", "-k", "sobel", "-o", out, "-j", jobs, "--report", report_path)
    assert result.exit_code == 1                      # some files failed
    assert outputs(out) == sorted(GOOD)
    for bad in BAD:
        assert bad.split("/")[-1] in result.stderr
    after = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert after == before
    report = json.loads(report_path.read_text())
    assert report["totals"]["done"] == 4 and report["totals"]["failed"] == 4
    statuses = {Path(f["source"]).relative_to(src).as_posix(): f for f in report["files"]}
    assert statuses["a/text.png"]["status"] == "failed" and "not an image" in statuses["a/text.png"]["error"]
    assert "empty" in statuses["a/b/empty.png"]["error"]
    assert "truncated" in statuses["a/truncated.jpg"]["error"]
    assert statuses["top.png"]["output_shape"] == [40, 43, 3]
    # the batch output equals the single-file command's
    single = tmp_path / "single.png"
    assert run("apply", src / "top.png", "-k", "sobel", "-o", single).exit_code == 0
    np.testing.assert_array_equal(read_image(out / "top_sobel.png").color, read_image(single).color)


def test_without_recursive_only_the_top_folder(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    result = run("apply", src, "-k", "sobel", "-o", out)
    assert outputs(out) == ["top_sobel.png"] and result.exit_code == 1   # corrupt.png fails


def test_all_good_exits_0_and_glob_exclude_and_format(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    result = run("apply", src, "-r", "-k", "box:3", "-o", out, "--glob", "*.png",
                 "--exclude", "corrupt.png", "--exclude", "text.png", "--exclude", "empty.png",
                 "--format", "tiff")
    assert result.exit_code == 0, result.output
    assert outputs(out) == ["a/b/deep_box-size3.tiff", "a/mid_box-size3.tiff", "top_box-size3.tiff"]
    result = run("apply", src, "-r", "-k", "box:3", "-o", tmp_path / "o2", "--exclude", "a", "--glob", "top*")
    assert result.exit_code == 0 and outputs(tmp_path / "o2") == ["top_box-size3.png"]


def test_existing_outputs_are_refused_skipped_or_overwritten(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    args = ["apply", src, "-r", "-k", "sobel", "-o", out, "--glob", "top.png", "--glob", "mid.png"]
    assert run(*args).exit_code == 0
    result = run(*args)
    assert result.exit_code == 2 and "already exists" in result.stderr and "--overwrite" in result.stderr
    stamp = (out / "top_sobel.png").stat().st_mtime_ns
    (out / "a" / "mid_sobel.png").unlink()
    result = run(*args, "--skip-existing")
    assert result.exit_code == 0 and (out / "a" / "mid_sobel.png").is_file()
    assert (out / "top_sobel.png").stat().st_mtime_ns == stamp
    assert run(*args, "--overwrite").exit_code == 0
    assert (out / "top_sobel.png").stat().st_mtime_ns != stamp


def test_a_read_only_output_is_a_failure_not_replaced(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    args = ["apply", src, "-k", "sobel", "-o", out, "--glob", "top.png"]
    assert run(*args).exit_code == 0
    target = out / "top_sobel.png"
    target.write_bytes(b"protected")
    target.chmod(0o444)
    result = run(*args, "--overwrite")
    assert result.exit_code == 1 and "read-only" in result.stderr
    assert target.read_bytes() == b"protected"


def test_output_inside_the_walked_input_is_refused_unless_excluded(run, tmp_path):
    src = tmp_path / "in"
    make_tree(src)
    result = run("apply", src, "-r", "-k", "sobel", "-o", src / "out")
    assert result.exit_code == 2 and "inside input folder" in result.stderr
    result = run("apply", src, "-k", "sobel", "-o", src)
    assert result.exit_code == 2
    result = run("apply", src, "-r", "-k", "sobel", "-o", src / "out", "--exclude", "out",
                 "--exclude", "*.jpg", "--glob", "top.png")
    assert result.exit_code == 0 and (src / "out" / "top_sobel.png").is_file()
    # a second run does not pick up its own outputs
    result = run("apply", src, "-r", "-k", "sobel", "-o", src / "out", "--exclude", "out",
                 "--glob", "top.png", "--overwrite")
    assert result.exit_code == 0 and outputs(src / "out") == ["top_sobel.png"]


def test_symlinked_folders_are_followed_only_when_asked_and_loops_stop(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    os.symlink(src / "a", src / "link")
    os.symlink(src, src / "a" / "loop")
    result = run("apply", src, "-r", "-k", "box:3", "-o", out, "--glob", "mid.png")
    assert outputs(out) == ["a/mid_box-size3.png"] and result.exit_code == 0
    result = run("apply", src, "-r", "-k", "box:3", "-o", tmp_path / "o2", "--glob", "mid.png",
                 "--follow-links")
    assert result.exit_code == 0
    assert outputs(tmp_path / "o2") == ["a/mid_box-size3.png", "link/mid_box-size3.png"]
    assert "loops back" in result.stderr


def test_fail_fast_stops_at_the_first_failure(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    make_tree(src)
    result = run("apply", src, "-r", "-k", "sobel", "-o", out, "-j", "1", "--fail-fast")
    assert result.exit_code == 1
    assert len(outputs(out)) < len(GOOD)         # the walk is sorted: a/b/empty.png fails early


def test_two_inputs_writing_one_output_is_refused(run, tmp_path):
    src = tmp_path / "in"
    make_tree(src)
    (src / "top.jpg").write_bytes((src / "a" / "b" / "photo.jpg").read_bytes())
    result = run("apply", src, "-k", "sobel", "-o", tmp_path / "out", "--format", "png")
    assert result.exit_code == 2 and "would both be written" in result.stderr


def test_missing_input_folder_is_a_usage_error(run, tmp_path):
    result = run("apply", tmp_path / "nowhere", tmp_path / "also", "-k", "sobel", "-o", tmp_path / "o")
    assert result.exit_code == 2 and "nowhere" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum, code, times", [
    (signal.SIGINT, 130, 1), (signal.SIGTERM, 143, 1), (signal.SIGHUP, 129, 1),
    (signal.SIGINT, 130, 2),                    # Ctrl-C twice: the cleanup is not cut short
])
def test_a_signal_mid_batch_leaves_only_complete_outputs_and_resumes(tmp_path, signum, code,
                                                                     times):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (384, 384, 3), dtype=np.uint8)
    for index in range(80):
        Image.fromarray(np.roll(base, index, axis=1)).save(src / f"img{index:03d}.png")
    command = [sys.executable, "-m", "convcli", "apply", str(src), "-k", "gaussian_5", "-k", "sobel",
               "-o", str(out), "-j", "2"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (out.is_dir() and any(out.glob("*+sobel.png"))):
        time.sleep(0.02)
    for _ in range(times):
        process.send_signal(signum)
        time.sleep(0.05)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    if times == 1 or "Aborted." not in stderr:  # a second Ctrl-C may cut the summary short
        assert "Interrupted" in stderr and "--skip-existing" in stderr
    assert "Traceback" not in stderr and "Error" not in stderr
    finished = sorted(out.iterdir())
    assert 0 < len(finished) < 80, "the batch should have been stopped midway"
    assert all(p.name.endswith("_gaussian_5+sobel.png") for p in finished)   # no temporaries
    for path in finished:
        assert read_image(path).color.shape == (384, 384, 3)                  # each complete
    resumed = subprocess.run(command + ["--skip-existing"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert len(list(out.iterdir())) == 80


@pytest.mark.parametrize("make, words", [
    (lambda root: (root / "x.png").mkdir(), "x.png is a folder, not an image; no file in"),
    (lambda root: (root / "empty").mkdir(), "no file in"),
])
def test_a_batch_that_finds_nothing_is_a_usage_error(run, tmp_path, make, words):
    make(tmp_path)
    folder = next(p for p in tmp_path.iterdir() if p.is_dir())
    result = run("apply", folder, "-k", "sobel", "-o", f"{tmp_path / 'out'}/")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: no input files: ") and words in result.stderr
    assert "--recursive walks them" in result.stderr and not (tmp_path / "out").exists()


def test_a_glob_that_matches_nothing_names_the_pattern(run, tmp_path):
    make_tree(tmp_path / "in")
    result = run("apply", tmp_path / "in", "-r", "--glob", "*.gif", "-k", "sobel", "-o",
                 tmp_path / "out")
    assert result.exit_code == 2
    assert result.stderr == f"Error: no input files: no file in {tmp_path / 'in'} matches *.gif\n"


def test_without_recursive_the_skipped_subfolders_are_counted(run, tmp_path):
    make_tree(tmp_path / "in")
    result = run("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out")
    assert result.exit_code == 1        # corrupt.png at the top fails
    assert (f"Warning: {tmp_path / 'in'}: 6 image file(s) in 1 subfolder(s) not walked; use "
            "--recursive to walk subfolders") in result.stderr


@pytest.mark.parametrize("output, words", [
    ("out.png", "out.png names a file, but several inputs or a folder write a folder"),
    ("", "is empty; give an output file, or a folder as DIR/"),
])
def test_batch_output_that_is_no_folder_is_refused(run, tmp_path, output, words):
    make_tree(tmp_path / "in")
    result = run("apply", tmp_path / "in", "-k", "sobel", "-o", output)
    assert result.exit_code == 2 and words in result.stderr and result.stderr.count("\n") == 1
    assert not Path("out.png").exists()


def test_the_progress_bar_runs_no_thread_for_forked_workers_to_inherit():
    import threading

    from convcli.cli import _batch_progress

    before = set(threading.enumerate())
    progress = _batch_progress(3)
    progress.start()
    try:
        assert set(threading.enumerate()) == before
    finally:
        progress.stop()
