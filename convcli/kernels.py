"""The kernel catalogue and kernel specs: everything a user can name with ``-k``.

A spec is one of: a catalogue name (``sobel_x``), a parametric kernel
(``gaussian:sigma=2``), an inline matrix (``"[[1,2,1],[2,4,2],[1,2,1]]/16"`` or
``"1 2 1; 2 4 2; 1 2 1"``) or a file (``@k.npy``, ``@k.txt``, ``@k.csv``,
``@bank.yaml:name``, or a conv layer of trained weights ``@weights.npz:layer``).  Catalogues are YAML files read with a safe loader; the built-in
one is ``kernels.yaml``, user ones come from ``$CONVCLI_KERNELS`` and ``--kernels``.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .choices import COMBINES, RANGE_HINTS
from .errors import KernelError
from .files import NAME_PATTERN, NAME_RULE, atomic_write, read_yaml
from .limits import MAX_WEIGHTS, check_size, product
from .plan import kernel_rank

ENTRY_KEYS = {"weights", "bank", "spec", "scale", "bias", "combine", "range", "description",
              "source", "learned"}
CATALOGUE_ENV = "CONVCLI_KERNELS"


@dataclass(frozen=True, eq=False)
class Kernel:
    """Weights and how to use them.

    ``weights`` is (F, kh, kw) — a bank of F 2-D kernels, each applied to every image
    channel on its own — or (Cout, Cin/groups, kh, kw), a layer that mixes channels as
    PyTorch's conv2d does.  ``bias`` has one value per filter.
    """

    name: str
    weights: np.ndarray
    bias: np.ndarray
    combine: str | None = None
    range: str | None = None
    description: str = ""
    source: str = ""
    learned: dict | None = field(default=None, repr=False)

    def __post_init__(self):
        from .limits import MAX_WEIGHT_MAGNITUDE

        for what, values in (("weights", self.weights), ("bias", self.bias)):
            with np.errstate(invalid="ignore"):
                largest = float(np.abs(values).max()) if values.size else 0.0
            if not largest <= MAX_WEIGHT_MAGNITUDE:       # NaN fails this too
                raise KernelError(f"kernel {self.name}: {what} must be finite and at most "
                                  f"{MAX_WEIGHT_MAGNITUDE:g} in magnitude (so results stay "
                                  f"finite in float32), got {largest:g}")

    @property
    def is_layer(self) -> bool:
        """True for a 4-D (Cout, Cin/groups, kh, kw) layer, False for a bank of 2-D kernels."""
        return self.weights.ndim == 4

    @property
    def size(self) -> tuple[int, int]:
        return self.weights.shape[-2], self.weights.shape[-1]

    @property
    def n_filters(self) -> int:
        return self.weights.shape[0]

    def range_hint(self) -> str:
        """The range policy `--range auto` uses: the entry's hint, else from the weights.

        Non-negative weights (smoothing) clip; signed weights that sum to zero (derivatives)
        take the absolute value; other signed kernels (sharpening) clip.
        """
        if self.range:
            return self.range
        if self.combine == "magnitude" or (self.weights >= 0).all():
            return "clip"
        sums = self.weights.reshape(self.weights.shape[0], -1).sum(axis=1)
        scale = np.abs(self.weights).reshape(self.weights.shape[0], -1).sum(axis=1)
        return "abs" if (np.abs(sums) <= 1e-6 * scale).all() else "clip"

    def filter_sums(self) -> np.ndarray:
        """The sum of each filter's weights (rounded to 9 decimals)."""
        return self.weights.reshape(self.n_filters, -1).sum(axis=1).round(9)

    def separable(self) -> bool:
        """Whether every 2-D kernel has rank 1 (an outer product of two 1-D kernels) within
        `convcli.plan.SEPARABLE_RTOL` of its largest singular value."""
        return kernel_rank(self.weights) <= 1


# ----------------------------------------------------------------------------------------
# Parametric kernels


def _odd_size(radius: float) -> int:
    return 2 * int(math.ceil(radius)) + 1


