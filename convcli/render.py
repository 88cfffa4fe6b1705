"""Pictures of numbers: weight heatmaps and tiled feature maps (numpy and Pillow only)."""

from __future__ import annotations

import math

import numpy as np

#: Diverging colours for heatmaps: negative → blue, zero → white, positive → red.
NEGATIVE = np.array([33, 102, 172], np.float64)
ZERO = np.array([247, 247, 247], np.float64)
POSITIVE = np.array([178, 24, 43], np.float64)
BORDER = 128


def diverging_colors(values: np.ndarray, limit: float | None = None) -> np.ndarray:
    """RGB uint8 colours for `values`, symmetric around zero (±`limit` saturates)."""
    limit = float(np.abs(values).max()) if limit is None else limit
    t = values / limit if limit > 0 else np.zeros_like(values, np.float64)
    t = np.clip(t, -1, 1)[..., None]
    colors = np.where(t < 0, ZERO + (NEGATIVE - ZERO) * -t, ZERO + (POSITIVE - ZERO) * t)
    return np.rint(colors).astype(np.uint8)


def heatmap(matrix: np.ndarray, cell: int = 40, labels: list[str] | None = None,
            limit: float | None = None):
    """A Pillow image of a 2-D matrix: one `cell`-pixel square per value, coloured by sign
    and size, with gridlines and, if given, a label per cell."""
    from PIL import Image, ImageDraw

    rows, cols = matrix.shape
    colors = diverging_colors(np.asarray(matrix, np.float64), limit)
    pixels = np.repeat(np.repeat(colors, cell, axis=0), cell, axis=1)
    if cell >= 4:
        pixels[::cell, :] = BORDER
        pixels[:, ::cell] = BORDER
    pixels = np.pad(pixels, ((0, 1), (0, 1), (0, 0)), constant_values=BORDER)
    image = Image.fromarray(pixels)
    if labels is not None and cell >= 16:
        draw = ImageDraw.Draw(image)
        shades = np.asarray(colors, np.float64) @ np.array([0.299, 0.587, 0.114])
        for index, label in enumerate(labels):
            r, c = divmod(index, cols)
            fill = (0, 0, 0) if shades[r, c] > 128 else (255, 255, 255)
            draw.text((c * cell + cell / 2, r * cell + cell / 2), label, fill=fill, anchor="mm")
    return image


def value_labels(matrix: np.ndarray, digits: int = 3) -> list[str]:
    """Short labels for the cells of a weight matrix."""
    return [f"{v:.{digits}g}" for v in np.asarray(matrix).ravel()]


