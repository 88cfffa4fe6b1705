"""Slow, obviously correct references that the fast paths are compared against.

Padding uses numpy.pad with numpy's own mode names, so it is independent of convcli's
index maps.
"""

import math

import numpy as np

#: convcli's padding modes in numpy.pad's words.
NUMPY_PAD = {"zeros": "constant", "reflect": "reflect", "symmetric": "symmetric",
             "replicate": "edge", "circular": "wrap"}


def naive_conv2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0), dilation=(1, 1),
                 groups=1, pad_mode="zeros", mode="corr"):
    """PyTorch's conv2d by its definition: loops over every output value, float64.

    x: (N, Cin, H, W); weight: (Cout, Cin/groups, kh, kw); padding: (top, bottom, left, right).
    """
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    if mode == "conv":
        weight = weight[:, :, ::-1, ::-1]
    n, cin, h, w = x.shape
    cout, cig, kh, kw = weight.shape
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NUMPY_PAD[pad_mode])
    sh, sw = stride
    dh, dw = dilation
    ho = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    wo = (w + left + right - dw * (kw - 1) - 1) // sw + 1
    cog = cout // groups
    out = np.zeros((n, cout, ho, wo))
    for b in range(n):
        for co in range(cout):
            g = co // cog
            for oy in range(ho):
                for ox in range(wo):
                    total = 0.0 if bias is None else float(bias[co])
                    for ci in range(cig):
                        for i in range(kh):
                            for j in range(kw):
                                total += weight[co, ci, i, j] * xp[b, g * cig + ci, oy * sh + i * dh, ox * sw + j * dw]
                    out[b, co, oy, ox] = total
    return out


def naive_png_filter_rows(rows, bpp, prior):
    """PNG row filtering as the specification words it, byte by byte: each row filtered with
    None, Sub, Up, Average and Paeth (bytes left of the row are zero), keeping the one with
    the most zero bytes (the first on ties), preceded by its number."""
    def paeth(a, b, c):
        p = a + b - c
        pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
        return a if pa <= pb and pa <= pc else b if pb <= pc else c

    out = []
    above = [int(v) for v in prior]
    for row in rows:
        raw = [int(v) for v in row]
        left = [raw[i - bpp] if i >= bpp else 0 for i in range(len(raw))]
        corner = [above[i - bpp] if i >= bpp else 0 for i in range(len(raw))]
        trials = [raw,
                  [r - a for r, a in zip(raw, left)],
                  [r - b for r, b in zip(raw, above)],
                  [r - (a + b) // 2 for r, a, b in zip(raw, left, above)],
                  [r - paeth(a, b, c) for r, a, b, c in zip(raw, left, above, corner)]]
        trials = [[v % 256 for v in trial] for trial in trials]
        zeros = [trial.count(0) for trial in trials]
        best = zeros.index(max(zeros))
        out.append([best] + trials[best])
        above = raw
    return np.array(out, np.uint8).reshape(len(rows), len(rows[0]) + 1)


def naive_conv2d_input(input_shape, weight, grad_output, stride=(1, 1), padding=(0, 0, 0, 0),
                       dilation=(1, 1), groups=1, pad_mode="zeros"):
    """The input gradient of conv2d by its definition: the output gradient scattered onto
    the padded grid (`naive_conv_transpose2d`, unpadded), then every padded position's
    sum added to the pixel numpy.pad copies there (found by padding an image of pixel
    numbers), float64."""
    n, cin, h, w = input_shape
    top, bottom, left, right = padding
    scattered = naive_conv_transpose2d(grad_output, weight, stride=stride, groups=groups,
                                       dilation=dilation)
    grid = np.zeros((n, cin, h + top + bottom, w + left + right))
    grid[:, :, :scattered.shape[2], :scattered.shape[3]] = scattered
    numbers = np.arange(h * w).reshape(h, w)
    if pad_mode == "zeros":
        numbers = np.pad(numbers, ((top, bottom), (left, right)), constant_values=-1)
    else:
        numbers = np.pad(numbers, ((top, bottom), (left, right)), mode=NUMPY_PAD[pad_mode])
    out = np.zeros((n, cin, h * w))
    for py in range(numbers.shape[0]):
        for px in range(numbers.shape[1]):
            if numbers[py, px] >= 0:
                out[:, :, numbers[py, px]] += grid[:, :, py, px]
    return out.reshape(input_shape)


def naive_conv2d_weight(x, weight_shape, grad_output, stride=(1, 1), padding=(0, 0, 0, 0),
                        dilation=(1, 1), groups=1, pad_mode="zeros"):
    """The weight gradient of conv2d by its definition, float64."""
    x = np.asarray(x, np.float64)
    cout, cig, kh, kw = weight_shape
    top, bottom, left, right = padding
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), mode=NUMPY_PAD[pad_mode])
    sh, sw = stride
    dh, dw = dilation
    n, _, ho, wo = grad_output.shape
    cog = cout // groups
    out = np.zeros(weight_shape)
    for co in range(cout):
        g = co // cog
        for ci in range(cig):
            for i in range(kh):
                for j in range(kw):
                    patch = xp[:, g * cig + ci, i * dh:i * dh + sh * (ho - 1) + 1:sh,
                               j * dw:j * dw + sw * (wo - 1) + 1:sw]
                    out[co, ci, i, j] = np.sum(patch * grad_output[:, co])
    return out