def _check_positive(name: str, **values: float) -> None:
    for key, value in values.items():
        if not (math.isfinite(value) and value > 0):
            raise KernelError(f"kernel {name}: {key} must be > 0 and finite, got {value}")


def _size(name: str, size, default: int) -> int:
    if size is None:
        return default
    if not math.isfinite(size) or size != int(size) or size < 1:
        raise KernelError(f"kernel {name}: size must be a positive whole number, got {size}")
    return int(size)


def _check_area(name: str, height: int, width: int) -> None:
    """Refuse a parametric kernel of more than `MAX_WEIGHTS` weights before building it."""
    check_size(f"kernel {name}: a {height}×{width} kernel", height * width, MAX_WEIGHTS,
               "weights", "choose a smaller size or sigma")


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.arange(size, dtype=np.float64) - (size - 1) / 2
    return np.meshgrid(r, r, indexing="ij")


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Sampled 2-D Gaussian normalised to sum 1; size defaults to ⌈3σ⌉·2+1."""
    _check_positive("gaussian", sigma=sigma)
    size = _size("gaussian", size, _odd_size(3 * sigma))
    _check_area("gaussian", size, size)
    yy, xx = _grid(size)
    g = np.exp(-(yy**2 + xx**2) / (2 * sigma**2))
    return g / g.sum()


def box_kernel(size: float, width: float | None = None) -> np.ndarray:
    """Mean over a size×size (or size×width) window."""
    h = _size("box", size, 3)
    w = _size("box", width, h)
    _check_area("box", h, w)
    return np.full((h, w), 1.0 / (h * w))


def log_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """Laplacian of Gaussian (negative centre), shifted to sum exactly zero."""
    _check_positive("log", sigma=sigma)
    size = _size("log", size, _odd_size(3 * sigma))
    _check_area("log", size, size)
    yy, xx = _grid(size)
    r2 = (yy**2 + xx**2) / (2 * sigma**2)
    k = -(1 - r2) * np.exp(-r2) / (math.pi * sigma**4)
    return k - k.mean()


def dog_kernel(sigma1: float, sigma2: float, size: int | None = None) -> np.ndarray:
    """Difference of Gaussians G(σ1) − G(σ2), each normalised, so the sum is zero."""
    _check_positive("dog", sigma1=sigma1, sigma2=sigma2)
    size = _size("dog", size, _odd_size(3 * max(sigma1, sigma2)))
    _check_area("dog", size, size)
    return gaussian_kernel(sigma1, size) - gaussian_kernel(sigma2, size)


def motion_kernel(length: float, angle: float = 0.0) -> np.ndarray:
    """A line `length` pixels long through the centre at `angle` degrees (counter-clockwise
    from the x axis), anti-aliased, summing to 1."""
    _check_positive("motion", length=length)
    if not math.isfinite(angle):
        raise KernelError(f"kernel motion: angle must be a finite number, got {angle}")
    size = _odd_size((length - 1) / 2)
    _check_area("motion", size, size)
    k = np.zeros((size, size))
    c = (size - 1) / 2
    theta = math.radians(angle)
    steps = max(2, int(math.ceil(length)) * 8)
    for t in np.linspace(-(length - 1) / 2, (length - 1) / 2, steps):
        y, x = c - t * math.sin(theta), c + t * math.cos(theta)
        y0, x0 = math.floor(y), math.floor(x)
        fy, fx = y - y0, x - x0
        for dy, wy in ((0, 1 - fy), (1, fy)):
            for dx, wx in ((0, 1 - fx), (1, fx)):
                if 0 <= y0 + dy < size and 0 <= x0 + dx < size:
                    k[y0 + dy, x0 + dx] += wy * wx
    return k / k.sum()


def unsharp_kernel(sigma: float = 1.0, amount: float = 1.0, size: int | None = None) -> np.ndarray:
    """Unsharp masking in one kernel: (1 + amount)·identity − amount·Gaussian(σ)."""
    g = gaussian_kernel(sigma, size)
    k = -amount * g
    c = g.shape[0] // 2
    k[c, c] += 1 + amount
    return k


#: Parametric kernels: name → (generator, parameter names in positional order, range hint).
PARAMETRIC = {
    "gaussian": (gaussian_kernel, ("sigma", "size"), "clip"),
    "box": (box_kernel, ("size", "width"), "clip"),
    "log": (log_kernel, ("sigma", "size"), "abs"),
    "dog": (dog_kernel, ("sigma1", "sigma2", "size"), "abs"),
    "motion": (motion_kernel, ("length", "angle"), "clip"),
    "unsharp": (unsharp_kernel, ("sigma", "amount", "size"), "clip"),
}


def parametric_kernel(spec: str) -> Kernel:
    """Build a kernel from ``name:params``, e.g. ``gaussian:sigma=2``, ``box:5``, ``box:3x5``."""
    name, _, params = spec.partition(":")
    name = name.strip().lower()
    if name not in PARAMETRIC:
        raise KernelError(f"kernel {spec!r}: no parametric kernel {name!r}; "
                          f"expected one of {', '.join(PARAMETRIC)}")
    function, names, hint = PARAMETRIC[name]
    values: dict[str, float] = {}
    items = [p.strip() for p in params.split(",") if p.strip()]
    if name == "box" and len(items) == 1 and "x" in items[0]:
        items = items[0].split("x")
    for position, item in enumerate(items):
        key, eq, text = item.partition("=")
        if not eq:
            if position >= len(names):
                raise KernelError(f"kernel {spec!r}: too many values; {name} takes "
                                  f"{', '.join(names)}")
            key, text = names[position], item
        key = key.strip().lower()
        if key not in names:
            raise KernelError(f"kernel {spec!r}: {name} has no parameter {key!r}; it takes "
                              f"{', '.join(names)}")
        if key in values:
            raise KernelError(f"kernel {spec!r}: {key} is given twice; the form is "
                              f"{name}:{','.join(f'{n}=V' for n in names)}")
        try:
            values[key] = float(text)
        except ValueError:
            raise KernelError(f"kernel {spec!r}: {key}={text!r} is not a number; the form is "
                              f"{name}:{','.join(f'{n}=V' for n in names)}") from None
        if not math.isfinite(values[key]):
            raise KernelError(f"kernel {spec!r}: {key}={text.strip()} is not a finite number")
    try:
        with np.errstate(all="ignore"):           # a tiny sigma: refused below, not warned
            weights = function(**values)
    except TypeError:
        required = [n for n in names if n not in values]
        raise KernelError(f"kernel {spec!r}: missing {', '.join(required)} "
                          f"(e.g. {name}:{names[0]}=2)") from None
    label = name + "".join(f"-{k}{'=' * k[-1].isdigit()}{v:g}" for k, v in values.items())
    return Kernel(label, weights[None], np.zeros(1), range=hint,
                  description=f"parametric {spec}", source="convcli")


# ----------------------------------------------------------------------------------------
# Matrices written by hand or in text files

_SCALE_SUFFIX = re.compile(r"^(?P<body>.*\S)\s*(?P<op>[/*])\s*(?P<factor>[-+]?[0-9.]+(?:[eE][-+]?\d+)?)$", re.S)


def parse_number(text, what: str, finite: bool = True) -> float:
    """A number, or a fraction written as a string such as "1/16" or "-1/256"; NaN and
    infinity (1e400 included) are refused if `finite`, else returned as they are."""
    try:
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            value = float(text)
        else:
            from fractions import Fraction

            value = float(Fraction(str(text).strip()))
    except (ValueError, ZeroDivisionError):
        raise KernelError(f"{what}: {text!r} is not a number") from None
    except OverflowError:
        value = math.inf
    if finite and not math.isfinite(value):
        raise KernelError(f"{what}: {text!r} is not a finite number (NaN and infinity are refused)")
    return value


def _rows_to_matrix(rows: list[list[str]], what: str) -> np.ndarray:
    if not rows or not any(rows):
        raise KernelError(f"{what}: the matrix is empty")
    values = []
    for index, row in enumerate(rows, 1):
        if not row:
            raise KernelError(f"{what}: row {index} is empty")
        if len(row) != len(rows[0]):
            raise KernelError(f"{what}: row {index} has {len(row)} values but row 1 has "
                              f"{len(rows[0])}; every row must have the same length")
        try:
            values.append([float(v) for v in row])
        except ValueError:
            bad = next(v for v in row if not _is_float(v))
            raise KernelError(f"{what}: row {index}: {bad!r} is not a number") from None
    matrix = np.array(values)
    if not np.isfinite(matrix).all():
        raise KernelError(f"{what}: the matrix holds NaN or infinity")
    return matrix


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


#: The forms of a matrix written as text.
MATRIX_FORMS = "[[a,b],[c,d]] (rows in brackets), [a,b,c] (one row) or 'a b; c d'"
_EMPTY_VALUE = re.compile(r"(^|[\[,;\n])\s*,|,\s*($|[\];\n])")


def parse_matrix(text: str, what: str = "matrix") -> np.ndarray:
    """Parse ``[[1,2,1],[2,4,2]]``, ``[1,2,1]``, ``1 2 1; 2 4 2`` or lines of numbers, with
    an optional trailing ``/16`` or ``*0.5``; anything else (``[1,[2,3]]``, ``1,,2``) is
    refused with the forms allowed."""
    factor = 1.0
    match = _SCALE_SUFFIX.match(text.strip())
    if match:
        value = parse_number(match["factor"], what)
        if match["op"] == "/" and value == 0:
            raise KernelError(f"{what}: cannot divide by zero")
        factor = 1 / value if match["op"] == "/" else value
        text = match["body"]
    body = text.strip()
    if body.count("[") != body.count("]"):
        raise KernelError(f"{what}: the brackets do not balance")
    if _EMPTY_VALUE.search(body):
        raise KernelError(f"{what}: a value is missing between commas; a matrix is {MATRIX_FORMS}")
    if body.startswith("["):
        rows = _bracketed_rows(body, what)
    elif "[" in body:
        raise KernelError(f"{what}: brackets must enclose the whole matrix; a matrix is "
                          f"{MATRIX_FORMS}")
    else:
        rows = [[v for v in re.split(r"[,\s]+", line.strip()) if v]
                for line in re.split(r"[;\n]", body)]
    while rows and not rows[-1]:
        rows.pop()
    with np.errstate(over="ignore"):
        matrix = _rows_to_matrix(rows, what) * factor
    if not np.isfinite(matrix).all():
        raise KernelError(f"{what}: scaling by {factor:g} overflows to infinity")
    return matrix


def _bracketed_rows(body: str, what: str) -> list[list[str]]:
    """The rows of ``[[…],[…]]`` or ``[…]`` (``;`` may end rows inside one pair)."""
    top: list = []
    stack = [top]
    for token in re.findall(r"[\[\];]|[^\[\];,\s]+", body):
        if token == "[":
            stack[-1].append([])
            stack.append(stack[-1][-1])
        elif token == "]":
            if len(stack) == 1:
                raise KernelError(f"{what}: the brackets do not balance")
            stack.pop()
        else:
            stack[-1].append(token)
    wrong = KernelError(f"{what}: not a matrix; a matrix is {MATRIX_FORMS}")
    if len(top) != 1 or not isinstance(top[0], list):
        raise wrong
    outer = top[0]
    if all(isinstance(item, str) for item in outer):
        text = " ".join(outer)
        return [line.split() for line in text.split(";")]
    if all(isinstance(row, list) and all(isinstance(v, str) and v != ";" for v in row)
           for row in outer):
        return outer
    raise wrong


def inline_kernel(spec: str) -> Kernel:
    """A kernel written on the command line."""
    weights = parse_matrix(spec, f"kernel {spec!r}")
    return Kernel(f"custom-{weights_digest(weights)}", weights[None], np.zeros(1),
                  description=f"inline {spec}")


def weights_digest(weights: np.ndarray) -> str:
    """Eight hex digits that differ when weights (or their shape) differ, the same on
    every run: they tell apart the names of kernels that have no name of their own."""
    import hashlib

    values = np.ascontiguousarray(weights, np.float64) + 0.0        # -0.0 is 0.0
    return hashlib.sha256(repr(values.shape).encode() + values.tobytes()).hexdigest()[:8]


def looks_like_matrix(spec: str) -> bool:
    """Whether a spec is an inline matrix rather than a name."""
    body = spec.strip()
    return body.startswith("[") or ";" in body or bool(re.fullmatch(r"[-+0-9.eE,\s/*]+", body))


# ----------------------------------------------------------------------------------------
# Catalogues


def builtin_catalogue_path() -> Path:
    """kernels.yaml inside the installed package, or at the root of a source checkout."""
    here = Path(__file__).resolve().parent
    packaged = here / "kernels.yaml"
    return packaged if packaged.is_file() else here.parent / "kernels.yaml"


class Catalogue:
    """Named kernels from one or more catalogue files; later files override earlier ones.

    `load` reads the built-in catalogue, ``$CONVCLI_KERNELS`` and the given files.

    Examples
    --------
    >>> from convcli import Catalogue
    >>> catalogue = Catalogue.load(use_env=False)
    >>> "sobel_x" in catalogue, catalogue.get("sharpen").size
    (True, (3, 3))
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self.files: list[Path] = []           # the catalogue files read, in order
        self._origin: dict[str, Path] = {}
        self._cache: dict[str, Kernel] = {}

    @classmethod
    def load(cls, user_files=(), use_env: bool = True) -> "Catalogue":
        """The built-in catalogue, then ``$CONVCLI_KERNELS`` (paths separated by
        ``os.pathsep``), then `user_files`."""
        catalogue = cls()
        catalogue.add_file(builtin_catalogue_path())
        env = os.environ.get(CATALOGUE_ENV, "") if use_env else ""
        for path in [p for p in env.split(os.pathsep) if p] + list(user_files):
            catalogue.add_file(Path(path))
        return catalogue

    def add_file(self, path: Path) -> None:
        data = read_yaml(path, "kernel catalogue", cache=True, error=KernelError)
        self.files.append(Path(path))
        if data is None:
            data = {"kernels": {}}
        if not isinstance(data, dict) or not isinstance(data.get("kernels"), dict):
            raise KernelError(f"kernel catalogue {path}: expected a mapping with a 'kernels' "
                              "mapping of name → entry")
        entries = data["kernels"]
        for name, entry in entries.items():
            if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
                raise KernelError(f"kernel catalogue {path}: entry {name!r}: {NAME_RULE}")
            if not isinstance(entry, dict):
                raise KernelError(f"kernel catalogue {path}: entry {name!r}: expected a mapping "
                                  "with weights, bank or spec")
        self._entries.update(entries)
        self._origin.update({name: path for name in entries})
        self._cache.clear()
        for name in entries:
            self.get(name)          # validate this file's entries now, naming file and entry

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def get(self, name: str) -> Kernel:
        """The kernel of a catalogue entry."""
        if name not in self._entries:
            import difflib

            close = difflib.get_close_matches(name, self._entries, n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(close)}?" if close else \
                "; `convcli kernels` lists them"
            raise KernelError(f"kernel {name!r} is not in the catalogue{hint}")
        if name not in self._cache:
            self._cache[name] = self._build(name, self._entries[name], ())
        return self._cache[name]

    def _build(self, name: str, entry: dict, chain: tuple[str, ...]) -> Kernel:
        what = f"kernel catalogue {self._origin[name]}: entry {name!r}"
        unknown = set(entry) - ENTRY_KEYS
        if unknown:
            raise KernelError(f"{what}: unknown field(s) {', '.join(sorted(map(str, unknown)))}; "
                              f"allowed: {', '.join(sorted(ENTRY_KEYS))}")
        sources = [k for k in ("weights", "bank", "spec") if k in entry]
        if len(sources) != 1:
            raise KernelError(f"{what}: needs exactly one of weights, bank or spec")
        if "weights" in entry:
            weights = _weights_from_yaml(entry["weights"], what)
        elif "spec" in entry:
            weights = parametric_kernel(str(entry["spec"])).weights
        else:
            bank = entry["bank"]
            if not isinstance(bank, list) or not bank:
                raise KernelError(f"{what}: bank must be a non-empty list of entry names")
            parts = []
            for member in bank:
                if member in chain + (name,):
                    raise KernelError(f"{what}: bank refers back to {member!r} (a cycle)")
                if member not in self._entries:
                    raise KernelError(f"{what}: bank member {member!r} is not in the catalogue")
                if member not in self._cache:
                    self._cache[member] = self._build(member, self._entries[member],
                                                      chain + (name,))
                parts.append(self._cache[member].weights)
            if len({p.shape[1:] for p in parts}) != 1:
                raise KernelError(f"{what}: bank members differ in size "
                                  f"({', '.join('×'.join(map(str, p.shape[1:])) for p in parts)})")
            check_size(f"{what}: bank", sum(p.size for p in parts), MAX_WEIGHTS, "weights")
            weights = np.concatenate(parts)
        check_size(f"{what}: weights", weights.size, MAX_WEIGHTS, "weights")
        with np.errstate(over="ignore"):
            weights = weights * parse_number(entry.get("scale", 1), f"{what}: scale")
        if not np.isfinite(weights).all():
            raise KernelError(f"{what}: scale makes a weight overflow to infinity")
        bias = entry.get("bias", 0)
        values = bias if isinstance(bias, list) else [bias] * weights.shape[0]
        if len(values) != weights.shape[0]:
            raise KernelError(f"{what}: bias has {len(values)} values for {weights.shape[0]} "
                              "filters; give one number or one per filter")
        bias = np.array([parse_number(v, f"{what}: bias") for v in values])
        combine = entry.get("combine")
        if combine is not None and combine not in COMBINES:
            raise KernelError(f"{what}: combine {combine!r} is not one of {', '.join(COMBINES)}")
        hint = entry.get("range")
        if hint is not None and hint not in RANGE_HINTS:
            raise KernelError(f"{what}: range {hint!r} is not one of {', '.join(RANGE_HINTS)}")
        return Kernel(name, weights, bias, combine, hint, str(entry.get("description", "")),
                      str(entry.get("source", "")), entry.get("learned"))


