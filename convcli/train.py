"""Training a classifier by backpropagation through convcli's own engine: data sets,
optimisers and the epoch loop.

A data set is an ``.npz`` archive with ``images`` (N, C, H, W) — uint8 (0…255), uint16
(0…65535) or float (0…1) — ``labels`` (N,) whole numbers from 0, and optionally
``classes``, their names (samples/shapes/shapes.npz is one).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import ConvcliError, ParameterError
from .model import Model, Weights

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class Dataset:
    images: np.ndarray          # (N, C, H, W) float32 in 0…1
    labels: np.ndarray          # (N,) int64
    classes: tuple[str, ...]
    digest: str                 # SHA-256 of the file


def load_dataset(path) -> Dataset:
    """Read and check a data set archive (see the module docstring).

    Raises
    ------
    ParameterError
        Naming the file and what is wrong with it.
    """
    from .learn import file_digest
    from .model import read_npz

    path = Path(path)
    where = f"data {path}"
    arrays = read_npz(path, where)
    if "images" not in arrays or "labels" not in arrays:
        raise ParameterError(f"{where}: needs arrays 'images' (N, C, H, W) and 'labels' (N,); "
                             f"it has {', '.join(arrays) or 'none'}")
    images, labels = arrays["images"], arrays["labels"]
    if images.ndim != 4 or len(images) < 2 or not (
            images.dtype.kind == "f" or images.dtype in (np.uint8, np.uint16)):
        raise ParameterError(f"{where}: images must be (N, C, H, W) uint8, uint16 or float "
                             f"with N ≥ 2, got {images.dtype} {images.shape}")
    if labels.shape != (len(images),) or labels.dtype.kind not in "iu" or labels.min() < 0:
        raise ParameterError(f"{where}: labels must be {len(images)} whole numbers ≥ 0, got "
                             f"{labels.dtype} {labels.shape}")
    count = int(labels.max()) + 1
    names = arrays.get("classes", np.array([str(i) for i in range(count)]))
    if names.ndim != 1:
        raise ParameterError(f"{where}: classes must be a list of names, got shape "
                             f"{names.shape}")
    classes = tuple(str(c) for c in names)
    if len(classes) < count:
        raise ParameterError(f"{where}: labels go up to {count - 1} but only {len(classes)} "
                             "classes are named")
    scale = {np.dtype(np.uint8): 1 / 255, np.dtype(np.uint16): 1 / 65535}.get(images.dtype, 1.0)
    pixels = images.astype(np.float32) * np.float32(scale)
    if not np.isfinite(pixels).all():
        raise ParameterError(f"{where}: images hold NaN or infinity")
    if images.dtype.kind == "f" and pixels.size and (pixels.min() < 0 or pixels.max() > 1):
        warnings.warn(f"{where}: float images range over {pixels.min():g} … {pixels.max():g}; "
                      "training expects 0 … 1 (store uint8 or uint16 to have them scaled)",
                      RuntimeWarning, stacklevel=2)
    return Dataset(pixels, labels.astype(np.int64), classes, file_digest(path))


@dataclass(frozen=True, kw_only=True)
class TrainOptions:
    """How to train: epochs, learning rate, batch size, seed (initial weights, validation
    split and batch order), the share held out for validation, the optimiser (Adam, or SGD
    with `momentum`)."""

    epochs: int = 8
    lr: float = 0.003
    batch: int = 32
    seed: int = 0
    val: float = 0.1
    optimizer: str = "adam"
    momentum: float = 0.9

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ParameterError(f"optimizer {self.optimizer!r} is not one of "
                                 f"{', '.join(OPTIMIZERS)}")
        if not 0 <= self.val < 1:
            raise ParameterError(f"val must be in [0, 1), got {self.val}")
        if self.epochs < 1 or self.batch < 1 or not self.lr > 0:
            raise ParameterError("epochs and batch must be at least 1 and lr above 0")


@dataclass(frozen=True)
class Epoch:
    """One completed epoch: its number, the weights after it, and its figures."""

    number: int
    weights: Weights
    loss: float                  # mean training loss over the epoch
    accuracy: float              # training accuracy during the epoch
    val_accuracy: float | None
    seconds: float
    losses: tuple[float, ...]    # per batch


class Optimizer:
    """Adam (Kingma & Ba, PyTorch's defaults β = 0.9, 0.999, ε = 1e-8) or SGD with
    momentum (PyTorch's form: v ← μv + g, w ← w − lr·v), updating arrays in place.  Its
    state is one flat array per moment, all parameters end to end: a step is a few numpy
    calls, not a few per parameter."""

    def __init__(self, options: TrainOptions):
        self.options = options
        self.state: dict[str, np.ndarray] = {}
        self.steps = 0

    def step(self, arrays: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
        o = self.options
        self.steps += 1
        g = np.concatenate([grads[name].ravel() for name in grads]).astype(np.float32)
        if not self.state:
            self.state = {"m": np.zeros_like(g), "v": np.zeros_like(g)}
        m, v = self.state["m"], self.state["v"]
        if o.optimizer == "sgd":
            m *= np.float32(o.momentum)
            m += g
            update = np.float32(o.lr) * m
        else:
            m *= np.float32(0.9)
            m += np.float32(0.1) * g
            v *= np.float32(0.999)
            v += np.float32(0.001) * g * g
            m_hat = m / np.float32(1 - 0.9 ** self.steps)
            v_hat = v / np.float32(1 - 0.999 ** self.steps)
            update = np.float32(o.lr) * m_hat / (np.sqrt(v_hat) + np.float32(1e-8))
        start = 0
        for name in grads:
            w = arrays[name]
            w -= update[start:start + w.size].reshape(w.shape).astype(w.dtype, copy=False)
            start += w.size


def split(data: Dataset, options: TrainOptions) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and validation images (a seeded shuffle)."""
    order = np.random.default_rng([options.seed, 1]).permutation(len(data.labels))
    held = int(round(options.val * len(order)))
    return order[held:], order[:held]


def accuracy(model: Model, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(model.probabilities(images).argmax(axis=1) == labels))


def train(model: Model, data: Dataset, options: TrainOptions, on_batch=None):
    """Train `model` in place; yields an `Epoch` after each epoch.  `on_batch(done, total,
    loss)` is called after each batch.  Same data, network and options: same weights."""
    from .model import keep_freed_memory

    train_index, val_index = split(data, options)
    if len(train_index) == 0:
        raise ParameterError("val leaves no image to train on")
    keep_freed_memory()
    optimizer = Optimizer(options)
    rng = np.random.default_rng([options.seed, 2])
    batches = (len(train_index) + options.batch - 1) // options.batch
    for number in range(1, options.epochs + 1):
        start = time.perf_counter()
        order = rng.permutation(train_index)
        losses, correct = [], 0
        for b in range(batches):
            chosen = order[b * options.batch:(b + 1) * options.batch]
            labels = data.labels[chosen]
            with np.errstate(over="ignore", invalid="ignore"):   # divergence: said below
                loss, grads, logits = model.loss_and_gradients(data.images[chosen], labels)
                if np.isfinite(loss):
                    optimizer.step(model.weights.arrays, grads)
            if not np.isfinite(loss):
                raise ConvcliError(f"training diverged in epoch {number}, batch {b + 1}: the "
                                   f"loss is {loss}; nothing written (try a smaller "
                                   f"lr={options.lr:g})")
            losses.append(loss)
            correct += int(np.sum(logits.argmax(axis=1) == labels))
            if on_batch is not None:
                on_batch(b + 1, batches, loss)
        seconds = time.perf_counter() - start
        if not all(np.isfinite(w).all() for w in model.weights.arrays.values()):
            raise ConvcliError(f"training diverged in epoch {number}: the weights overflowed; "
                               f"nothing written (try a smaller lr={options.lr:g})")
        val = accuracy(model, data.images[val_index], data.labels[val_index]) \
            if len(val_index) else None
        yield Epoch(number, model.weights.copy(), float(np.mean(losses)),
                    correct / len(train_index), val, seconds, tuple(losses))


def provenance(data_path, data: Dataset, network_path, options: TrainOptions,
               epoch: Epoch, interrupted: bool) -> dict:
    """Where trained weights come from: data digest, network, options, date, accuracy."""
    import datetime
    from dataclasses import asdict

    from .learn import file_digest

    return {"data": str(data_path), "data_sha256": data.digest, "net": str(network_path),
            "net_sha256": file_digest(network_path), "options": asdict(options),
            "epochs_completed": epoch.number, "interrupted": interrupted,
            "train_loss": round(epoch.loss, 6), "train_accuracy": round(epoch.accuracy, 6),
            "val_accuracy": None if epoch.val_accuracy is None else round(epoch.val_accuracy, 6),
            "classes": list(data.classes),
            "date": datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
            .isoformat(), "trainer": "convcli train"}
