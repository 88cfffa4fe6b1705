"""Regenerate the sample images from scikit-image's data folder (see README.md here).

    pip download --no-deps scikit-image && unzip -o scikit_image-*.whl 'skimage/data/*'
    python samples/derive.py skimage/data samples
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image

from convcli.images import Picture, write_image
from convcli.pixels import LUMA


def box_mean(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Mean over factor×factor blocks, in float64 (so averages keep their fractions)."""
    h, w = pixels.shape[0] // factor * factor, pixels.shape[1] // factor * factor
    blocks = pixels[:h, :w].astype(np.float64).reshape(h // factor, factor, w // factor, factor, -1)
    return blocks.mean(axis=(1, 3))


def main(data: Path, out: Path) -> None:
    astronaut = Image.open(data / "astronaut.png").convert("RGB")
    astronaut.resize((384, 384), Image.LANCZOS).save(out / "astronaut.png", optimize=True)
    Image.open(data / "camera.png").convert("L").save(out / "camera.png", optimize=True)

    chelsea = np.asarray(Image.open(data / "chelsea.png").convert("RGB"))
    h, w = chelsea.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot((yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2))
    alpha = np.rint(np.clip((1.05 - r) / 0.25, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(np.dstack([chelsea, alpha])).save(out / "chelsea_alpha.png", optimize=True)

    rgb = np.asarray(astronaut)
    luma = box_mean(rgb @ LUMA, 2)[:, :, 0]
    gray16 = np.rint(luma / 255 * 65535).astype(np.uint16)
    write_image(out / "astronaut_gray16.png", Picture(gray16[:, :, None]))
    rgb16 = np.rint(box_mean(rgb, 4) / 255 * 65535).astype(np.uint16)
    write_image(out / "astronaut_rgb16.png", Picture(rgb16))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
