"""Train samples/nets/shapes_cnn.yaml on samples/shapes/shapes.npz and regenerate what ships
from it: the weights (samples/nets/shapes_cnn.npz), conv1's kernels in kernels.yaml
(cnn_conv1, a bank of eight 5×5 kernels) and the README's pictures (samples/cnn/).

    python samples/nets/recipe.py            # train and print the figures
    python samples/nets/recipe.py --check    # train again and compare with what ships
    python samples/nets/recipe.py --write    # train and replace what ships

Every step is a convcli command (run from the repository root) except picking the attacked
image and composing the kernel picture.  Intermediate files go to samples/nets/work/.
"""

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORK = Path("samples/nets/work")
DOCS = Path("samples/cnn")
NET = "samples/nets/shapes_cnn.yaml"
DATA = "samples/shapes/shapes.npz"
SHIPPED = Path("samples/nets/shapes_cnn.npz")
TRAIN = ["--epochs", "8", "--lr", "0.003", "--batch", "32", "--seed", "0", "--val", "0.1"]
MARKER = "  # Trained by convcli train — regenerate with samples/nets/recipe.py\n"
LEARNED_MARKER = "  # Learned by convcli from samples/"
#: Weights may differ by BLAS rounding between machines; more than this is a real change.
TOLERANCE = 1e-3
#: Training amplifies rounding: a product summed in another order (another CPU's BLAS, or
#: the same gradients computed another way) moves conv2's weights by up to 0.1 after eight
#: epochs while every array keeps a cosine similarity above 0.996 with the shipped one and
#: the validation accuracy stays put.  The check accepts that as the same training.
SAME_TRAINING_COSINE = 0.99
SAME_TRAINING_ACCURACY = 0.01


def convcli(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "convcli", *args], cwd=ROOT, check=True,
                          stdout=subprocess.PIPE, text=True).stdout


