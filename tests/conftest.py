import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from convcli.cli import cli

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """convcli's catalogue copies go to a folder of the test session, not the user's cache."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture
def samples(tmp_path) -> Path:
    """A private copy of samples/ (so tests can check inputs are left alone)."""
    copy = tmp_path / "samples"
    shutil.copytree(SAMPLES, copy)
    return copy


@pytest.fixture
def run():
    """Run convcli in-process; returns click's Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args, **kwargs):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)

    return invoke
