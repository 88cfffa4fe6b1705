"""Timing helpers shared by the benchmark scripts (medians of repeated runs)."""

import statistics
import time


def median_seconds(*functions, repeat: int = 15, warmup: int = 2):
    """Median wall time of each function over `repeat` runs, after `warmup` runs; with
    several functions their runs alternate, so a machine whose speed drifts (a shared
    virtual machine) slows them alike.  Returns one median, or a tuple of them."""
    for _ in range(warmup):
        for function in functions:
            function()
    times = [[] for _ in functions]
    for _ in range(repeat):
        for function, runs in zip(functions, times):
            start = time.perf_counter()
            function()
            runs.append(time.perf_counter() - start)
    medians = tuple(statistics.median(runs) for runs in times)
    return medians[0] if len(medians) == 1 else medians


def row(label: str, ours: float, peer: float, peer_name: str, target: float | None = None) -> str:
    """One result line: convcli median, peer median, ratio, and the target if there is one."""
    ratio = ours / peer
    verdict = "" if target is None else ("  ok" if ratio <= target else f"  MISSED (target ≤ {target})")
    return (f"{label:<34} convcli {ours * 1e3:9.2f} ms   {peer_name} {peer * 1e3:9.2f} ms   "
            f"ratio {ratio:5.2f}{verdict}")
