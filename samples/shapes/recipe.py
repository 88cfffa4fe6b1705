"""Make samples/shapes/shapes.npz, the synthetic data set `convcli train` learns from.

    python samples/shapes/recipe.py            # write it
    python samples/shapes/recipe.py --check    # make it again and compare, byte for byte

Six classes of 28×28 gray pictures, drawn with numpy from one seed: a bar at 0°, 45°, 90°
or 135° (±10°), a right-angle corner (any rotation) and a round blob, each at a random
position, size, brightness and background, with Gaussian noise.  Telling the bars apart
needs oriented edge detectors; corners and blobs need their combinations.
"""

import argparse
import hashlib
import io
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parent / "shapes.npz"
CLASSES = ("bar_0", "bar_45", "bar_90", "bar_135", "corner", "blob")
PER_CLASS = 400
SIZE = 28
SEED = 18
NOISE = 0.08

_yy, _xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)


def _segment(cy, cx, angle, length, thickness):
    """Anti-aliased coverage (0…1) of a segment centred at (cy, cx), `angle` radians from
    the horizontal (counter-clockwise, y up)."""
    dy, dx = -np.sin(angle), np.cos(angle)
    along = (_yy - cy) * dy + (_xx - cx) * dx
    across = np.abs(-(_yy - cy) * dx + (_xx - cx) * dy)
    beyond = np.maximum(np.abs(along) - length / 2, 0)
    distance = np.hypot(across, beyond)
    return np.clip(thickness / 2 + 0.5 - distance, 0, 1)


def draw(label: int, rng: np.random.Generator) -> np.ndarray:
    """One picture of class `label`, values 0…1."""
    cy, cx = rng.uniform(9, 19, 2)
    if label < 4:
        angle = np.deg2rad(45 * label + rng.uniform(-10, 10))
        shape = _segment(cy, cx, angle, rng.uniform(12, 22), rng.uniform(1.5, 3.5))
    elif label == 4:
        angle = rng.uniform(0, 2 * np.pi)
        arm, thickness = rng.uniform(8, 13), rng.uniform(1.5, 3.5)
        shape = np.zeros((SIZE, SIZE))
        for turn in (0, np.pi / 2):      # two arms from the corner point (cy, cx)
            a = angle + turn
            shape = np.maximum(shape, _segment(cy - np.sin(a) * arm / 2, cx + np.cos(a) * arm / 2,
                                               a, arm, thickness))
    else:
        radius = rng.uniform(3, 6.5)
        shape = np.clip(radius + 0.5 - np.hypot(_yy - cy, _xx - cx), 0, 1)
    background = rng.uniform(0.05, 0.35)
    ink = rng.uniform(0.45, 0.65)
    picture = background + ink * shape + rng.normal(0, NOISE, shape.shape)
    return np.clip(picture, 0, 1)


def make() -> dict:
    rng = np.random.default_rng(SEED)
    labels = np.repeat(np.arange(len(CLASSES)), PER_CLASS)
    rng.shuffle(labels)
    images = np.stack([draw(int(label), rng) for label in labels])
    return {"images": np.rint(images * 255).astype(np.uint8)[:, None],
            "labels": labels.astype(np.int64), "classes": np.array(CLASSES)}


def npz_bytes(arrays: dict) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def digest(arrays: dict) -> str:
    """SHA-256 of the arrays' bytes (not of the zip, whose timestamps vary)."""
    h = hashlib.sha256()
    for key in sorted(arrays):
        h.update(key.encode())
        h.update(np.ascontiguousarray(arrays[key]).tobytes())
    return h.hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    arrays = make()
    if args.check:
        with np.load(OUT, allow_pickle=False) as shipped:
            same = digest(arrays) == digest({k: shipped[k] for k in shipped.files})
        print("identical" if same else "different")
        return 0 if same else 1
    OUT.write_bytes(npz_bytes(arrays))
    print(f"{OUT}: {len(arrays['labels'])} images, sha256 of arrays {digest(arrays)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
