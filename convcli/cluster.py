"""Batches on a Dask cluster: the local pool's guarantees, on an existing scheduler.

Inputs and outputs must be on a filesystem every worker sees at the client's paths; that
is checked on every worker before anything is submitted, as is the convcli version of the
workers and the scheduler.  `WorkerSetup` gives each worker its share of its host's cores
as convcli threads and loads the compiled core once, as it starts.  The job is sent once
(a task the chunks depend on); files go in chunks of about `CHUNK_SECONDS` of work (sized
from the first file done, shrinking towards the end of the batch), each a task with a key
derived from the job and its files, that returns records, never pixels.  A chunk turns any error of one file
into that file's failed record; a chunk whose worker died is retried file by file, one at
a time, so only the file that kills its worker fails.  Cancelled chunks stop before their next file, and
every output is written atomically: complete or absent.

The scheduler should run with ``distributed.scheduler.worker-saturation: 1.0`` (so a
worker holds only the chunks it is running, and a dying worker fails no chunk it had not
started, which would be run again file by file) and a small ``allowed-failures`` (1: a worker death is forgiven once per task, and a
file that kills workers costs four of them); see the README, "On a cluster".

This module imports ``distributed``: convcli imports it only to run on a cluster.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import pickle
import time
import uuid
import warnings
from collections import deque
from pathlib import Path

from . import __version__
from .batch import Interrupted, Record, Task, failed, process_file, worker_died
from .errors import ConvcliError, ParameterError
from .files import remove_temporaries
from .pipeline import ApplyJob

try:
    import distributed
except ImportError:
    raise ParameterError("needs dask.distributed, which is not installed here: "
                         "pip install 'convcli[dask]'", parameter="dask") from None

#: Seconds of work a chunk aims at: long enough that the scheduler's cost per task
#: (a few milliseconds) is lost in it, short enough to balance the workers.
CHUNK_SECONDS = 0.75
#: The smallest chunk worth a task, in seconds of work (the last chunks of a batch).
MIN_CHUNK_SECONDS = 0.15
#: Seconds to wait for the scheduler to answer, and for it to have a worker.
CONNECT_TIMEOUT = 10.0
#: Seconds a worker waits for the client's probe file to appear (directory caches).
PROBE_PATIENCE = 2.0
#: Seconds an interrupted batch waits for its running chunks (a second signal stops it).
FINISH_SECONDS = 5.0
#: Input files whose size every worker checks (one per folder, up to this many).
INPUT_SAMPLES = 8
#: Scheduler settings the README asks for; another value gets a warning.
SCHEDULER_SETTINGS = {"worker-saturation": 1.0}


class WorkerSetup(distributed.WorkerPlugin):
    """What every worker does as it starts (and those running when it is registered):
    take its share of its host's cores as convcli threads, and load the compiled core, so
    that no file pays for it and every file runs compiled."""

    name = "convcli"

    async def setup(self, worker) -> None:
        from .conv import warm_up
        from .threads import set_threads

        workers = (await worker.scheduler.identity())["workers"]
        mine = workers.get(worker.address, {"host": worker.ip})
        host_threads = sum(w["nthreads"] for w in workers.values()
                           if w["host"] == mine["host"]) or worker.state.nthreads
        cores = os.cpu_count() or 1            # as the local pool divides them
        set_threads(max(1, cores * worker.state.nthreads // host_threads))
        await asyncio.get_running_loop().run_in_executor(None, warm_up)


def run_chunk(job: ApplyJob, tasks: list[Task]) -> list[Record]:
    """A task on a worker: the records of `tasks`, stopping early if it is cancelled."""
    records = []
    for task in tasks:
        if _cancelled():
            break
        records.append(process_file(job, task))
    return records


def _cancelled() -> bool:
    """Whether the task this thread runs has been cancelled (asked on the worker, without
    a message to the scheduler)."""
    worker = distributed.get_worker()
    state = worker.state.tasks.get(worker.get_current_task())
    return state is None or state.state in ("cancelled", "released", "forgotten")


def _the(job: ApplyJob) -> ApplyJob:
    """The job, as a task's result (see `DaskPool`)."""
    return job


