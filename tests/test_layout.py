"""The package's dependency rules, read from each module's imports and strings.

- Data flows one way: command line → kernel spec → plan → engine → core → pixels → image
  writer → report.  The modules that read, write and map pixels (`codecs`, `images`,
  `pixels`, `files`) import neither the planner (`plan`) nor the engine (`conv`,
  `pipeline`), so reading or writing an image never loads convolution code.
- Only `convcli/_core/` imports numba, so a command that does not convolve never loads it.
- Only `cli.py` and `options.py` import click: the library can be used without it.
- `cli.py` does no numpy work: it parses, calls the library and renders (it imports no
  numpy at all).
- The library speaks in parameters: no string in a module below the CLI names a flag
  (``--range``); errors name the keyword argument, and the CLI adds its flags.
"""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "convcli"
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)
CLI_MODULES = {"cli.py", "options.py", "__main__.py"}


def relative_name(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def imported(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it, as dotted names inside convcli
    (``convcli.plan``) or top-level names outside it (``numba``)."""
    package = ["convcli", *path.relative_to(PACKAGE).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
                names.add(module)
                if not node.module:
                    names.update(f"{base}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


def top_levels(names: set[str]) -> set[str]:
    return {name.split(".")[0] for name in names}


@pytest.mark.parametrize("module", ["codecs.py", "images.py", "pixels.py", "files.py"])
def test_pixel_and_file_modules_do_not_import_the_engine(module):
    names = imported(PACKAGE / module)
    assert not names & {"convcli.plan", "convcli.pipeline", "convcli.conv"}, names


def test_only_the_compiled_core_imports_numba():
    importers = [relative_name(p) for p in MODULES if "numba" in top_levels(imported(p))]
    assert importers and all(name.startswith("_core/") for name in importers), importers


def test_only_the_command_line_imports_click():
    importers = {relative_name(p) for p in MODULES if "click" in top_levels(imported(p))}
    assert importers <= CLI_MODULES, importers


def test_cli_does_no_numpy_work():
    assert "numpy" not in top_levels(imported(PACKAGE / "cli.py"))


def _strings(path: Path):
    """(line, text) of every string constant that is not a docstring or a comment."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in docstrings:
            yield node.lineno, node.value


FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*")


@pytest.mark.parametrize("path", [p for p in MODULES if relative_name(p) not in CLI_MODULES],
                         ids=relative_name)
def test_library_messages_name_parameters_not_flags(path):
    flags = [(line, text) for line, text in _strings(path) if FLAG.search(text)]
    assert not flags, flags


def test_a_library_error_names_the_parameter_and_the_cli_its_flag(run, samples, tmp_path):
    from convcli.learn import Geometry, LearnSettings, learn
    from convcli.errors import ParameterError

    import numpy as np

    x = np.random.default_rng(0).standard_normal((16, 16, 1))
    with pytest.raises(ParameterError) as caught:
        learn([(x, x)], LearnSettings(geometry=Geometry(size=(3, 3)), holdout=1.5))
    assert caught.value.parameter == "holdout" and str(caught.value).startswith("holdout must")
    result = run("apply", samples / "camera.png", "-k", "box:3", "--bias", "1,2",
                 "-o", tmp_path / "o.png")
    assert result.exit_code == 2
    assert result.stderr == ("Error: --bias has 2 values; give 1, or one per output channel "
                             "(1)\n")


def test_name_value_mentions_become_the_commands_flags(run, tmp_path):
    import numpy as np

    flat = tmp_path / "flat.npy"
    np.save(flat, np.ones((12, 12), np.float32))
    result = run("learn", flat, flat, "-s", "3")
    assert result.exit_code == 2 and "add --ridge 1e-3" in result.stderr


def test_the_readme_layout_names_every_module():
    """README's Layout table matches the tree: every module is there, and nothing else."""
    readme = (PACKAGE.parent / "README.md").read_text()
    section = readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`(\w+\.py)`", section))
    modules = {p.name for p in MODULES if p.parent in (PACKAGE, PACKAGE / "_core")}
    assert "`_core/`" in section
    assert named == modules - {"__init__.py", "__main__.py"}
