"""Regenerate the learned kernels that kernels.yaml ships from samples/.

    python samples/learned/recipe.py            # learn them and print their catalogue entries
    python samples/learned/recipe.py --check    # learn them again and compare with kernels.yaml
                                                # (weights within TOLERANCE of the largest)
    python samples/learned/recipe.py --write    # learn them and replace them in kernels.yaml

Every step is a convcli command (run from the repository root), except adding seeded noise
and measuring PSNR, which use numpy.  Intermediate files go to samples/learned/work/.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORK = Path("samples/learned/work")
NOISE_SIGMA = 20.0
BLUR = "gaussian:sigma=1.2"


def convcli(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "convcli", *args], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)


def gray(name: str) -> Path:
    """samples/NAME.png as a float gray .npy."""
    out = WORK / f"{name}_gray.npy"
    convcli("apply", f"samples/{name}.png", "-k", "identity", "--gray", "-o", str(out))
    return out


def noisy(path: Path, seed: int) -> Path:
    out = path.with_name(path.stem + f"_noise{seed}.npy")
    clean = np.load(ROOT / path)
    np.save(ROOT / out, (clean + np.random.default_rng(seed).normal(0, NOISE_SIGMA, clean.shape))
            .astype(np.float32))
    return out


def blurred(path: Path) -> Path:
    out = path.with_name(path.stem + "_blur.npy")
    convcli("apply", str(path), "-k", BLUR, "--range", "float", "-o", str(out))
    return out


def psnr(path: Path, reference: Path) -> float:
    error = np.load(ROOT / path).astype(np.float64) - np.load(ROOT / reference)
    return float(10 * np.log10(255.0 ** 2 / np.mean(error ** 2)))


def improvement(name: str, catalogue: Path, degraded: Path, clean: Path) -> dict:
    """PSNR of an image it was not trained on, before and after the learned kernel."""
    restored = degraded.with_name(degraded.stem + f"_{name}.npy")
    convcli("apply", str(degraded), "-k", name, "--kernels", str(catalogue), "-o", str(restored))
    return {"image": str(clean), "psnr_before_db": round(psnr(degraded, clean), 3),
            "psnr_after_db": round(psnr(restored, clean), 3)}


def learn_all() -> dict:
    (ROOT / WORK).mkdir(parents=True, exist_ok=True)
    catalogue = WORK / "learned.yaml"
    (ROOT / catalogue).unlink(missing_ok=True)
    train, test = gray("astronaut"), gray("camera")
    edges = WORK / "astronaut_sobel_x.npy"
    convcli("apply", str(train), "-k", "sobel_x", "--range", "float", "-o", str(edges))
    convcli("learn", str(train), str(edges), "-s", "3", "--name", "learned_edge_x",
            "--save", str(catalogue))
    convcli("learn", str(blurred(train)), str(train), "-s", "7", "--ridge", "1e-4",
            "--name", "learned_deblur", "--save", str(catalogue))
    convcli("learn", str(noisy(train, 1)), str(train), "-s", "5", "--name", "learned_denoise",
            "--save", str(catalogue))
    entries = yaml.safe_load((ROOT / catalogue).read_text())["kernels"]
    entries["learned_deblur"]["learned"]["evaluation"] = improvement(
        "learned_deblur", catalogue, blurred(test), test)
    entries["learned_denoise"]["learned"]["evaluation"] = improvement(
        "learned_denoise", catalogue, noisy(test, 2), test)
    entries["learned_edge_x"]["range"] = "abs"
    for entry in entries.values():
        entry["learned"]["recipe"] = "samples/learned/recipe.py"
        entry["learned"].pop("date")          # keeps the entries identical run to run
    return entries


#: How far `--check` lets a weight move, as a share of the kernel's largest |weight|: the
#: least-squares solve sums in an order that depends on the CPU's BLAS, and the deblurring
#: system is ill-conditioned enough to turn that into differences in the 4th decimal.
TOLERANCE = 1e-3


def same_weights(ours: dict, theirs: dict | None) -> bool:
    """Whether two catalogue entries' weights agree within `TOLERANCE`."""
    if theirs is None:
        return False
    a, b = np.asarray(ours["weights"], float), np.asarray(theirs["weights"], float)
    return a.shape == b.shape and bool(
        np.all(np.abs(a - b) <= TOLERANCE * max(np.abs(b).max(), 1e-12)))


def catalogue_text(entries: dict) -> str:
    block = yaml.safe_dump(entries, sort_keys=False, allow_unicode=True, width=100,
                           default_flow_style=None)
    return "".join(f"  {line}\n" for line in block.splitlines())


MARKER = "  # Learned by convcli from samples/ — regenerate with samples/learned/recipe.py\n"


def main() -> int:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true")
    group.add_argument("--write", action="store_true")
    args = parser.parse_args()
    entries = learn_all()
    catalogue = ROOT / "kernels.yaml"
    text = catalogue.read_text()
    shipped = text[text.index(MARKER) + len(MARKER):] if MARKER in text else ""
    if args.check:
        ours = yaml.safe_load("kernels:\n" + catalogue_text(entries))["kernels"]
        theirs = yaml.safe_load("kernels:\n" + shipped)["kernels"] if shipped else {}
        different = [n for n in ours if not same_weights(ours[n], theirs.get(n))]
        print(f"equal within {TOLERANCE:g} of each kernel's largest weight" if not different
              else f"different: {', '.join(different)}")
        return 1 if different else 0
    if args.write:
        head = text[:text.index(MARKER)] if MARKER in text else text.rstrip("\n") + "\n\n"
        catalogue.write_text(head + MARKER + catalogue_text(entries))
    else:
        print(catalogue_text(entries), end="")
    for name, entry in entries.items():
        evaluation = entry["learned"].get("evaluation")
        if evaluation:
            print(f"{name}: PSNR on {evaluation['image']} {evaluation['psnr_before_db']} dB → "
                  f"{evaluation['psnr_after_db']} dB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
