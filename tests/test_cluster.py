"""Batch apply on a Dask cluster: a real scheduler and two workers on 127.0.0.1, started
for this module and torn down after it; every wait is bounded."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import faults
from test_batch import BAD, GOOD, make_tree, outputs

distributed = pytest.importorskip("distributed")

FAULTS = Path(faults.__file__)
#: The settings the README asks for (worker-saturation: 1.0, allowed-failures: 1).
SCHEDULER_ENV = {"DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
                 "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_worker(address: str, cwd: Path, log: Path) -> subprocess.Popen:
    """A worker (with a nanny, which restarts it if it dies) carrying the test faults."""
    return subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
         "--host", "127.0.0.1", "--no-dashboard", "--preload", str(FAULTS)],
        cwd=cwd, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def _stop(processes) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Cluster:
    def __init__(self, root: Path):
        self.root = root
        self.cwd = root / "workers"             # the workers' working folder
        self.cwd.mkdir()
        self.address = f"tcp://127.0.0.1:{_free_port()}"
        self.processes = [subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
             "--port", self.address.rsplit(":", 1)[1], "--no-dashboard"],
            env={**os.environ, **SCHEDULER_ENV}, stdout=(root / "scheduler.log").open("wb"),
            stderr=subprocess.STDOUT)]
        self.processes += [_start_worker(self.address, self.cwd, root / f"worker{i}.log")
                           for i in range(2)]
        self.client = distributed.Client(self.address, timeout=60, set_as_default=False)
        self.client.wait_for_workers(2, timeout=90)

    def worker_pids(self) -> dict:
        return self.client.run(os.getpid)

    def close(self) -> None:
        self.client.close()
        _stop(self.processes)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = Cluster(tmp_path_factory.mktemp("cluster"))
    yield running
    running.close()


def convcli(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convcli", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def rows(folder: Path, count: int, size: int = 256) -> None:
    """`count` distinct PNGs of size² in `folder`."""
    folder.mkdir()
    base = np.random.default_rng(2).integers(0, 256, (size, size, 3), dtype=np.uint8)
    for index in range(count):
        Image.fromarray(np.roll(base, index, axis=1)).save(folder / f"img{index:03d}.png")


def same_files(a: Path, b: Path) -> None:
    assert outputs(a) == outputs(b)
    for name in outputs(a):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def records(report: Path) -> list:
    files = json.loads(report.read_text())["files"]
    return sorted((f["source"], f["target"], f["status"], f["error"], f["input_shape"],
                   f["output_shape"]) for f in files)


@pytest.mark.slow
def test_a_mixed_tree_gives_the_local_records_exit_code_and_bytes(cluster, tmp_path):
    make_tree(tmp_path / "in")
    # relative paths: the workers, in another working folder, must get them absolute
    local = convcli("apply", "in", "-r", "-k", "sobel", "-o", "local", "-j", "2",
                    "--report", "local.json", cwd=tmp_path)
    remote = convcli("apply", "in", "-r", "-k", "sobel", "-o", "remote", "--dask",
                     cluster.address, "--report", "remote.json", cwd=tmp_path)
    assert local.returncode == remote.returncode == 1, remote.stderr
    assert outputs(tmp_path / "remote") == sorted(GOOD)
    same_files(tmp_path / "local", tmp_path / "remote")
    assert records(tmp_path / "local.json") == [
        tuple(str(x).replace("remote", "local") if isinstance(x, str) else x for x in r)
        for r in records(tmp_path / "remote.json")]
    failures = sorted(line for line in remote.stderr.splitlines() if line.startswith("failed:"))
    assert len(failures) == len(BAD)
    assert failures == sorted(line for line in local.stderr.splitlines()
                              if line.startswith("failed:"))


@pytest.mark.slow
def test_a_file_that_raises_or_kills_its_worker_fails_alone(cluster, tmp_path):
    rows(tmp_path / "in", 12, 64)
    shutil.copy(tmp_path / "in" / "img000.png", tmp_path / "in" / "img005-raise-me.png")
    shutil.copy(tmp_path / "in" / "img000.png", tmp_path / "in" / "img007-kill-me.png")
    result = convcli("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out",
                     "--dask", cluster.address, "--report", tmp_path / "r.json")
    assert result.returncode == 1, result.stderr
    assert len(outputs(tmp_path / "out")) == 12
    errors = {Path(f["source"]).name: f["error"] for f in
              json.loads((tmp_path / "r.json").read_text())["files"] if f["status"] == "failed"}
    assert sorted(errors) == ["img005-raise-me.png", "img007-kill-me.png"]
    assert "unexpected RuntimeError: injected fault" in errors["img005-raise-me.png"]
    assert "worker processing it died" in errors["img007-kill-me.png"]
    cluster.client.wait_for_workers(2, timeout=60)          # the nannies restarted them


def test_in_the_local_pool_an_unexpected_exception_fails_only_its_file(run, tmp_path,
                                                                       monkeypatch):
    faults.install(monkeypatch)                  # inherited by the forked workers
    rows(tmp_path / "in", 6, 32)
    shutil.copy(tmp_path / "in" / "img000.png", tmp_path / "in" / "img001-raise-me.png")
    result = run("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out", "-j", "2")
    assert result.exit_code == 1
    assert len(outputs(tmp_path / "out")) == 6
    assert "img001-raise-me.png: unexpected RuntimeError: injected fault" in result.stderr


def _wait_for_outputs(folder: Path, count: int, process) -> None:
    deadline = time.monotonic() + 90
    while not (folder.is_dir() and len(list(folder.glob("*.png"))) >= count):
        assert time.monotonic() < deadline and process.poll() is None, "no outputs came"
        time.sleep(0.02)


@pytest.mark.slow
def test_killing_a_worker_mid_batch_loses_nothing(cluster, tmp_path):
    rows(tmp_path / "in", 60)
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "convcli", "apply", str(tmp_path / "in"),
                                "-k", "gaussian_5", "-k", "sobel", "-o", str(out), "--dask",
                                cluster.address], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    _wait_for_outputs(out, 3, process)
    os.kill(sorted(cluster.worker_pids().values())[0], signal.SIGKILL)
    assert process.poll() is None and len(outputs(out)) < 60, "killed too late to matter"
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert len(outputs(out)) == 60
    cluster.client.wait_for_workers(2, timeout=60)


@pytest.mark.slow
def test_sigint_leaves_complete_outputs_and_skip_existing_resumes(cluster, tmp_path):
    rows(tmp_path / "in", 150)
    out = tmp_path / "out"
    command = ["apply", tmp_path / "in", "-k", "gaussian_5", "-k", "sobel", "-o", out]
    process = subprocess.Popen([sys.executable, "-m", "convcli", *map(str, command), "--dask",
                                cluster.address, "--report", str(tmp_path / "r.json")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_outputs(out, 10, process)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Interrupted by SIGINT" in stderr and "--skip-existing" in stderr
    time.sleep(1)                                # a cancelled chunk ends its current file
    finished = outputs(out)
    assert 0 < len(finished) < 150, "the batch should have been stopped midway"
    assert all(name.endswith("_gaussian_5+sobel.png") for name in finished)   # no temporaries
    totals = json.loads((tmp_path / "r.json").read_text())["totals"]
    assert totals["interrupted"] == "SIGINT" and totals["done"] == len(finished)
    resumed = convcli(*command, "--dask", cluster.address, "--skip-existing")
    assert resumed.returncode == 0, resumed.stderr
    assert convcli(*command[:-1], tmp_path / "local", "-j", "2").returncode == 0
    same_files(out, tmp_path / "local")


@pytest.mark.slow
def test_a_worker_that_sees_another_folder_at_the_output_path_is_refused(cluster, tmp_path):
    """The output path goes through a link to /proc/self/cwd, so each process sees its own
    working folder there: the client and the two workers (in `cluster.cwd`) one folder, a
    third worker (elsewhere) another, as a node with its own disk at that path would.  The
    check must name that worker and the path, and nothing be written."""
    rows(tmp_path / "in", 3, 32)
    (tmp_path / "view").symlink_to("/proc/self/cwd")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "out").mkdir(parents=True)
    own = set(cluster.worker_pids())
    stray = _start_worker(cluster.address, elsewhere, tmp_path / "stray.log")
    try:
        cluster.client.wait_for_workers(3, timeout=90)
        [stray_address] = set(cluster.worker_pids()) - own
        result = convcli("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "view" / "out",
                         "--dask", cluster.address, cwd=cluster.cwd)
    finally:
        _stop([stray])
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and f"worker {stray_address} " in result.stderr
    assert f"sees another folder at output folder {tmp_path / 'view' / 'out'}" in result.stderr
    assert outputs(cluster.cwd / "out") == [] and outputs(elsewhere / "out") == []


def test_without_the_extra_dask_says_how_to_install_it(run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)        # as if not installed
    monkeypatch.delitem(sys.modules, "convcli.cluster", raising=False)
    rows(tmp_path / "in", 2, 16)
    result = run("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out",
                 "--dask", "tcp://127.0.0.1:1")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "Error: --dask needs dask.distributed, which is not installed here: "
        "pip install 'convcli[dask]'"]
    assert not (tmp_path / "out").exists()


def test_a_local_batch_does_not_import_dask(tmp_path):
    rows(tmp_path / "in", 2, 16)
    code = ("import sys\nfrom convcli.cli import cli\ntry:\n"
            f"    cli.main(['apply', {str(tmp_path / 'in')!r}, '-k', 'sobel', '-o', "
            f"{str(tmp_path / 'out')!r}, '-q'])\n"
            "finally:\n    print('distributed' in sys.modules, 'dask' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.stdout.split()[-2:] == ["False", "False"], result.stderr


def test_dask_goes_with_batches_and_without_local_pool_options(run, tmp_path, monkeypatch):
    rows(tmp_path / "in", 2, 16)
    for extra in (["-j", "2"], ["--threads", "2"]):
        result = run("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out",
                     "--dask", "tcp://127.0.0.1:1", *extra)
        assert result.exit_code == 2 and "with --dask" in result.stderr
    one = tmp_path / "in" / "img000.png"
    result = run("apply", one, "-k", "sobel", "-o", tmp_path / "one.png", "--dask",
                 "tcp://127.0.0.1:1")
    assert result.exit_code == 2 and "--dask runs batches" in result.stderr
    monkeypatch.setenv("CONVCLI_DASK", "tcp://127.0.0.1:1")    # set for batches: one file runs here
    assert run("apply", one, "-k", "sobel", "-o", tmp_path / "one.png").exit_code == 0
    assert (tmp_path / "one.png").is_file()


def test_an_unreachable_scheduler_is_one_line(run, tmp_path, monkeypatch):
    from convcli import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1.0)        # not 10 s of retries
    rows(tmp_path / "in", 2, 16)
    result = run("apply", tmp_path / "in", "-k", "sobel", "-o", tmp_path / "out",
                 "--dask", f"tcp://127.0.0.1:{_free_port()}")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: cannot reach the Dask scheduler at tcp://127.0.0.1:")
    assert result.stderr.count("\n") == 1