def _worker_view(inputs: list[tuple[str, int]], output_dir: str, probe: str) -> dict:
    """Run on each worker: its convcli version and the first thing it cannot see as the
    client does (None if it sees everything): the sample inputs with their sizes, the
    client's probe file in the output folder, and that it can create files there."""
    def problem() -> str | None:
        for path, size in inputs:
            try:
                seen = os.stat(path).st_size
            except OSError as exc:
                return f"cannot see input {path} ({exc.strerror})"
            if seen != size:
                return f"sees input {path} with {seen} bytes, not {size} as the client does"
        deadline = time.monotonic() + PROBE_PATIENCE
        while not os.path.exists(os.path.join(output_dir, probe)):
            if time.monotonic() > deadline:
                what = "another folder" if os.path.isdir(output_dir) else "no folder"
                return f"sees {what} at output folder {output_dir}, not the client's"
            time.sleep(0.1)
        mine = os.path.join(output_dir, f"{probe}.{os.getpid()}")
        try:
            os.close(os.open(mine, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            os.unlink(mine)
        except OSError as exc:
            return f"cannot create files in output folder {output_dir} ({exc.strerror})"
        return None

    return {"version": __version__, "problem": problem()}


def _running(keys: list[str], dask_scheduler) -> list[str]:
    """Of `keys`, those of tasks a worker is running (or holds to run next)."""
    return [k for k in keys if k in dask_scheduler.tasks
            and dask_scheduler.tasks[k].state == "processing"]


def _scheduler_settings(dask_scheduler) -> dict:
    return {"version": __version__, "worker-saturation": dask_scheduler.WORKER_SATURATION,
            "allowed-failures": dask_scheduler.allowed_failures}


class DaskPool:
    """A batch on the Dask scheduler at `address`, with `convcli.batch.WorkerPool`'s
    interface: connecting checks the workers (version, filesystem), registers
    `WorkerSetup` and sends the job once.

    Raises
    ------
    ConvcliError
        The scheduler cannot be reached or has no worker, or a worker runs another convcli
        or does not see the inputs and the output folder as this machine does (naming the
        worker and the path).
    """

    def __init__(self, address: str, job: ApplyJob, tasks: list[Task]):
        try:
            self._client = distributed.Client(address, timeout=CONNECT_TIMEOUT,
                                              set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConvcliError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        self._address = address
        self._futures: dict = {}            # future → the tasks of its chunk
        self._job = None
        self._tasks = tasks
        self._workers: set = set()          # the workers at the start
        self._retries: deque[Task] = deque()   # files of chunks whose worker died
        self._retrying = None                  # the future of the one being retried
        try:
            self._client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except TimeoutError:
            self.close()
            raise ConvcliError(f"the Dask scheduler at {address} has no worker") from None
        try:
            self._check_scheduler()
            self._check(tasks)
            self._workers = set(self._client.nthreads())
            self._client.register_plugin(WorkerSetup())
            self._token = hashlib.sha1(pickle.dumps(job)).hexdigest()[:16]
            # the job, sent once: a task of its own, not scattered data, so that workers
            # fetch it from each other, and the scheduler can recompute it if every worker
            # holding it dies
            self._job = self._client.submit(_the, job, key=f"convcli-job-{self._token}",
                                            pure=False)
        except BaseException:
            self.close()
            raise

    def _check(self, tasks: list[Task]) -> None:
        """Every worker runs this convcli and sees the inputs and outputs as we do."""
        if not tasks:
            return
        folders = {}
        for task in tasks:
            folders.setdefault(task.source.parent, task.source)
        inputs = [(str(p.absolute()), p.stat().st_size)
                  for p in list(folders.values())[:INPUT_SAMPLES]]
        output_dir = _common_parent([t.target.absolute() for t in tasks])
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = f".convcli-probe-{uuid.uuid4().hex}"
        (output_dir / probe).touch()
        try:
            views = self._client.run(_worker_view, inputs, str(output_dir), probe,
                                     on_error="return")
        finally:
            (output_dir / probe).unlink()
        for worker, view in sorted(views.items()):
            if isinstance(view, BaseException):
                raise ConvcliError(f"Dask worker {worker} cannot run convcli "
                                   f"({type(view).__name__}: {view}); install convcli "
                                   f"{__version__} (pip install 'convcli[dask]') on the workers")
            if view["version"] != __version__:
                raise ConvcliError(f"Dask worker {worker} runs convcli {view['version']}, this "
                                   f"machine {__version__}; install the same version on both")
            if view["problem"]:
                raise ConvcliError(f"Dask worker {worker} {view['problem']}: the workers must "
                                   "see the inputs and outputs at the same paths as this machine")

    def _check_scheduler(self) -> None:
        """The scheduler runs this convcli (it unpickles the tasks); warn about settings
        that would cost innocent files when a worker dies."""
        try:
            settings = self._client.run_on_scheduler(_scheduler_settings)
        except ImportError as exc:
            raise ConvcliError(f"the Dask scheduler at {self._address} cannot import convcli "
                               f"({exc}); install convcli {__version__} there too") from None
        if settings["version"] != __version__:
            raise ConvcliError(f"the Dask scheduler at {self._address} runs convcli "
                               f"{settings['version']}, this machine {__version__}; install "
                               "the same version on both")
        for name, wanted in SCHEDULER_SETTINGS.items():
            if settings[name] != wanted:
                warnings.warn(f"the Dask scheduler's {name} is {settings[name]}, not {wanted}: "
                              "a worker that dies also fails chunks it had not started, "
                              "which are then run again file by file", stacklevel=2)

    def run(self, tasks: list[Task]):
        """Yield a record per task as chunks finish.

        The first files go one per worker thread; the first one done sizes the chunks of
        the rest.  Interrupted (SIGINT, SIGTERM), it cancels the chunks that have not
        started and yields the records of those running, if they finish in
        `FINISH_SECONDS`."""
        slots = max(1, sum(self._client.nthreads().values()))
        pending = tasks[slots:]
        completed = distributed.as_completed(loop=self._client.loop)
        for task in tasks[:slots]:
            completed.add(self._submit([task]))
        try:
            yield from self._collect(completed, pending, slots)
        except Interrupted:
            yield from self._finish_running()
            raise

    def _collect(self, completed, pending: list[Task], slots: int):
        for future in completed:
            chunk = self._futures.pop(future)
            for record in self._records(future, chunk):
                if pending and record.status == "done":
                    for part in _chunks(pending, record.seconds, slots):
                        completed.add(self._submit(part))
                    pending = []
                yield record
            self._retry_next(completed)
            if pending and not self._futures:          # no file done yet to size them
                for part in _chunks(pending, MIN_CHUNK_SECONDS, slots):
                    completed.add(self._submit(part))
                pending = []

    def _finish_running(self):
        running = set(self._client.run_on_scheduler(_running, [f.key for f in self._futures]))
        keep = [f for f in self._futures if f.key in running or f.status == "finished"]
        self._client.cancel([f for f in self._futures if f not in keep])
        try:
            for future in distributed.as_completed(keep, loop=self._client.loop,
                                                   timeout=FINISH_SECONDS):
                if future.status == "finished":
                    yield from (_as_given(record, task)
                                for record, task in zip(future.result(), self._futures[future]))
        except TimeoutError:
            pass

    def _submit(self, chunk: list[Task]):
        """One task for `chunk`, keyed by the job and its files; paths are made absolute
        (workers have their own working folders)."""
        names = "\0".join(f"{t.source}\0{t.target}" for t in chunk).encode()
        key = f"convcli-apply-{self._token}-{hashlib.sha1(names).hexdigest()[:16]}"
        work = [Task(t.source.absolute(), t.target.absolute()) for t in chunk]
        future = self._client.submit(run_chunk, self._job, work, key=key, pure=False)
        self._futures[future] = chunk
        return future

    def _records(self, future, chunk: list[Task]) -> list[Record]:
        """The records of a finished chunk in the client's spelling of the paths; or, if
        its worker died (or it failed outside any file), its files queued for retrying one
        by one, and a retried file's failed record."""
        alone = future is self._retrying
        if alone:
            self._retrying = None
        if future.status == "finished":
            return [_as_given(record, task) for record, task in zip(future.result(), chunk)]
        if future.status == "cancelled":
            raise ConvcliError(f"the Dask scheduler at {self._address} cancelled the batch "
                               "(was it restarted?)")
        error = future.exception()
        for task in chunk:
            remove_temporaries(task.target)
        if not alone and (len(chunk) > 1 or isinstance(error, distributed.KilledWorker)):
            self._retries.extend(chunk)
            return []
        if isinstance(error, distributed.KilledWorker):
            return [worker_died(chunk[0], "every worker that tried it")]
        return [failed(chunk[0], f"{chunk[0].source}: {type(error).__name__} on a Dask "
                                 f"worker: {error}")]

    def _retry_next(self, completed) -> None:
        """Resubmit the next file of a chunk whose worker died, if none is being retried:
        one at a time, so that a file that kills its worker shares it with no other
        retried file (which the scheduler would count as suspect too)."""
        if self._retrying is None and self._retries:
            self._retrying = self._submit([self._retries.popleft()])
            completed.add(self._retrying)

    def close(self) -> None:
        """Cancel what has not finished (running chunks stop before their next file),
        remove the temporaries a worker that died may have left (the scheduler may have run
        its chunk again elsewhere, unknown to us), and disconnect."""
        unfinished = list(self._futures) + ([self._job] if self._job is not None else [])
        if unfinished:
            self._client.cancel(unfinished)
            self._futures.clear()
        if self._workers - set(self._client.nthreads()):
            for task in self._tasks:
                remove_temporaries(task.target)
        self._client.close()


def _chunks(tasks: list[Task], seconds: float, slots: int) -> list[list[Task]]:
    """`tasks` in chunks of about `CHUNK_SECONDS` of work, for files of `seconds` each,
    shrinking (to `MIN_CHUNK_SECONDS`) as the batch nears its end so that the workers
    finish together."""
    seconds = max(seconds, 1e-3)
    largest = max(1, int(CHUNK_SECONDS / seconds))
    smallest = max(1, min(largest, math.ceil(MIN_CHUNK_SECONDS / seconds)))
    chunks, start = [], 0
    while start < len(tasks):
        size = min(largest, max(smallest, math.ceil((len(tasks) - start) / (2 * slots))))
        chunks.append(tasks[start:start + size])
        start += size
    return chunks


def _as_given(record: Record, task: Task) -> Record:
    """`record` with the paths as the client spelt them (the worker had them absolute)."""
    error = record.error
    if error is not None:
        error = error.replace(str(task.source.absolute()), str(task.source))
        error = error.replace(str(task.target.absolute()), str(task.target))
    return Record(str(task.source), str(task.target), record.status, record.seconds, error,
                  record.input_shape, record.output_shape)


def _common_parent(paths: list[Path]) -> Path:
    return Path(os.path.commonpath([p.parent for p in paths]))
