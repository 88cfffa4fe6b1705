"""Every speed and memory target of convcli against its peer, measured side by side.

    pip install '.[bench]' && python bench/run.py [--quick]

Peers: OpenCV (filter2D, sepFilter2D), PyTorch (conv2d with 2 threads; skipped if not
installed: pip install torch), libvips and ImageMagick (Debian packages libvips-tools and
imagemagick; skipped if missing).  Prints convcli's median, the peer's median and their
ratio for each row, then start-up times and the peak memory of an 8192² run.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, row  # noqa: E402

from convcli import conv2d  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def per_channel(repeat: int) -> None:
    """convcli as a library user calls it (``conv2d`` with the default algo; its first call
    is the check against the peer, so the timed runs are the second call on) against
    OpenCV called once on the H×W×3 float32 image, its natural layout."""
    import cv2

    rng = np.random.default_rng(0)
    image = rng.random((3, 2048, 2048), dtype=np.float32)
    hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
    print(f"\n2048×2048×3 float32, reflect borders; OpenCV {cv2.__version__}, "
          f"{cv2.getNumThreads()} threads, on the H×W×3 image")

    def check(ours, theirs, atol):
        np.testing.assert_allclose(ours, theirs.transpose(2, 0, 1), rtol=1e-3, atol=atol)

    for k, target in ((3, 1.0), (5, 1.0), (7, 1.0), (15, 0.5), (31, 0.5)):
        kernel = rng.standard_normal((k, k)).astype(np.float32)
        weight = np.repeat(kernel[None, None], 3, axis=0)
        ours = lambda: conv2d(image, weight, padding="same", pad_mode="reflect", groups=3)
        peer = lambda: cv2.filter2D(hwc, -1, kernel, borderType=cv2.BORDER_REFLECT_101)
        check(ours(), peer(), 1e-3 * k)
        print(row(f"{k}×{k} per channel", *median_seconds(ours, peer, repeat=repeat, warmup=0),
                  "filter2D", target))
    for k in (5, 15, 31):
        taps = cv2.getGaussianKernel(k, 0).astype(np.float32)
        weight = np.repeat((taps @ taps.T)[None, None], 3, axis=0)
        ours = lambda: conv2d(image, weight, padding="same", pad_mode="reflect", groups=3)
        peer = lambda: cv2.sepFilter2D(hwc, -1, taps, taps, borderType=cv2.BORDER_REFLECT_101)
        check(ours(), peer(), 1e-3)
        print(row(f"Gaussian {k}×{k} (separable)",
                  *median_seconds(ours, peer, repeat=repeat, warmup=0), "sepFilter2D", 1.0))
    copy = np.empty_like(image)
    print(f"{'copying the image (np.copyto)':<34} "
          f"{median_seconds(lambda: np.copyto(copy, image), repeat=repeat) * 1e3:9.2f} ms")


TORCH_PEER = """
import statistics, sys, time
import numpy as np, torch, torch.nn.functional as F
torch.set_num_threads(2)
cin, cout, size, repeat = map(int, sys.argv[1:])
rng = np.random.default_rng(1)
x = torch.from_numpy(rng.random((1, cin, size, size), dtype=np.float32))
w = torch.from_numpy(rng.standard_normal((cout, cin, 3, 3)).astype(np.float32))
F.conv2d(x, w, padding=1)
times = []
for _ in range(repeat):
    start = time.perf_counter(); F.conv2d(x, w, padding=1); times.append(time.perf_counter() - start)
print(statistics.median(times))
"""


def layers(repeat: int) -> None:
    """CNN layers against PyTorch, which runs in its own process: its OpenMP threads spin
    after each call and would slow any BLAS sharing the process."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        print("\nPyTorch is not installed: CNN-layer rows skipped (pip install torch)")
        return
    rng = np.random.default_rng(1)
    print("\nCNN layers, 3×3, padding 1; PyTorch with 2 threads, in its own process")
    for cin, cout, size, target in ((3, 64, 512, 0.5), (64, 64, 128, 1.0)):
        x = rng.random((1, cin, size, size), dtype=np.float32)
        w = rng.standard_normal((cout, cin, 3, 3)).astype(np.float32)
        np.testing.assert_allclose(conv2d(x, w, padding=1), naive_layer(x, w),
                                   rtol=1e-3, atol=1e-3)
        peer = float(subprocess.run([sys.executable, "-c", TORCH_PEER, str(cin), str(cout),
                                     str(size), str(repeat)], capture_output=True, text=True,
                                    check=True).stdout)
        print(row(f"{cin} → {cout} channels, {size}²",
                  median_seconds(lambda: conv2d(x, w, padding=1), repeat=repeat, warmup=0),
                  peer, "torch", target))


def naive_layer(x, w):
    """A 3×3, padding 1 layer by shifted products in float64 (the check, not timed)."""
    padded = np.pad(x[0].astype(np.float64), ((0, 0), (1, 1), (1, 1)))
    h, wd = x.shape[2:]
    return sum(np.einsum("oc,chw->ohw", w[:, :, i, j], padded[:, i:i + h, j:j + wd])
               for i in range(3) for j in range(3))[None]