def kernel_picture(weights: np.ndarray, cell: int = 40):
    """All 2-D kernels of a (F, kh, kw) or (Cout, Cin, kh, kw) array side by side, one
    heatmap each with a shared colour scale, rows of filters for 4-D weights."""
    from PIL import Image

    from .limits import MAX_VALUES, check_size

    grid = weights[None] if weights.ndim == 3 else weights      # rows of filters
    check_size(f"{cell} pixels per weight of {grid.shape[0] * grid.shape[1]} "
               f"{grid.shape[2]}×{grid.shape[3]} kernel(s) gives a picture of",
               3 * grid[..., 0, 0].size * grid.shape[2] * grid.shape[3] * cell * cell,
               MAX_VALUES, hint="choose a smaller cell=", parameter="cell")
    limit = float(np.abs(weights).max()) or 1.0
    tiles = [[heatmap(k, cell, value_labels(k), limit) for k in row] for row in grid]
    gap = max(4, cell // 4)
    tile_w, tile_h = tiles[0][0].size
    canvas = Image.new("RGB", (len(tiles[0]) * (tile_w + gap) - gap,
                               len(tiles) * (tile_h + gap) - gap), (255, 255, 255))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            canvas.paste(tile, (c * (tile_w + gap), r * (tile_h + gap)))
    return canvas


def tile_maps(maps: np.ndarray, border: int = 2, fill=BORDER) -> np.ndarray:
    """Tile (C, H, W) maps into one near-square (rows·H, cols·W) image with `border`-pixel
    separators; maps keep their dtype."""
    count, height, width = maps.shape
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    canvas = np.full((rows * (height + border) + border, cols * (width + border) + border), fill,
                     maps.dtype)
    for index in range(count):
        r, c = divmod(index, cols)
        y, x = border + r * (height + border), border + c * (width + border)
        canvas[y:y + height, x:x + width] = maps[index]
    return canvas


def line_chart(values, x_label: str, y_label: str, size=(720, 420)):
    """A plain line chart of `values` against their index (log scale when they span more
    than two decades), as a Pillow image."""
    from PIL import Image, ImageDraw

    values = np.asarray(values, np.float64)
    width, height = size
    left, right, top, bottom = 80, 20, 36, 50
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    positive = values[values > 0]
    log = positive.size == values.size and positive.size > 1 and positive.max() > 100 * positive.min()
    shown = np.log10(values) if log else values
    low, high = float(shown.min()), float(shown.max())
    span = high - low or 1.0
    xs = left + (width - left - right) * np.arange(values.size) / max(1, values.size - 1)
    ys = top + (height - top - bottom) * (high - shown) / span
    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    draw.line(list(zip(xs.tolist(), ys.tolist())), fill=tuple(int(c) for c in POSITIVE), width=2)
    for fraction in (0.0, 0.5, 1.0):
        value = high - fraction * span
        label = f"{10 ** value:.3g}" if log else f"{value:.3g}"
        y = top + fraction * (height - top - bottom)
        draw.text((left - 6, y), label, fill=(0, 0, 0), anchor="rm")
    draw.text((left, height - bottom + 8), "1", fill=(0, 0, 0), anchor="lt")
    draw.text((width - right, height - bottom + 8), str(values.size), fill=(0, 0, 0), anchor="rt")
    draw.text(((left + width - right) / 2, height - 12), x_label, fill=(0, 0, 0), anchor="mm")
    draw.text(((left + width - right) / 2, top / 2), y_label + (" (log scale)" if log else ""),
              fill=(0, 0, 0), anchor="mm")
    return image


#: Outline colours for nested rectangles, one per layer (cycled).
PALETTE = [(228, 26, 28), (55, 126, 184), (77, 175, 74), (152, 78, 163), (255, 127, 0),
           (166, 86, 40), (247, 129, 191), (0, 170, 170), (120, 120, 0), (30, 30, 30)]


def draw_windows(image: np.ndarray, windows, labels: list[str], point=None):
    """The (H, W, 3) uint8 image with one rectangle per (top, bottom, left, right) window,
    inclusive, in its own colour, and a legend beside it; small images are enlarged."""
    from PIL import Image, ImageDraw

    scale = max(1, int(np.ceil(384 / max(image.shape[:2]))))
    picture = Image.fromarray(image).resize((image.shape[1] * scale, image.shape[0] * scale),
                                            Image.NEAREST)
    legend_width = 220
    line = 16
    canvas = Image.new("RGB", (picture.width + legend_width,
                               max(picture.height, line * (len(windows) + 2))), (255, 255, 255))
    canvas.paste(picture, (0, 0))
    draw = ImageDraw.Draw(canvas)
    for index, ((top, bottom, left, right), label) in enumerate(zip(windows, labels)):
        colour = PALETTE[index % len(PALETTE)]
        draw.rectangle([left * scale, top * scale, (right + 1) * scale - 1,
                        (bottom + 1) * scale - 1], outline=colour, width=2)
        y = line * (index + 1)
        draw.rectangle([picture.width + 8, y, picture.width + 20, y + 10], fill=colour)
        draw.text((picture.width + 26, y - 1), label, fill=(0, 0, 0))
    if point is not None:
        cy, cx = (v * scale + scale // 2 for v in point)
        draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=(255, 255, 0), outline=(0, 0, 0))
    return canvas
