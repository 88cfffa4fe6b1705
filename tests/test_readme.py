"""Every code block of README.md runs, so a README example cannot silently break.

The convention (also stated in README's Development section):

- ```` ```python ```` blocks run in one fresh namespace each, in a temporary folder;
- ```` ```sh ```` blocks run with ``bash -e`` in a temporary folder holding a copy of
  ``samples/``, with this interpreter's ``convcli`` first on PATH;
- a block whose info string carries the word ``notest`` (```` ```sh notest ````) is shown,
  not run: installing, or running the whole test suite from inside it;
- blocks in any other language (``yaml``, ``text``) are illustrations of formats, not run.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```(\S*)([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def readme_blocks():
    """(language, code, line number) of every block that runs."""
    text = (ROOT / "README.md").read_text()
    blocks = []
    for match in FENCE.finditer(text):
        language, info, code = match.group(1), match.group(2), match.group(3)
        if language in ("python", "sh") and "notest" not in info.split():
            blocks.append(pytest.param(language, code, id=f"line{text.count(chr(10), 0, match.start()) + 1}"))
    return blocks


def test_the_readme_has_blocks_of_both_kinds():
    languages = {block.values[0] for block in readme_blocks()}
    assert languages == {"python", "sh"}


@pytest.mark.parametrize("language, code", readme_blocks())
def test_readme_block_runs(language, code, tmp_path, monkeypatch):
    shutil.copytree(ROOT / "samples", tmp_path / "samples")
    if language == "python":
        monkeypatch.chdir(tmp_path)
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
        return
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    result = subprocess.run(["bash", "-e", "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
