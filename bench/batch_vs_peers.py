"""A folder of 100 512×512 RGB PNGs through a 3×3 Sobel (x direction): convcli against
ImageMagick's mogrify (one process) and libvips's `vips conv` run two at a time.

    pip install . && python bench/batch_vs_peers.py [--count 100] [--repeat 3]

ImageMagick and libvips come from Debian's packages imagemagick and libvips-tools; a peer
that is not installed is skipped, saying so.  Every tool writes PNG.
"""

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def make_images(folder: Path, count: int) -> None:
    """`count` different 512×512 RGB PNGs made from the samples (shifted, flipped, tinted)."""
    base = np.asarray(Image.open(SAMPLES / "astronaut.png").convert("RGB").resize((512, 512),
                                                                                 Image.LANCZOS))
    rng = np.random.default_rng(0)
    for index in range(count):
        image = np.roll(base, (int(rng.integers(512)), int(rng.integers(512))), axis=(0, 1))
        if index % 2:
            image = image[:, ::-1]
        tint = rng.uniform(0.8, 1.2, 3)
        image = np.clip(image * tint, 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"img{index:03d}.png")


def arguments(repeat: int) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=repeat)
    return parser.parse_args()


def prepare(tmp: Path, count: int) -> tuple[Path, Path, str]:
    """`count` images in tmp/in, an output folder tmp/out, and the command that runs
    `vips conv` with the same Sobel on them two at a time."""
    src, out = tmp / "in", tmp / "out"
    src.mkdir()
    make_images(src, count)
    (tmp / "sobel.mat").write_text("3 3 1 0\n-1 0 1\n-2 0 2\n-1 0 1\n")
    vips = (f"ls {src}/*.png | xargs -P2 -I{{}} sh -c "
            f"'vips conv {{}} {out}/$(basename {{}}) {tmp}/sobel.mat'")
    return src, out, vips


def timed(command: str, out: Path, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        start = time.perf_counter()
        subprocess.run(command, shell=True, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.png"))


def main() -> None:
    args = arguments(repeat=3)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, out, vips = prepare(tmp, args.count)
        # --range clip: negative responses become 0, as ImageMagick and libvips write them
        convcli = f"{sys.executable} -m convcli apply {src} -k sobel_x --range clip -o {out} -q"
        results = {"convcli": timed(convcli, out, args.repeat)}
        sizes = {"convcli": folder_size(out)}
        peers = {
            "mogrify": (shutil.which("mogrify"),
                        f"mogrify -path {out} -morphology Convolve Sobel {src}/*.png"),
            "vips conv ×2": (shutil.which("vips"), vips),
        }
        for name, (installed, command) in peers.items():
            if not installed:
                print(f"{name}: not installed, skipped (apt-get install imagemagick libvips-tools)")
                continue
            results[name] = timed(command, out, args.repeat)
            sizes[name] = folder_size(out)
    print(f"{args.count} × 512×512 RGB PNG, 3×3 Sobel, median of {args.repeat} runs")
    for name, seconds in results.items():
        print(f"  {name:<14} {seconds:7.2f} s   {args.count / seconds:6.1f} img/s   "
              f"output {sizes[name] / 1e6:6.1f} MB")
    peer_times = {k: v for k, v in results.items() if k != "convcli"}
    if peer_times:
        best = min(peer_times, key=peer_times.get)
        ratio = results["convcli"] / peer_times[best]
        print(f"convcli / {best} (the faster peer) = {ratio:.2f}  (target ≤ 0.5)")
        for name, seconds in peer_times.items():
            print(f"convcli / {name} = {results['convcli'] / seconds:.2f}")


if __name__ == "__main__":
    main()
