"""Files on disk: atomic writes and their temporary names, YAML with its JSON copy, JSON
and ``.npy``/``.npz`` out, names from files made safe for paths, and the check that no
output of a run is one of its inputs or another of its outputs.

Pure Python (numpy only inside the array writers); imports neither `convcli.plan` nor
`convcli.pipeline`.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

from .errors import FileError, FileFormatError, ParameterError
from .limits import MAX_ALIAS_NODES, MAX_YAML_BYTES, MAX_YAML_DEPTH

#: The name of an atomic write's temporary file beside its target: hidden, unique, and
#: recognisable by `temporaries` after an interruption.
TEMPORARY_NAME = ".{name}.{token}.part"
#: A name read from a file that may become part of a path (kernel, catalogue entry, layer).
NAME_PATTERN = re.compile(r"[A-Za-z_][\w.+-]*")
NAME_RULE = "a name is letters, digits, '_', '-', '+' or '.', starting with a letter or '_'"


# ----------------------------------------------------------------------------------------
# Writing


def atomic_write(path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file beside `path`, then rename it over
    `path`; on any failure the temporary file is removed and `path` is left as it was.  A
    read-only `path` is not replaced.

    Raises
    ------
    FileError
        The output is read-only, or its folder cannot be created or written.
    """
    path = Path(path)
    if path.exists() and not path.stat().st_mode & 0o222:
        raise FileError(f"{path}: the output exists and is read-only; not replaced")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temp = _create_temporary(path)
    except OSError as exc:
        raise FileError(f"{path}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(handle, "wb") as out:
            write(out)
        os.replace(temp, path)
    except OSError as exc:
        raise FileError(f"{path}: cannot write it ({exc.strerror or exc})") from None
    finally:
        if temp.exists():
            temp.unlink()


def _create_temporary(path: Path) -> tuple[int, Path]:
    """Create a `TEMPORARY_NAME` beside `path` (mode from the umask, like any new file)."""
    while True:
        temp = path.with_name(TEMPORARY_NAME.format(name=path.name, token=os.urandom(4).hex()))
        try:
            return os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temp
        except FileExistsError:
            continue


def temporaries(target) -> list[Path]:
    """The temporary files an interrupted atomic write of `target` may have left."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    pattern = TEMPORARY_NAME.format(name=glob.escape(target.name), token="*")
    return sorted(target.parent.glob(pattern))


def remove_temporaries(target) -> None:
    """Delete what an interrupted atomic write of `target` may have left behind."""
    for temp in temporaries(target):
        temp.unlink(missing_ok=True)


def json_default(value):
    """`json.dumps`' fallback for numpy scalars and arrays, and tuples."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def json_text(data, indent: int | None = None) -> str:
    """Data (numpy values included) as JSON text."""
    return json.dumps(data, indent=indent, default=json_default)


def write_json(path, data) -> None:
    """Write data as indented JSON, atomically."""
    text = json_text(data, indent=2) + "\n"
    atomic_write(path, lambda out: out.write(text.encode()))


def save_npy(path, array) -> None:
    """Write an array as ``.npy`` (no pickles), atomically."""
    import numpy as np

    atomic_write(path, lambda out: np.save(out, array, allow_pickle=False))


def save_npz(path, **arrays) -> None:
    """Write named arrays as ``.npz``, atomically."""
    import numpy as np

    atomic_write(path, lambda out: np.savez(out, **arrays))


# ----------------------------------------------------------------------------------------
# Outputs that would destroy inputs


def _identities(path) -> set:
    """Every way two spellings of `path` can be the same file: the resolved path (symbolic
    links, ``./``, ``..``, trailing slashes), compared without case (some file systems ignore
    it), and the device and inode of an existing file (hard links)."""
    keys = {("path", os.path.normcase(os.path.realpath(path)).casefold())}
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return keys
    keys.add(("inode", info.st_dev, info.st_ino))
    return keys


def check_distinct(inputs, outputs) -> None:
    """Refuse a run where an output is one of its inputs or another of its outputs.

    Parameters
    ----------
    inputs, outputs : iterable of (str, path)
        What each file is to the caller (``"input"``, ``"report"``) and its path; None
        paths are skipped.

    Raises
    ------
    ParameterError
        Naming both roles and both spellings.
    """
    seen: dict = {}
    for role, path in inputs:
        if path is not None:
            for key in _identities(path):
                seen.setdefault(key, (role, path, "input"))
    for role, path in outputs:
        if path is None:
            continue
        keys = _identities(path)
        clash = next((seen[k] for k in keys if k in seen), None)
        if clash is not None:
            other_role, other, kind = clash
            if kind == "input":
                rule = "convcli never overwrites its inputs"
            else:
                rule = "two outputs of one run cannot share a file"
            real, other_real = os.path.realpath(path), os.path.realpath(other)
            if real != other_real and real.casefold() == other_real.casefold():
                rule += " (names that differ only in case are one file on some systems)"
            raise ParameterError(f"{role} {path} is the same file as {other_role} {other}; "
                                 f"{rule}: choose another name")
        for key in keys:
            seen[key] = (role, path, "output")


def check_name(name, what: str) -> str:
    """A name read from a file, checked to be safe as part of a file name.

    Raises
    ------
    FileFormatError
        Naming `what` (the file and entry) and the rule.
    """
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise FileFormatError(f"{what}: name {name!r}: {NAME_RULE}")
    return name


def child_path(folder, name: str) -> Path:
    """``folder / name`` for a name that stays inside `folder` (no separators, not ``.`` or
    ``..``).

    Raises
    ------
    FileFormatError
        A name that would leave the folder.
    """
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", "\0")):
        raise FileFormatError(f"{name!r} would leave the output folder {folder}; {NAME_RULE}")
    return Path(folder) / name


# ----------------------------------------------------------------------------------------
# YAML


def _yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class UniqueKeyLoader(base):
        """The safe loader, refusing a mapping that names a key twice."""

    def construct_mapping(loader, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            if key in seen:
                raise FileFormatError(f"line {key_node.start_mark.line + 1}: {key!r} is "
                                      "defined twice")
            seen.add(key)
        return base.construct_mapping(loader, node, deep=deep)

    UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
                                    construct_mapping)
    return UniqueKeyLoader


def check_yaml_shape(text: str) -> None:
    """Refuse YAML nested deeper than `MAX_YAML_DEPTH`, with a recursive alias, or whose
    aliases would add more than `MAX_ALIAS_NODES` nodes to the tree ("billion laughs"),
    reading only the parser's events: nothing is built.

    Raises
    ------
    FileFormatError
        Saying which limit and at which line.
    """
    import yaml

    open_nodes: list[list] = []            # [expanded size, anchor] of each open collection
    sizes: dict[str, int] = {}             # anchor → expanded size of its node
    added = 0
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for event in yaml.parse(text, Loader=loader):
        line = event.start_mark.line + 1 if event.start_mark else 0
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append([1, event.anchor])
            if len(open_nodes) > MAX_YAML_DEPTH:
                raise FileFormatError(f"line {line}: nested more than {MAX_YAML_DEPTH} levels "
                                      "deep")
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            size, anchor = open_nodes.pop()
        elif isinstance(event, yaml.ScalarEvent):
            size, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in sizes:
                raise FileFormatError(f"line {line}: alias *{event.anchor} refers to a node "
                                      "that contains it, or to no anchor before it")
            size, anchor = sizes[event.anchor], None
            added += size
            if added > MAX_ALIAS_NODES:
                raise FileFormatError(
                    f"line {line}: aliases expand the file by more than {MAX_ALIAS_NODES:,} "
                    "nodes; write the data out, or use fewer aliases")
        else:
            continue
        if anchor is not None:
            sizes[anchor] = size
        if open_nodes:
            open_nodes[-1][0] += size


def read_yaml(path, what: str, cache: bool = False, error=FileFormatError):
    """Load a YAML file with the safe loader; errors name the file.

    The file must be at most `MAX_YAML_BYTES`, nested at most `MAX_YAML_DEPTH` levels,
    with aliases adding at most `MAX_ALIAS_NODES` nodes (`check_yaml_shape`).  With
    `cache`, through a JSON copy in the user's cache directory (``$XDG_CACHE_HOME/convcli``,
    else ``~/.cache/convcli``), used while the file's path and contents are the same: JSON
    loads without importing and running the YAML parser, 35 ms of every run that reads the
    catalogue.  Data JSON cannot hold exactly (dates, numeric keys, NaN) is not copied; a
    cache directory that cannot be written is not used.

    Parameters
    ----------
    path : path
        The file.
    what : str
        What the file is, for messages ("kernel catalogue", "network").
    cache : bool
        Use the JSON copy.
    error : type
        The exception class raised (a `convcli.errors.ConvcliError`).
    """
    import zlib

    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_YAML_BYTES:
            raise error(f"{what} {path}: {size:,} bytes, over the limit of "
                        f"{MAX_YAML_BYTES:,} for a YAML file")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else exc
        raise error(f"{what} {path}: cannot read it ({reason})") from None
    folder = _cache_folder() if cache else None
    if folder:
        stamp = [str(path.resolve()), zlib.crc32(text.encode())]
        copy = folder / f"catalogue-{zlib.crc32(stamp[0].encode()):08x}.json"
        data = _json_copy(copy, stamp)
        if data is not None:
            return data
    data = _parse_yaml(text, path, what, error)
    if folder:
        _write_json_copy(copy, stamp, data)
    return data


def _cache_folder() -> Path | None:
    """``$XDG_CACHE_HOME/convcli``, else ``~/.cache/convcli``; None without a home."""
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "convcli"
    except (RuntimeError, KeyError):           # no $HOME and no password entry
        return None


def _parse_yaml(text: str, path: Path, what: str, error):
    import yaml

    try:
        check_yaml_shape(text)
        return yaml.load(text, Loader=_yaml_loader())
    except FileFormatError as exc:
        raise error(f"{what} {path}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise error(f"{what} {path}: {where}not valid YAML "
                    f"({getattr(exc, 'problem', exc)})") from None


def _json_copy(copy: Path, stamp: list):
    """The data of a JSON copy written with this stamp, else None."""
    try:
        cached = json.loads(copy.read_text(encoding="utf-8"))
        return cached["data"] if cached["stamp"] == stamp else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_json_copy(copy: Path, stamp: list, data) -> None:
    """Write data as JSON (atomically) if JSON holds it exactly and the folder is writable."""
    try:
        text = json.dumps({"stamp": stamp, "data": data})
        if data is None or json.loads(text)["data"] != data:
            return
        atomic_write(copy, lambda out: out.write(text.encode("utf-8")))
    except (FileError, TypeError, ValueError):
        pass