def trained(path: Path) -> dict:
    with np.load(ROOT / path, allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def catalogue_entry(weights: dict) -> dict:
    provenance = json.loads(str(weights["provenance"]))
    kernels = weights["conv1.weight"][:, 0].astype(np.float64)
    return {"cnn_conv1": {
        "weights": np.round(kernels, 4).tolist(),
        "bias": np.round(weights["conv1.bias"].astype(np.float64), 4).tolist(),
        "range": "abs",
        "description": "conv1 of samples/nets/shapes_cnn.yaml: eight 5×5 kernels learned by "
                       "backpropagation on samples/shapes/shapes.npz",
        "source": "convcli train",
        "learned": {key: provenance[key] for key in (
            "data", "data_sha256", "net", "options", "epochs_completed", "val_accuracy")}
        | {"recipe": "samples/nets/recipe.py"}}}


def kernel_figure(weights: dict) -> list[tuple[str, float]]:
    """samples/cnn/conv1.png: conv1's kernels (top row) over their closest catalogue kernels
    (other than cnn_conv1, the shipped copy of these)."""
    from convcli.images import save_pillow
    from convcli.kernels import Catalogue
    from convcli.learn import closest_kernels
    from convcli.render import kernel_picture

    learned = weights["conv1.weight"].astype(np.float64)
    catalogue = Catalogue.load([], use_env=False)
    closest = closest_kernels(learned, catalogue, exclude=("cnn_conv1",))
    partners = []
    for filt, (name, _) in zip(learned[:, 0], closest):
        sign, base = (-1.0, name[1:]) if name.startswith("-") else (1.0, name)
        base, _, index = base.partition("[")
        kernel = catalogue.get(base).weights[int(index[:-1]) if index else 0]
        placed = np.zeros_like(filt)
        top, left = [(a - b) // 2 for a, b in zip(filt.shape, kernel.shape)]
        placed[top:top + kernel.shape[0], left:left + kernel.shape[1]] = kernel
        partners.append(sign * placed * np.linalg.norm(filt) / np.linalg.norm(placed))
    save_pillow(kernel_picture(np.stack([learned[:, 0], np.array(partners)]), cell=12),
                ROOT / DOCS / "conv1.png")
    return closest


def attacked_image() -> Path:
    """samples/shapes/bar_45.png: the data set's first picture of class bar_45."""
    from PIL import Image

    path = Path("samples/shapes/bar_45.png")
    with np.load(ROOT / DATA) as data:
        index = int(np.flatnonzero(data["labels"] == 1)[0])
        Image.fromarray(data["images"][index, 0]).save(ROOT / path)
    return path


def run() -> Path:
    (ROOT / WORK).mkdir(parents=True, exist_ok=True)
    (ROOT / DOCS).mkdir(parents=True, exist_ok=True)
    weights = WORK / "shapes_cnn.npz"
    print(convcli("train", DATA, "--net", NET, "-o", str(weights), *TRAIN,
                  "--plot", str(DOCS / "loss.png")), end="")
    return weights


def figures(weights_path: Path) -> None:
    weights = trained(weights_path)
    for name, similarity in kernel_figure(weights):
        print(f"conv1 kernel ≈ {name} (cosine similarity {similarity:.3f})")
    for layer, cell in (("conv1", 3), ("conv2", 3), ("fc", 3)):
        print(convcli("visualize", NET, "--weights", str(weights_path), "--layer", layer,
                      "--channel", "all", "--cell", str(cell), "-o",
                      str(DOCS / f"visualize_{layer}.png")), end="")
    print(convcli("attack", NET, str(attacked_image()), "--weights", str(weights_path),
                  "--eps", "0.02", "-o", str(DOCS / "adversarial.png")), end="")


def same_training(ours: dict, theirs: dict) -> bool:
    """Print how the retrained weights compare with the shipped ones; True if they are the
    same within rounding, or the same training drifted by rounding (see
    `SAME_TRAINING_COSINE`)."""
    names = [k for k in theirs if k != "provenance"]
    worst = max(float(np.abs(ours[k] - theirs[k]).max()) for k in names)
    cosines = {k: float(ours[k].ravel() @ theirs[k].ravel()
                        / (np.linalg.norm(ours[k]) * np.linalg.norm(theirs[k]) or 1))
                for k in names}
    accuracy = [json.loads(str(w["provenance"]))["val_accuracy"] for w in (ours, theirs)]
    drift = min(cosines.values()) >= SAME_TRAINING_COSINE and \
        abs(accuracy[0] - accuracy[1]) <= SAME_TRAINING_ACCURACY
    verdict = ("identical" if worst == 0 else "same within rounding" if worst <= TOLERANCE
               else "same training, drifted by rounding" if drift else "different")
    print(f"largest weight difference {worst:.2e}, smallest cosine similarity "
          f"{min(cosines.values()):.4f} ({min(cosines, key=cosines.get)}), validation "
          f"accuracy {accuracy[0]:.1%} against {accuracy[1]:.1%}: {verdict}")
    return worst <= TOLERANCE or drift


def main() -> int:
    parser = argparse.ArgumentParser()
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--check", action="store_true")
    group.add_argument("--write", action="store_true")
    args = parser.parse_args()
    weights_path = run()
    ours = trained(weights_path)
    if args.check:
        return 0 if same_training(ours, trained(SHIPPED)) else 1
    figures(weights_path)
    if args.write:
        shutil.copyfile(ROOT / weights_path, ROOT / SHIPPED)
        catalogue = ROOT / "kernels.yaml"
        text = catalogue.read_text()
        block = yaml.safe_dump(catalogue_entry(ours), sort_keys=False, allow_unicode=True,
                               width=100, default_flow_style=None)
        block = MARKER + "".join(f"  {line}\n" for line in block.splitlines()) + "\n"
        start = text.index(MARKER) if MARKER in text else text.index(LEARNED_MARKER)
        end = text.index(LEARNED_MARKER)
        catalogue.write_text(text[:start] + block + text[end:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