def _nesting(value) -> int:
    depth = 0
    while isinstance(value, list) and value:
        depth, value = depth + 1, value[0]
    return depth


def _weights_from_yaml(value, what: str) -> np.ndarray:
    """A matrix (list of rows) → (1, kh, kw); a list of matrices (a bank) → (F, kh, kw);
    a list of lists of matrices (a layer) → (Cout, Cin/groups, kh, kw)."""
    depth = _nesting(value)
    if depth not in (2, 3, 4):
        raise KernelError(f"{what}: weights must be a non-empty matrix (a list of rows), a list "
                          "of matrices (a bank) or a list of lists of matrices (a layer)")
    filters = [value] if depth == 2 else value
    parsed = []
    for index, item in enumerate(filters, 1):
        groups = [item] if depth < 4 else item
        if depth == 4 and (not isinstance(item, list) or not item):
            raise KernelError(f"{what}: filter {index} must be a list of matrices")
        mats = []
        for channel, matrix in enumerate(groups, 1):
            label = what if depth == 2 else f"{what}: filter {index}" + (
                f", channel {channel}" if depth == 4 else "")
            if not isinstance(matrix, list) or not all(isinstance(r, list) for r in matrix):
                raise KernelError(f"{label}: weights must be a list of rows of numbers")
            rows = [[str(parse_number(v, label, finite=False)) for v in row] for row in matrix]
            mats.append(_rows_to_matrix(rows, label))
        if len({m.shape for m in mats}) != 1:
            raise KernelError(f"{what}: filter {index}: its matrices differ in size")
        parsed.append(np.stack(mats) if depth == 4 else mats[0])
    if len({m.shape for m in parsed}) != 1:
        raise KernelError(f"{what}: the filters must all have the same shape")
    return np.stack(parsed)


