"""Test-only faults, for batches: an input whose name contains ``raise-me`` makes its
processing raise an unexpected error (a bug), one whose name contains ``kill-me`` kills the
process processing it (as the kernel's out-of-memory killer would).

`install` patches them in (local workers, forked, inherit the patch); a Dask worker gets
them with ``dask worker --preload tests/faults.py`` (which calls `dask_setup`, also in the
workers its nanny restarts).  Nothing in convcli knows about them.
"""

import os
import signal
from pathlib import Path

from convcli.pipeline import ApplyJob

_run = ApplyJob.run


def _faulty_run(self, source_path, output_path, details=False):
    name = Path(source_path).name
    if "raise-me" in name:
        raise RuntimeError("injected fault")
    if "kill-me" in name:
        os.kill(os.getpid(), signal.SIGKILL)
    return _run(self, source_path, output_path, details)


def install(monkeypatch) -> None:
    monkeypatch.setattr(ApplyJob, "run", _faulty_run)


def dask_setup(worker) -> None:
    ApplyJob.run = _faulty_run
