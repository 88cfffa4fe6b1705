"""The codec libraries convcli uses against the code of convcli's own they replaced.

    git archive 873ec5e convcli | tar -x -C /tmp/former    # the former package
    pip install '.[bench]' && python bench/codecs_vs_former.py /tmp/former/convcli

2048² images, the former code's and the library's runs alternating, medians; the ratio is
library ÷ former convcli code.  Each row checks first that both give the same pixels (or
bytes).  These are the figures behind the README's reasons for tifffile, imagecodecs and
zlib-ng, and for deleting the compiled quantizer.
"""

import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import median_seconds  # noqa: E402

from convcli import _core_numpy, codecs  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def former_package(source: Path, into: Path):
    """Import the former package as ``convcli_former`` (its imports are relative)."""
    target = into / "convcli_former"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
    plan = target / "plan.py"
    plan.write_text(plan.read_text().replace('"convcli._core"', '"convcli_former._core"'))
    sys.path.insert(0, str(into))
    import convcli_former._core as core
    from convcli_former import codecs as former_codecs

    return core, former_codecs


def line(label: str, former, library, repeat: int = 7) -> None:
    old, new = median_seconds(former, library, repeat=repeat, warmup=1)
    print(f"{label:<46} former {old * 1e3:8.1f} ms   library {new * 1e3:8.1f} ms   "
          f"ratio {new / old:5.2f}", flush=True)


def main() -> None:
    import cv2
    from PIL import Image

    import convcli._core.codecs  # noqa: F401  (both PNG encoders with compiled row filters)

    work = Path(tempfile.mkdtemp())
    core, former = former_package(Path(sys.argv[1]), work)
    rgb8 = np.asarray(Image.open(SAMPLES / "astronaut.png").resize((2048, 2048), Image.BICUBIC))
    noise = np.random.default_rng(0).integers(0, 64, rgb8.shape)
    rgb16 = (rgb8.astype(np.uint16) * 257 + noise).astype(np.uint16)

    for label, image, compression in (("16-bit RGB LZW", rgb16, 5), ("16-bit RGB deflate", rgb16, 8),
                                      ("8-bit RGB LZW", rgb8, 5)):
        path = work / f"{label}.tif"
        cv2.imwrite(str(path), image[:, :, ::-1].copy(), [cv2.IMWRITE_TIFF_COMPRESSION, compression])
        assert (former.read_tiff(path)[0] == codecs.read_tiff(path)[0]).all()
        line(f"TIFF read {label} (libtiff's file)", lambda: former.read_tiff(path),
             lambda: codecs.read_tiff(path))
    for label, image in (("16-bit RGB", rgb16), ("8-bit RGB", rgb8)):
        sizes = [len(_written(former.write_tiff, image)), len(_written(codecs.write_tiff, image))]
        line(f"TIFF write {label} (uncompressed vs deflate)",
             lambda: _written(former.write_tiff, image), lambda: _written(codecs.write_tiff, image),
             repeat=5)
        print(f"{'':<46} {sizes[0] / 1e6:.1f} MB → {sizes[1] / 1e6:.1f} MB")
    path = work / "rgb16.png"
    cv2.imwrite(str(path), rgb16[:, :, ::-1].copy())
    assert (former.read_png(path)[0] == codecs.read_png(path)[0]).all()
    line("PNG read 16-bit RGB (libpng's file)", lambda: former.read_png(path),
         lambda: codecs.read_png(path))
    for label, image in (("8-bit RGB", rgb8), ("16-bit RGB", rgb16)):
        assert _written(former.write_png, image, page=False) == _written(codecs.write_png, image,
                                                                         page=False)
        line(f"PNG encode {label} (zlib vs zlib-ng)",
             lambda: former.write_png(io.BytesIO(), image), lambda: codecs.write_png(io.BytesIO(), image))
    for rows, label in ((2**21 // (3 * 2048), "a band, 3×341×2048"), (2048, "3×2048×2048")):
        planes = (np.random.default_rng(1).standard_normal((3, rows, 2048)) * 100 + 128).astype(np.float32)
        a, b = np.empty((rows, 2048, 3), np.uint8), np.empty((rows, 2048, 3), np.uint8)
        args = (planes, False, 0.0, 1.0, 255.0, True)
        assert core.quantize(*args, a) == _core_numpy.quantize(*args, b) and (a == b).all()
        line(f"quantize {label} (compiled vs numpy)", lambda: core.quantize(*args, a),
             lambda: _core_numpy.quantize(*args, b), repeat=9)
    shutil.rmtree(work)


def _written(write, image, page: bool = True) -> bytes:
    out = io.BytesIO()
    write(out, [image]) if page else write(out, image)
    return out.getvalue()


if __name__ == "__main__":
    main()
