"""conv2d against cv2.filter2D: 2048×2048 RGB float32, a random kernel per channel,
reflect borders (OpenCV's BORDER_REFLECT_101), 3×3, 5×5 and 7×7.

    pip install '.[bench]' && python bench/conv_vs_opencv.py
"""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds, row  # noqa: E402

from convcli import conv2d  # noqa: E402


def main(size: int = 2048, target: float = 2.0) -> None:
    import cv2

    rng = np.random.default_rng(0)
    image = rng.random((3, size, size), dtype=np.float32)
    outputs = np.empty_like(image)
    print(f"{size}×{size}×3 float32, per-channel kernels, reflect borders; "
          f"OpenCV {cv2.__version__} with {cv2.getNumThreads()} threads")
    for k in (3, 5, 7):
        weight = rng.standard_normal((3, 1, k, k)).astype(np.float32)

        def ours():
            return conv2d(image, weight, padding="same", pad_mode="reflect", groups=3)

        def peer():
            for c in range(3):
                cv2.filter2D(image[c], -1, weight[c, 0], dst=outputs[c],
                             borderType=cv2.BORDER_REFLECT_101)

        peer()
        np.testing.assert_allclose(ours(), outputs, rtol=1e-4, atol=1e-4)
        print(row(f"{k}×{k} per channel", *median_seconds(ours, peer),
                  "cv2.filter2D", target))


if __name__ == "__main__":
    main()
