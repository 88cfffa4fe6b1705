"""Compiled codec kernels: PNG's row filters, chosen per row for run-length deflate."""

import numpy as np

from ..threads import parallel_for
from . import compiled


@compiled(nogil=True)
def _png_filter_rows(rows, bpp, prior, out, start, stop):
    """out[y] = raw row y of `rows` filtered with whichever of PNG's five filters gives the
    most zero bytes (best for run-length deflate), preceded by the filter's number, for y in
    [start, stop).

    Parameters
    ----------
    rows : ndarray of uint8, shape (H, row_bytes)
        Raw rows (big-endian samples, channels interleaved).
    bpp : int
        Bytes per pixel (the distance to the "left" byte).
    prior : ndarray of uint8, shape (row_bytes,)
        The raw row above the first (zeros at the top of the image).
    out : ndarray of uint8, shape (H, 1 + row_bytes)
        Written: the filter type byte, then the filtered row.
    start, stop : int
        The rows to filter.
    """
    width = rows.shape[1]
    trial = np.empty((5, width), np.uint8)
    for y in range(start, stop):
        raw = rows[y]
        up = rows[y - 1] if y > 0 else prior
        for i in range(width):
            trial[0, i] = raw[i]
            trial[2, i] = raw[i] - up[i]
        for i in range(bpp):
            trial[1, i] = raw[i]
            trial[3, i] = raw[i] - (up[i] >> 1)
            trial[4, i] = raw[i] - up[i]                # Paeth with left = corner = 0 is up
        for i in range(bpp, width):
            left, above, corner = np.int16(raw[i - bpp]), np.int16(up[i]), np.int16(up[i - bpp])
            trial[1, i] = raw[i] - raw[i - bpp]
            trial[3, i] = raw[i] - np.uint8((left + above) >> 1)
            pa = abs(above - corner)                    # |p − left| with p = left + above − corner
            pb = abs(left - corner)
            pc = abs(left + above - 2 * corner)
            paeth = left if (pa <= pb and pa <= pc) else (above if pb <= pc else corner)
            trial[4, i] = raw[i] - np.uint8(paeth)
        best, most = 0, -1
        for k in range(5):
            zeros = 0
            for i in range(width):
                zeros += trial[k, i] == 0
            if zeros > most:
                best, most = k, zeros
        out[y, 0] = best
        for i in range(width):
            out[y, i + 1] = trial[best, i]


def png_filter_rows(rows, bpp, prior):
    """Filter raw PNG rows (H, row_bytes) for deflate (see `_png_filter_rows`), rows in
    parallel; returns (H, 1 + row_bytes)."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    parallel_for(_png_filter_rows, rows.shape[0], rows, bpp, prior, out)
    return out


