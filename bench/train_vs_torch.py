"""One training epoch of samples/nets/shapes_cnn.yaml on samples/shapes/shapes.npz: convcli
against PyTorch on the CPU (2 threads), each in its own process, same network, batch size,
optimiser, split and batch order; prints the medians, their ratio and the accuracies.

    python bench/train_vs_torch.py [--torch-python PYTHON] [--rounds 5] [--epochs 5]

PYTHON is an interpreter with torch (default: this one).  Each process trains --epochs
epochs; the first is a warm-up (compilation, caches), the others are timed; the processes
alternate over --rounds rounds.  Target: ratio ≤ 1.0.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "samples/shapes/shapes.npz"
NET = ROOT / "samples/nets/shapes_cnn.yaml"
OPTIONS = dict(lr=0.003, batch=32, seed=0, val=0.1)

CONVCLI = """
import json, sys
from convcli.model import Model, initial_weights
from convcli.net import load_network
from convcli.train import TrainOptions, load_dataset, train
network = load_network({net!r})
data = load_dataset({data!r})
model = Model(network, initial_weights(network, {seed}))
epochs = list(train(model, data, TrainOptions(epochs={epochs}, lr={lr}, batch={batch},
                                               seed={seed}, val={val})))
print(json.dumps({{"seconds": [e.seconds for e in epochs], "val": epochs[-1].val_accuracy}}))
"""

TORCH = """
import json, time
import numpy as np
import torch
torch.set_num_threads(2)
torch.manual_seed({seed})
with np.load({data!r}) as d:
    images = torch.tensor(d["images"].astype(np.float32) / 255)
    labels = torch.tensor(d["labels"])
order = np.random.default_rng([{seed}, 1]).permutation(len(labels))   # convcli's split
held = int(round({val} * len(order)))
train_index, val_index = order[held:], order[:held]
net = torch.nn.Sequential(
    torch.nn.Conv2d(1, 8, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
    torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 6))
optimizer = torch.optim.Adam(net.parameters(), lr={lr})
rng = np.random.default_rng([{seed}, 2])
seconds = []
for epoch in range({epochs}):
    start = time.perf_counter()
    shuffled = rng.permutation(train_index)
    for b in range(0, len(shuffled), {batch}):
        chosen = torch.tensor(shuffled[b:b + {batch}])
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(images[chosen]), labels[chosen])
        loss.backward()
        optimizer.step()
    seconds.append(time.perf_counter() - start)
with torch.no_grad():
    val = float((net(images[val_index]).argmax(1) == labels[val_index]).float().mean())
print(json.dumps({{"seconds": seconds, "val": val}}))
"""


def run(python: str, script: str, epochs: int) -> dict:
    code = script.format(net=str(NET), data=str(DATA), epochs=epochs, **OPTIONS)
    environment = {**os.environ, "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2"}
    done = subprocess.run([python, "-c", code], check=True, capture_output=True, text=True,
                          env=environment)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--torch-python", default=sys.executable)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    ours, theirs, accuracy = [], [], {}
    for _ in range(args.rounds):
        for name, python, script, times in (("convcli", sys.executable, CONVCLI, ours),
                                            ("torch", args.torch_python, TORCH, theirs)):
            result = run(python, script, args.epochs)
            times.extend(result["seconds"][1:])
            accuracy[name] = result["val"]
    a, b = statistics.median(ours), statistics.median(theirs)
    images = 2400 * (1 - OPTIONS["val"])
    print(f"one epoch ({images:.0f} images, batch {OPTIONS['batch']}): convcli {a:.3f} s, "
          f"PyTorch {b:.3f} s (medians of {len(ours)}), ratio {a / b:.2f} (target ≤ 1.0)")
    print(f"val accuracy after {args.epochs} epochs: convcli {accuracy['convcli']:.1%}, "
          f"PyTorch {accuracy['torch']:.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
