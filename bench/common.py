"""Timing helpers shared by the benchmark scripts (medians of repeated runs)."""

import statistics
import time


def median_seconds(function, repeat: int = 15, warmup: int = 2) -> float:
    """Median wall time of `function()` over `repeat` runs, after `warmup` runs."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(label: str, ours: float, peer: float, peer_name: str, target: float | None = None) -> str:
    """One result line: convcli median, peer median, ratio, and the target if there is one."""
    ratio = ours / peer
    verdict = "" if target is None else ("  ok" if ratio <= target else f"  MISSED (target ≤ {target})")
    return (f"{label:<34} convcli {ours * 1e3:9.2f} ms   {peer_name} {peer * 1e3:9.2f} ms   "
            f"ratio {ratio:5.2f}{verdict}")
