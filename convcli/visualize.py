"""Feature visualisation by optimisation (Olah, Mordvintsev and Schubert, "Feature
Visualization", Distill 2017): start from faint noise and ascend a channel's mean
activation, with the regularisers that keep the pictures readable — random jitter and
small rescaling each step, a total-variation and an L2 penalty, and a blurred
parameterisation (the image is smoothed a little after every step, so high frequencies
the network barely sees cannot grow)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .model import Model


@dataclass(frozen=True, kw_only=True)
class VisualizeOptions:
    steps: int = 200
    lr: float = 0.05
    jitter: int = 2              # pixels of random shift per step
    scale: float = 0.05          # random rescaling by up to ±scale per step
    tv: float = 0.02             # total-variation penalty weight
    l2: float = 0.01             # penalty on the distance from mid-gray
    blur: float = 0.5            # σ of the smoothing after each step (0: none)
    seed: int = 0


def channel_activation(model: Model, position: int, images: np.ndarray, channels) -> np.ndarray:
    """Mean activation of channel channels[i] of layer `position` for image i."""
    out, _ = model.forward(images, stop=position)
    return _mean_per_channel(out, channels)


def _mean_per_channel(out, channels):
    picked = out[np.arange(len(channels)), channels]
    return picked.reshape(len(channels), -1).mean(axis=1)


def _rescale(images: np.ndarray, factor: float) -> np.ndarray:
    """Zoom about the centre by `factor` (nearest sample, same size)."""
    _, _, h, w = images.shape
    ys = np.clip(np.rint((np.arange(h) - (h - 1) / 2) / factor + (h - 1) / 2), 0, h - 1).astype(int)
    xs = np.clip(np.rint((np.arange(w) - (w - 1) / 2) / factor + (w - 1) / 2), 0, w - 1).astype(int)
    return ys, xs


def visualize(model: Model, position: int, channels, options: VisualizeOptions):
    """Optimise one image per channel in `channels` of layer `position`.

    Returns
    -------
    (images, before, after)
        images (len(channels), C, H, W) in 0…1, and each channel's mean activation on
        its starting noise and on its final image.
    """
    from .conv import conv2d
    from .kernels import gaussian_kernel

    channels = np.asarray(channels)
    rng = np.random.default_rng(options.seed)
    shape = (len(channels), *model.network.input_shape)
    x = (0.5 + 0.01 * rng.standard_normal(shape)).astype(np.float32)
    before = channel_activation(model, position, x, channels)
    blur = None if options.blur <= 0 else \
        gaussian_kernel(options.blur, 3).astype(np.float32)[None, None].repeat(shape[1], 0)
    for _ in range(options.steps):
        dy, dx = rng.integers(-options.jitter, options.jitter + 1, 2)
        ys, xs = _rescale(x, 1 + rng.uniform(-options.scale, options.scale))
        seen = np.roll(x, (dy, dx), axis=(2, 3))[:, :, ys][:, :, :, xs]
        out, tape = model.forward(seen, stop=position)
        g = np.zeros_like(out)
        spatial = out[0, 0].size
        g[np.arange(len(channels)), channels] = 1 / spatial
        _, g_seen = model.backward(tape, g, input_grad=True)
        g_x = np.zeros_like(x)                    # undo the resampling and the shift
        np.add.at(g_x, (slice(None), slice(None), ys[:, None], xs[None, :]), g_seen)
        g_x = np.roll(g_x, (-dy, -dx), axis=(2, 3))
        g_x /= np.abs(g_x).reshape(len(x), -1).mean(axis=1)[:, None, None, None] + 1e-8
        step = options.lr * g_x - options.l2 * 2 * (x - 0.5) - options.tv * _tv_gradient(x)
        x = np.clip(x + step.astype(np.float32), 0, 1)
        if blur is not None:
            x = np.clip(conv2d(x, blur, None, 1, "same", 1, shape[1], "replicate"), 0, 1)
    after = channel_activation(model, position, x, channels)
    return x, before, after


def _tv_gradient(x: np.ndarray) -> np.ndarray:
    """The gradient of the anisotropic total variation Σ|x[i+1] − x[i]| (both axes)."""
    g = np.zeros_like(x)
    for axis in (2, 3):
        d = np.sign(np.diff(x, axis=axis))
        pad = [(0, 0)] * 4
        pad[axis] = (1, 0)
        before = np.pad(d, pad)
        pad[axis] = (0, 1)
        after = np.pad(d, pad)
        g += before - after
    return g


def grid_picture(images: np.ndarray, cell: int = 3):
    """(N, C, H, W) images in 0…1 as one tiled 8-bit `convcli.images.Picture` (channels
    averaged), each pixel `cell`² pixels."""
    from .images import Picture
    from .render import tile_maps

    tiled = tile_maps(np.rint(images.mean(axis=1) * 255).astype(np.uint8), fill=128)
    return Picture(np.repeat(np.repeat(tiled, cell, 0), cell, 1)[:, :, None])
