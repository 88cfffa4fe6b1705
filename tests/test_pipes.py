"""`-` as input and FORMAT:- as output: images through pipes, messages on stderr."""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from convcli.errors import ParameterError
from convcli.images import read_image
from convcli.pipes import read_stream, sniff_extension, stdout_extension

ROOT = Path(__file__).resolve().parent.parent


def convcli(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "convcli", *map(str, args)], input=stdin,
                          capture_output=True, cwd=ROOT, timeout=120)


def test_apply_reads_stdin_and_writes_png_to_stdout(tmp_path, samples):
    expected = tmp_path / "file.png"
    assert convcli("apply", samples / "camera.png", "-k", "sobel", "-o", expected).returncode == 0
    piped = convcli("apply", "-", "-k", "sobel", "-o", "png:-",
                    stdin=(samples / "camera.png").read_bytes())
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == expected.read_bytes()                 # data only on stdout
    assert piped.stderr.decode().startswith("wrote - (512×512 W×H")


def test_two_commands_in_a_pipe_equal_the_pipeline(tmp_path, samples):
    first = convcli("apply", "-", "-k", "box:3", "-o", "-",     # '-' keeps the input's format
                    stdin=(samples / "camera.png").read_bytes())
    second = convcli("apply", "-", "-k", "sobel_x", "-o", "npy:-", stdin=first.stdout)
    assert first.returncode == 0 and second.returncode == 0, second.stderr
    piped = np.load(io.BytesIO(second.stdout))
    # the first stage writes 8-bit pixels, as the same two commands with files do
    staged = tmp_path / "staged.png"
    convcli("apply", samples / "camera.png", "-k", "box:3", "-o", staged)
    reference = tmp_path / "reference.npy"
    convcli("apply", staged, "-k", "sobel_x", "--range", "float", "-o", reference)
    np.testing.assert_array_equal(piped, np.load(reference))


@pytest.mark.parametrize("data, words", [
    (b"", "standard input is empty (0 bytes)"),
    (b"hello\n", "standard input is not an image convcli reads (it starts with b'hello\\n')"),
])
def test_bad_stdin_is_one_line(tmp_path, data, words):
    result = convcli("apply", "-", "-k", "box:3", "-o", tmp_path / "x.png", stdin=data)
    assert result.returncode == 2
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {words}; pipe ")
    assert not (tmp_path / "x.png").exists()


def test_unknown_stdout_format_and_batches_through_pipes_are_refused(tmp_path, samples):
    unknown = convcli("apply", samples / "camera.png", "-k", "box:3", "-o", "gif:-")
    assert unknown.returncode == 2 and b"unknown format 'gif' for standard output" in unknown.stderr
    assert unknown.stdout == b""
    batch = convcli("apply", samples, "-k", "box:3", "-o", "png:-")
    assert batch.returncode == 2 and b"standard input and output carry one image" in batch.stderr


@pytest.mark.parametrize("name", ["camera.png", "astronaut.png"])
def test_sniffing_names_the_format_of_every_sample(samples, name):
    assert sniff_extension((samples / name).read_bytes()[:16]) == ".png"


def test_sniffing_knows_each_signature(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((2, 2)))
    assert sniff_extension((tmp_path / "a.npy").read_bytes()[:16]) == ".npy"
    assert sniff_extension(b"\xff\xd8\xff\xe0") == ".jpg"
    assert sniff_extension(b"II*\x00....") == sniff_extension(b"MM\x00*....") == ".tiff"
    assert sniff_extension(b"RIFF\x10\x00\x00\x00WEBPVP8 ") == ".webp"
    assert sniff_extension(b"BM6\x00") == ".bmp"


def test_read_stream_is_bounded_and_keeps_the_bytes(tmp_path, samples):
    data = (samples / "camera.png").read_bytes()
    with pytest.raises(ParameterError, match="more than 100 bytes"):
        read_stream(io.BytesIO(data), tmp_path, limit=100)
    path = read_stream(io.BytesIO(data), tmp_path)
    assert path.suffix == ".png" and path.read_bytes() == data
    assert read_image(path).color.shape == (512, 512, 1)


def test_stdout_extension():
    source = Path("in.tif")
    assert stdout_extension("png:-", None, source) == ".png"
    assert stdout_extension("-", None, source) == ".tif"
    assert stdout_extension("-", "npy", source) == ".npy"
    assert stdout_extension("out.png", None, source) is None


def test_an_endless_stream_that_is_no_image_is_refused_at_once():
    """/dev/zero on stdin: refused from its first bytes, not read to the 2 GiB limit."""
    with open("/dev/zero", "rb") as zeros:
        result = subprocess.run([sys.executable, "-m", "convcli", "apply", "-", "-k", "sobel",
                                 "-o", "png:-"], stdin=zeros, capture_output=True, timeout=60)
    assert result.returncode == 2 and result.stdout == b""
    assert result.stderr.decode().startswith("Error: standard input is not an image")