# ----------------------------------------------------------------------------------------
# Specs


def _file_spec(spec: str) -> tuple[Path, str | None]:
    """``@FILE`` or ``@BANK.yaml:NAME`` → (path, entry name or None)."""
    body = spec.strip()[1:]
    head, sep, tail = body.rpartition(":")
    if sep and head.lower().endswith((".yaml", ".yml", ".npz")):
        return Path(head), tail
    return Path(body), None


def spec_file(spec: str) -> Path | None:
    """The file a ``-k`` spec reads (``@k.npy``, ``@bank.yaml:NAME``), else None."""
    return _file_spec(spec)[0] if spec.strip().startswith("@") else None


def _kernel_from_file(spec: str, catalogue: Catalogue) -> Kernel:
    path, entry = _file_spec(spec)
    what = f"kernel file {path}"
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml"):
        bank = Catalogue()
        bank.add_file(path)
        if entry is None:
            if len(bank.names()) != 1:
                raise KernelError(f"{what}: name the entry, as @{path}:NAME; it has "
                                  f"{', '.join(bank.names()) or 'none'}")
            entry = bank.names()[0]
        return bank.get(entry)
    if not path.is_file():
        raise KernelError(f"{what}: no such file")
    if suffix == ".npz":
        return _trained_layer(path, entry, what)
    if suffix == ".npy":
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except (OSError, ValueError) as exc:
            raise KernelError(f"{what}: not a readable .npy array ({exc})") from None
        check_size(f"{what}: an array of shape {shape}", product(shape), MAX_WEIGHTS, "weights")
        weights = np.load(path, allow_pickle=False)
        if weights.dtype.kind not in "biuf":
            raise KernelError(f"{what}: holds {weights.dtype}, not numbers")
        weights = weights.astype(np.float64)
        if weights.ndim == 2:
            weights = weights[None]
        elif weights.ndim != 4:
            raise KernelError(f"{what}: has shape {weights.shape}; expected 2-D (kh, kw) or "
                              "4-D (Cout, Cin/groups, kh, kw)")
        if weights.size == 0:
            raise KernelError(f"{what}: is empty")
        if not np.isfinite(weights).all():
            raise KernelError(f"{what}: holds NaN or infinity")
    elif suffix in (".txt", ".csv", ".tsv", ""):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KernelError(f"{what}: cannot read it ({exc})") from None
        lines = [line.split("#")[0] for line in text.splitlines()]
        weights = parse_matrix("\n".join(line for line in lines if line.strip()), what)[None]
    else:
        raise KernelError(f"{what}: unknown kind {suffix!r}; expected .npy, .txt, .csv or "
                          ".yaml[:NAME]")
    return Kernel(f"{path.stem}-{weights_digest(weights)}", weights, np.zeros(weights.shape[0]),
                  description=f"from {path}")