def naive_conv_transpose2d(x, weight, bias=None, stride=(1, 1), padding=(0, 0, 0, 0),
                           output_padding=(0, 0), groups=1, dilation=(1, 1)):
    """PyTorch's conv_transpose2d by its definition, float64: every input value scatters
    its kernel times itself into the output at (position · stride − padding + tap · dilation).

    x: (N, Cin, H, W); weight: (Cin, Cout/groups, kh, kw); padding: (top, bottom, left, right).
    """
    x = np.asarray(x, np.float64)
    weight = np.asarray(weight, np.float64)
    n, cin, h, w = x.shape
    _, cog, kh, kw = weight.shape
    top, bottom, left, right = padding
    sh, sw = stride
    dh, dw = dilation
    ho = (h - 1) * sh - top - bottom + dh * (kh - 1) + output_padding[0] + 1
    wo = (w - 1) * sw - left - right + dw * (kw - 1) + output_padding[1] + 1
    cig = cin // groups
    out = np.zeros((n, cog * groups, ho, wo))
    for b in range(n):
        for ci in range(cin):
            g = ci // cig
            for y in range(h):
                for xx in range(w):
                    for co in range(cog):
                        for i in range(kh):
                            for j in range(kw):
                                oy, ox = y * sh - top + i * dh, xx * sw - left + j * dw
                                if 0 <= oy < ho and 0 <= ox < wo:
                                    out[b, g * cog + co, oy, ox] += x[b, ci, y, xx] * weight[ci, co, i, j]
    if bias is not None:
        out += np.asarray(bias, np.float64)[None, :, None, None]
    return out


def naive_quantize(planes, absolute, offset, scale, top, rounding, out):
    """out[y, x, c] = clip((|v| if absolute else v) · scale + offset, 0, top), rounded to
    nearest when `rounding`, NaN as 0, value by value; returns (values clipping changed by
    more than rounding would, smallest and largest finite input: NaN, NaN if none)."""
    slack = 0.5 if rounding else 0.0
    count, low, high = 0, math.inf, -math.inf
    channels, height, width = planes.shape
    for y in range(height):
        for x in range(width):
            for c in range(channels):
                v = float(planes[c, y, x])
                if math.isfinite(v):
                    low, high = min(low, v), max(high, v)
                v = (abs(v) if absolute else v) * scale + offset
                if not v >= 0:                      # negative or NaN
                    count += not v >= -slack
                    v = 0.0
                elif v > top:
                    count += v > top + slack
                    v = top
                out[y, x, c] = np.rint(v) if rounding else v
    return (count, math.nan, math.nan) if low > high else (count, low, high)


def naive_max_pool2d(x, kernel, stride, padding=(0, 0), dilation=(1, 1)):
    """Max pooling by its definition, window by window over the -inf-padded image, and
    where each maximum is (flat index in its plane, the first of equal values)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (w + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out, where = np.empty((n, c, ho, wo)), np.empty((n, c, ho, wo), np.int64)
    for b, ch, oy, ox in np.ndindex(n, c, ho, wo):
        best, at = -np.inf, -1
        for i, j in np.ndindex(kh, kw):
            r, s = oy * sh + i * dh - ph, ox * sw + j * dw - pw
            if 0 <= r < h and 0 <= s < w and (at < 0 or x[b, ch, r, s] > best):
                best, at = x[b, ch, r, s], r * w + s
        out[b, ch, oy, ox], where[b, ch, oy, ox] = best, at
    return out, where
