"""The batch of `batch_vs_peers.py` (100 512×512 RGB PNGs, 3×3 Sobel) on a two-worker Dask
cluster on loopback, against the local pool and `vips conv` run two at a time, on the same
cores; runs alternate, medians are printed with the ratios.

    pip install '.[dask]' && python bench/batch_on_dask.py [--count 100] [--repeat 5]

The scheduler runs with the README's settings; each worker has one thread, as each of the
local pool's processes does on two cores.  Target: cluster ≤ 1.1 × the local pool.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_vs_peers import arguments, folder_size, prepare  # noqa: E402
from common import median_seconds  # noqa: E402


def start_cluster(workers: int, log: Path):
    """A scheduler and `workers` one-thread workers on 127.0.0.1; returns (address,
    processes) once every worker has joined."""
    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__SCHEDULER__WORKER_SATURATION": "1.0",
           "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "1"}
    out = log.open("wb")
    processes = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler",
                                   "--host", "127.0.0.1", "--port", str(port),
                                   "--no-dashboard"], env=env, stdout=out, stderr=out)]
    processes += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker",
                                    address, "--nthreads", "1", "--host", "127.0.0.1",
                                    "--no-dashboard"], stdout=out, stderr=out)
                  for _ in range(workers)]
    with Client(address, timeout=60) as client:
        client.wait_for_workers(workers, timeout=120)
    return address, processes


def main() -> None:
    args = arguments(repeat=5)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, out, vips = prepare(tmp, args.count)
        address, processes = start_cluster(2, tmp / "cluster.log")
        convcli = f"{sys.executable} -m convcli apply {src} -k sobel_x --range clip -o {out} -q"
        commands = {"local pool": convcli, "cluster": f"{convcli} --dask {address}"}
        if shutil.which("vips"):
            commands["vips conv ×2"] = vips
        else:
            print("vips: not installed, skipped (apt-get install libvips-tools)")
        sizes = {}

        def run(name):
            def once():
                shutil.rmtree(out, ignore_errors=True)
                out.mkdir()
                subprocess.run(commands[name], shell=True, check=True,
                               stdout=subprocess.DEVNULL)
                sizes[name] = folder_size(out)
            return once

        try:
            medians = dict(zip(commands, median_seconds(*map(run, commands),
                                                        repeat=args.repeat, warmup=1)))
        finally:
            for process in processes:
                process.terminate()
            for process in processes:
                process.wait(30)
    print(f"{args.count} × 512×512 RGB PNG, 3×3 Sobel, median of {args.repeat} alternated runs, "
          f"{os.cpu_count()} CPUs")
    for name, seconds in medians.items():
        print(f"  {name:<14} {seconds:7.2f} s   {args.count / seconds:6.1f} img/s   "
              f"output {sizes[name] / 1e6:6.1f} MB")
    local = medians["local pool"]
    print(f"cluster / local pool = {medians['cluster'] / local:.2f}  (target ≤ 1.1)")
    if "vips conv ×2" in medians:
        print(f"cluster / vips conv ×2 = {medians['cluster'] / medians['vips conv ×2']:.2f}; "
              f"local pool / vips conv ×2 = {local / medians['vips conv ×2']:.2f}")


if __name__ == "__main__":
    main()