def _trained_layer(path: Path, layer: str | None, what: str) -> Kernel:
    """A conv layer of a weights file that `convcli train` wrote: a bank of 2-D kernels
    when it reads one channel (applied to every image channel), else a layer."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as archive:
            layers = [n[:-len(".weight")] for n in archive.files if n.endswith(".weight")
                      and archive[n].ndim == 4]
            if layer is None or layer not in layers:
                raise KernelError(f"{what}: name a conv layer, as @{path}:LAYER; it has "
                                  f"{', '.join(layers) or 'none'}")
            weights = archive[f"{layer}.weight"].astype(np.float64)
            bias = archive[f"{layer}.bias"].astype(np.float64)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise KernelError(f"{what}: not a readable .npz archive ({exc})") from None
    if not (np.isfinite(weights).all() and np.isfinite(bias).all()):
        raise KernelError(f"{what}: {layer} holds NaN or infinity")
    if weights.shape[1] == 1:
        weights = weights[:, 0]
    return Kernel(f"{path.stem}_{layer}", weights, bias, description=f"layer {layer} of {path}",
                  source="convcli train")


def resolve_kernel(spec: str, catalogue: Catalogue | None = None) -> Kernel:
    """Turn a kernel spec into a `Kernel`.

    Parameters
    ----------
    spec : str
        A catalogue name (``sobel_x``), a parametric kernel (``gaussian:1.5``,
        ``box:5``), an inline matrix (``"1 2 1; 0 0 0; -1 -2 -1"``) or ``@FILE`` (.npy,
        text or YAML); the module docstring lists every form.
    catalogue : Catalogue, optional
        Where names are looked up; by default `Catalogue.load()`.

    Returns
    -------
    Kernel
        Its ``weights`` (bank, kh, kw) or (Cout, Cin, kh, kw), ``bias`` and name.

    Raises
    ------
    KernelError
        A ValueError saying what was wrong with the spec.

    Examples
    --------
    >>> from convcli import resolve_kernel
    >>> resolve_kernel("sobel_x").weights[0]
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    >>> resolve_kernel("gaussian:1.5").size
    (11, 11)
    """
    if not isinstance(spec, str) or not spec.strip():
        raise KernelError("kernel spec is empty; give a name, name:params, a matrix or @file")
    spec = spec.strip()
    if catalogue is None:
        catalogue = Catalogue.load()
    if spec.startswith("@"):
        return _kernel_from_file(spec, catalogue)
    if looks_like_matrix(spec):
        return inline_kernel(spec)
    if ":" in spec:
        return parametric_kernel(spec)
    if spec in catalogue:
        return catalogue.get(spec)
    if spec.lower() in PARAMETRIC:
        return parametric_kernel(spec + ":")
    return catalogue.get(spec)


def append_to_catalogue(path, name: str, entry: dict) -> None:
    """Add one entry to a user catalogue (created if missing), keeping what is there.

    The entry is appended as text, so the file's comments and order survive; the file is
    then read back, so a broken result is reported and the old file restored.
    """
    import yaml

    path = Path(path)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    if old:
        data = read_yaml(path, "kernel catalogue", error=KernelError)
        if not isinstance(data, dict) or set(data) != {"kernels"}:
            raise KernelError(f"kernel catalogue {path}: convcli appends only to a file whose "
                              "single top-level key is 'kernels'")
        if name in (data["kernels"] or {}):
            raise KernelError(f"{name!r} exists already in kernel catalogue {path}; choose another",
                              parameter="name")
    if not NAME_PATTERN.fullmatch(name):
        raise KernelError(f"{name!r} is not a name: {NAME_RULE}", parameter="name")
    block = yaml.safe_dump({name: entry}, sort_keys=False, allow_unicode=True, width=100,
                           default_flow_style=None)
    text = (old if old.endswith("\n") or not old else old + "\n") or "kernels:\n"
    if text.rstrip().endswith("kernels: {}"):
        text = text.rstrip()[:-2].rstrip() + "\n"
    text += "".join(f"  {line}\n" for line in block.splitlines())
    atomic_write(path, lambda out: out.write(text.encode("utf-8")))
    try:
        Catalogue.load([path], use_env=False).get(name)
    except KernelError:
        if old:
            atomic_write(path, lambda out: out.write(old.encode("utf-8")))
        else:
            path.unlink()
        raise


def weights_text(kernel: Kernel) -> str:
    """The weights as aligned rows, factored as "1/d ×" integers where that is exact; a
    bank's 2-D kernels headed "filter F:", a layer's "filter F, channel C:" (1-based)."""
    lines = []
    mats = kernel.weights.reshape(-1, *kernel.size)
    per_filter = kernel.weights.shape[1] if kernel.is_layer else 1
    for index, mat in enumerate(mats):
        if len(mats) > 1:
            f, c = divmod(index, per_filter)
            lines.append(f"filter {f + 1}:" if per_filter == 1 else
                         f"filter {f + 1}, channel {c + 1}:")
        denominator = next((d for d in (1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 16, 25, 32, 49, 64, 81,
                                         100, 128, 256, 512, 1024)
                            if np.allclose(mat * d, np.rint(mat * d), rtol=0, atol=1e-9)), None)
        if denominator is not None:
            cells = [f"{v:g}" for v in np.rint(mat * denominator).ravel() + 0.0]
            if denominator != 1:
                lines.append(f"  1/{denominator} ×")
        else:
            cells = [f"{v:.6g}" for v in mat.ravel()]
        width = max(map(len, cells))
        for row in np.array(cells).reshape(mat.shape):
            lines.append("  " + " ".join(c.rjust(width) for c in row))
    if np.any(kernel.bias != 0):
        lines.append(f"bias: {', '.join(f'{b:.6g}' for b in kernel.bias)}")
    return "\n".join(lines)
