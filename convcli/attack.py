"""Adversarial examples: the fast gradient sign method (Goodfellow, Shlens and Szegedy,
2015) and its iterated form (Kurakin, Goodfellow and Bengio, 2017), which takes `steps`
signed steps of eps/steps·2 and keeps the change within ±eps of every pixel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Model


@dataclass(frozen=True)
class AttackResult:
    image: np.ndarray            # the original, (C, H, W) in 0…1
    adversarial: np.ndarray      # the perturbed image
    before: np.ndarray           # class probabilities of each
    after: np.ndarray

    @property
    def change(self) -> np.ndarray:
        return self.adversarial - self.image

    @property
    def predictions(self) -> tuple[int, int]:
        """The predicted class before and after."""
        return int(self.before.argmax()), int(self.after.argmax())

    @property
    def sizes(self) -> tuple[float, float]:
        """The L∞ and L2 norms of the change (0…1 scale)."""
        return float(np.abs(self.change).max()), float(np.linalg.norm(self.change))


def input_gradient(model: Model, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The gradient of the cross-entropy with respect to the input batch."""
    from .grad import softmax_cross_entropy

    logits, tape = model.forward(images)
    _, g = softmax_cross_entropy(logits, labels)
    return model.backward(tape, g, input_grad=True)[1]


def attack(model: Model, image: np.ndarray, eps: float, target: int | None = None,
           steps: int = 1, levels: int | None = 255) -> AttackResult:
    """Perturb `image` (C, H, W, 0…1) by at most `eps` per pixel to change the prediction:
    away from the predicted class, or towards `target`.  With `levels`, the result is
    rounded to that many steps per unit (what an 8-bit file holds) before it is judged."""
    x0 = np.asarray(image, np.float32)[None]
    before = model.probabilities(x0)[0]
    label = np.array([int(np.argmax(before)) if target is None else target])
    sign = 1.0 if target is None else -1.0       # ascend the loss, or descend towards target
    step = eps if steps == 1 else 2 * eps / steps
    x = x0.copy()
    for _ in range(steps):
        x = x + sign * step * np.sign(input_gradient(model, x, label))
        x = np.clip(np.clip(x, x0 - eps, x0 + eps), 0, 1).astype(np.float32)
    if levels:
        x = np.rint(x * levels) / levels
    after = model.probabilities(x.astype(np.float32))[0]
    return AttackResult(x0[0], x[0].astype(np.float32), before, after)


def attack_picture(model: Model, picture, eps: float, target: int | None = None,
                   steps: int = 1):
    """`attack` on an image as read (`convcli.images.Picture`, colour converted to gray for
    a one-channel network): returns the `AttackResult` and two 8-bit pictures, the
    perturbed image and the change amplified (±eps as black … white).

    Raises
    ------
    ParameterError
        The image's size or channels do not fit the network (parameter ``image``).
    """
    from .errors import ParameterError
    from .images import Picture
    from .pixels import to_gray

    channels, height, width = model.network.input_shape
    pixels = picture.color.astype(np.float32) / np.float32(picture.max_value)
    if channels == 1 and pixels.shape[2] != 1:
        pixels = to_gray(pixels)[:, :, None]
    if pixels.shape != (height, width, channels):
        raise ParameterError(f"is {pixels.shape[1]}×{pixels.shape[0]}×{pixels.shape[2]}; the "
                             f"network takes {width}×{height}×{channels}", parameter="image")
    result = attack(model, pixels.transpose(2, 0, 1), eps, target, steps)

    def eight_bit(values):
        return Picture(np.rint(np.clip(values, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8))

    return result, eight_bit(result.adversarial), eight_bit(0.5 + result.change / (2 * eps))