def run_command(command) -> None:
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, shell=isinstance(command, str))


def timed_command(*commands, repeat: int):
    """`median_seconds` of running each command (runs alternate), without warm-up runs."""
    return median_seconds(*(lambda c=c: run_command(c) for c in commands), repeat=repeat,
                          warmup=0)


def whole_command(tmp: Path, repeat: int) -> None:
    from PIL import Image

    source = tmp / "photo2048.png"
    Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((2048, 2048), Image.LANCZOS).save(source)
    convcli = [sys.executable, "-m", "convcli", "apply", str(source), "-k", "sobel_x",
               "--range", "clip", "-o", str(tmp / "convcli.png")]
    run_command(convcli)                                 # warm the caches of both
    print(f"\nWhole command, 2048×2048 RGB PNG, 3×3 Sobel (x), PNG out, median of {repeat}")
    (tmp / "sobel.mat").write_text("3 3 1 0\n-1 0 1\n-2 0 2\n-1 0 1\n")
    peers = {   # name: (program, command, output)
        "vips conv": ("vips", f"vips conv {source} {tmp / 'vips.png'} {tmp / 'sobel.mat'}",
                      tmp / "vips.png"),
        "convert": ("mogrify", f"convert {source} -morphology Convolve Sobel {tmp / 'magick.png'}",
                    tmp / "magick.png"),
    }
    for name, (program, command, output) in peers.items():
        if not shutil.which(program):
            print(f"{name}: not installed, skipped")
            continue
        ours, peer = timed_command(convcli, command, repeat=repeat)
        print(row(f"whole command vs {name}", ours, peer, name, 1.0))
        size, theirs = (tmp / "convcli.png").stat().st_size, output.stat().st_size
        print(f"{'':<34} output {size / 1e6:.2f} MB vs {theirs / 1e6:.2f} MB "
              f"({100 * (size / theirs - 1):+.1f}%, target ≤ +15% against ImageMagick)")


def startup(tmp: Path, repeat: int) -> None:
    import compileall

    import convcli
    from PIL import Image

    # as after `pip install`, whose byte-code files spare each run compiling convcli's modules
    compileall.compile_dir(Path(convcli.__file__).parent, quiet=1)
    small = tmp / "photo512.png"
    Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((512, 512)).save(small)
    large = tmp / "photo2048.png"                       # written by whole_command
    base = [sys.executable, "-m", "convcli"]
    print(f"\nStart-up (median of {repeat}; `python -c pass` alone: "
          f"{timed_command([sys.executable, '-c', 'pass'], repeat=repeat) * 1e3:.0f} ms, "
          f"`python -c 'import click'`: "
          f"{timed_command([sys.executable, '-c', 'import click'], repeat=repeat) * 1e3:.0f} ms)")
    small_job = ["apply", str(small), "-k", "sobel", "-o", str(tmp / "s.png")]
    large_job = ["apply", str(large), "-k", "sobel", "-o", str(tmp / "l.png")]
    core_job = large_job + ["--algo", "direct"]
    for label, args, target in (("convcli --help", ["--help"], 0.1),
                                ("convcli kernels", ["kernels"], 0.25),
                                ("convcli apply 512² PNG (warm cache)", small_job, 0.3),
                                ("apply 2048² PNG", large_job, None),
                                ("apply 2048² PNG --algo direct (core)", core_job, None)):
        seconds = timed_command(base + args, repeat=repeat)
        print(f"{label:<40} {seconds:6.3f} s" + (f"   target < {target} s" if target else ""))
    for label, args in (("first run, empty numba cache, 512²", small_job),
                        ("first run, empty numba cache, 2048²", large_job),
                        ("first run, empty cache, 2048² (core)", core_job)):
        cache = tempfile.mkdtemp()
        start = time.perf_counter()
        subprocess.run(base + args, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "NUMBA_CACHE_DIR": cache})
        print(f"{label:<40} {time.perf_counter() - start:6.3f} s   target < 5 s")
        shutil.rmtree(cache)


def memory(tmp: Path) -> None:
    from PIL import Image

    big = tmp / "photo8192.png"
    Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((8192, 8192), Image.BILINEAR).save(
        big, compress_level=1)
    probe = ("import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, "
             "stdout=subprocess.DEVNULL); print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    command = [sys.executable, "-m", "convcli", "apply", str(big), "-k", "sobel_x", "-o",
               str(tmp / "big_out.png")]
    start = time.perf_counter()
    peak = int(subprocess.run([sys.executable, "-c", probe, *command], capture_output=True,
                              text=True, check=True).stdout) / 1024
    print(f"\n8192×8192 RGB PNG, 3×3 kernel: peak resident memory {peak:.0f} MB "
          f"(target < 600 MB), {time.perf_counter() - start:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else 9
    per_channel(repeat)
    layers(repeat)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        whole_command(tmp, 3 if args.quick else 5)
        startup(tmp, 3 if args.quick else 5)
        memory(tmp)


if __name__ == "__main__":
    main()
