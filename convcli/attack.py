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
