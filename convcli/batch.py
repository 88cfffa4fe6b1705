"""Folders in, folders out: walking, workers (local or on a Dask cluster), interruption,
and the run report.

The output tree mirrors the input tree.  Every output is written atomically, so a run that
is interrupted (Ctrl-C, SIGTERM) or fails leaves each output complete or absent, and
``--skip-existing`` resumes it.  Local workers are forked after the compiled core is
loaded, so none compiles or starts an interpreter; each handles one image at a time.  A
batch on a Dask cluster (`convcli.cluster`) keeps every one of these guarantees.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .formats import BY_EXTENSION, input_globs
from .errors import ConvcliError, ParameterError
from .files import remove_temporaries
from .pipeline import ApplyJob


@dataclass(frozen=True)
class Task:
    source: Path
    target: Path


@dataclass
class Record:
    """What happened to one input."""

    source: str
    target: str
    status: str                     # done, skipped or failed
    seconds: float = 0.0
    error: str | None = None
    input_shape: list | None = None
    output_shape: list | None = None


@dataclass
class BatchReport:
    """Counts, failures and the exit code of a batch."""

    records: list[Record] = field(default_factory=list)
    total: int = 0
    elapsed: float = 0.0
    interrupted: str | None = None  # the signal that stopped the run, if one did

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def failures(self) -> list[Record]:
        return [r for r in self.records if r.status == "failed"]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 128 + signal.Signals[self.interrupted].value      # 130, 143, 129
        return 1 if self.failures else 0

    def as_dict(self) -> dict:
        done = self.count("done")
        return {
            "files": [vars(r) for r in self.records],
            "totals": {"inputs": self.total, "done": done, "skipped": self.count("skipped"),
                       "failed": self.count("failed"),
                       "not_started": self.total - len(self.records),
                       "seconds": self.elapsed,
                       "images_per_second": done / self.elapsed if self.elapsed else 0.0,
                       "interrupted": self.interrupted},
        }


# ----------------------------------------------------------------------------------------
# Finding the inputs


def _matches(patterns, *names: str) -> bool:
    return any(fnmatch.fnmatchcase(name.lower(), p.lower()) for p in patterns for name in names)


@dataclass(frozen=True, kw_only=True)
class BatchOptions:
    """How a batch finds its files and runs them (the job says what is done to each)."""

    recursive: bool = False             # walk input folders' subfolders
    globs: tuple[str, ...] = ()         # file name patterns (default: every image extension)
    excludes: tuple[str, ...] = ()      # names or relative paths of files and folders to skip
    follow_links: bool = False          # follow symbolic links to folders
    jobs: int | None = None             # worker processes (None: one per CPU)
    skip_existing: bool = False         # keep outputs that exist
    overwrite: bool = False             # replace outputs that exist
    fail_fast: bool = False             # stop at the first failure
    dask: str | None = None             # a Dask scheduler's address (None: local workers)


def find_inputs(inputs: list[Path], output_dir: Path, options: BatchOptions = BatchOptions()
                ) -> tuple[list[tuple[Path, Path]], list[str]]:
    """The files to process as (source, directory relative to the output folder), and notes.

    Directories contribute the files whose name matches ``options.globs`` (default: every
    image extension convcli reads), walking subfolders if ``options.recursive``; files are
    taken as given.  ``options.excludes`` drop files and prune folders by name or relative
    path.

    Raises
    ------
    ParameterError
        An input that does not exist, or an output folder inside a folder being walked
        (the run would process its own outputs) that no exclude pattern removes.
    """
    recursive, excludes = options.recursive, options.excludes
    patterns = options.globs or input_globs()
    output_real = Path(os.path.realpath(output_dir))
    found: list[tuple[Path, Path]] = []
    notes: list[str] = []
    for item in inputs:
        if item.is_file():
            found.append((item, Path(".")))
            continue
        if not item.is_dir():
            raise ParameterError(f"input {item}: no such file or folder")
        top_real = Path(os.path.realpath(item))
        walked_output = output_real == top_real or (
            recursive and top_real in output_real.parents)
        if walked_output:
            relative = output_real.relative_to(top_real).as_posix()
            if relative == "." or not _matches(excludes, relative, output_real.name):
                raise ParameterError(
                    f"output folder {output_dir} is inside input folder {item}, which is being "
                    "walked, so convcli would process its own outputs; choose another output folder or "
                    f"excludes={relative if relative != '.' else '…'}")
        ancestors = {str(item): frozenset()}          # folder → the folders above it
        for folder, dirs, files in os.walk(item, followlinks=options.follow_links):
            info = os.stat(folder)
            key = (info.st_dev, info.st_ino)
            if key in ancestors[folder]:
                notes.append(f"{folder}: a symbolic link loops back to a folder above it; "
                             "skipped")
                dirs[:] = []
                continue
            relative_dir = Path(folder).relative_to(item)
            if not recursive and dirs:
                notes.append(_unwalked(item, folder, dirs, patterns))
            dirs[:] = sorted(d for d in dirs if recursive and not _matches(
                excludes, d, (relative_dir / d).as_posix()))
            ancestors.update({os.path.join(folder, d): ancestors[folder] | {key} for d in dirs})
            for name in sorted(files):
                relative = (relative_dir / name).as_posix()
                if _matches(patterns, name) and not _matches(excludes, name, relative):
                    found.append((Path(folder) / name, relative_dir))
    return found, notes


#: Entries counted, at the most, to say what a walk without subfolders leaves out.
UNWALKED_COUNT_LIMIT = 10_000


def _unwalked(item: Path, folder: str, dirs: list[str], patterns) -> str:
    """The note for subfolders a walk without `recursive` skips, counting the matching
    files in them (up to `UNWALKED_COUNT_LIMIT` entries)."""
    files = seen = 0
    for sub in dirs:
        for _, _, names in os.walk(os.path.join(folder, sub)):
            seen += len(names) + 1
            files += sum(_matches(patterns, name) for name in names)
            if seen > UNWALKED_COUNT_LIMIT:
                break
    count = f"{files:,}{'+' * (seen > UNWALKED_COUNT_LIMIT)}"
    return (f"{item}: {count} image file(s) in {len(dirs)} subfolder(s) not walked; use "
            "recursive=True to walk subfolders")


def no_inputs_reason(inputs: list[Path], options: BatchOptions = BatchOptions()) -> str:
    """Why `find_inputs` found nothing, in words: which inputs are empty folders, and
    what the patterns were."""
    patterns = options.globs or input_globs()
    folders = [str(item) for item in inputs if item.is_dir()]
    named = [f for f in folders if Path(f).suffix.lower() in BY_EXTENSION]
    what = (f"{', '.join(named)} {'is a folder' if len(named) == 1 else 'are folders'}, not "
            "an image; " if named else "")
    notes = [" outside excludes=" if options.excludes else "",
             "" if options.recursive else "; subfolders are not walked: recursive=True walks them"]
    return (f"{what}no file in {', '.join(folders)} matches {' '.join(patterns)}"
            f"{notes[0]}{notes[1]}")


def plan_tasks(found: list[tuple[Path, Path]], output_dir: Path, job: ApplyJob,
               options: BatchOptions = BatchOptions()):
    """Output paths for every input; returns (tasks to run, tasks skipped).

    Raises
    ------
    ParameterError
        Two inputs that would write the same output, or existing outputs with neither
        ``options.skip_existing`` nor ``options.overwrite`` (naming the first).
    """
    tasks, owners = [], {}
    for source, relative_dir in found:
        target = output_dir / relative_dir / job.output_name(source)
        if target in owners:
            raise ParameterError(f"{owners[target]} and {source} would both be written to "
                                 f"{target}; process them separately or use fmt=")
        owners[target] = source
        tasks.append(Task(source, target))
    existing = [t for t in tasks if t.target.exists()]
    if existing and not (options.skip_existing or options.overwrite):
        more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
        raise ParameterError(f"output {existing[0].target} already exists{more}; use overwrite=True "
                             "to replace outputs or skip_existing=True to keep them")
    if options.skip_existing:
        return [t for t in tasks if not t.target.exists()], existing
    return tasks, []


# ----------------------------------------------------------------------------------------
# Running


def process_file(job: ApplyJob, task: Task) -> Record:
    """Apply the job to one file and say what happened: a user-level failure, and any
    unexpected exception (a bug), become a failed record, so one file never stops a batch."""
    start = time.perf_counter()
    try:
        report = job.run(task.source, task.target)
    except ConvcliError as exc:
        return failed(task, str(exc), time.perf_counter() - start)
    except Exception as exc:    # a bug costs its file, not the batch
        return failed(task, f"{task.source}: unexpected {type(exc).__name__}: {exc} (a bug "
                            "in convcli; please report it)", time.perf_counter() - start)
    return Record(str(task.source), str(task.target), "done", time.perf_counter() - start,
                  None, report["input_shape"], report["output_shape"])


def failed(task: Task, error: str, seconds: float = 0.0) -> Record:
    """A failed record for `task`."""
    return Record(str(task.source), str(task.target), "failed", seconds, error)


def worker_died(task: Task, how: str) -> Record:
    """The record of a file whose worker died while processing it: it may have been
    killed for the memory the image needs."""
    return failed(task, f"{task.source}: the worker processing it died ({how}); the image "
                        "may be too large for memory")


#: A worker's exit status when the parent stops it (128 + SIGTERM).
STOPPED = 143


def _stop_worker(signum, frame):
    """Leave at once, running no Python cleanup: an exception raised here could surface
    inside a compiled kernel as a SystemError traceback.  The parent removes the
    temporary file of the task it was on (`run_tasks`)."""
    os._exit(STOPPED)


def _worker_main(connection, job: ApplyJob, threads: int) -> None:
    """A worker: take a task, send back its record, until told to stop (None)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)       # the parent decides what Ctrl-C does
    signal.signal(signal.SIGHUP, signal.SIG_IGN)       # and what a closed terminal does
    signal.signal(signal.SIGTERM, _stop_worker)
    from .threads import set_threads

    set_threads(threads)
    while (task := connection.recv()) is not None:
        connection.send(process_file(job, task))


class WorkerPool:
    """Forked worker processes, one task in flight each; a worker that dies (killed, out of
    memory) fails its task and is replaced."""

    def __init__(self, jobs: int, job: ApplyJob, threads: int):
        import multiprocessing

        self._context = multiprocessing.get_context("fork")
        self._job, self._threads = job, threads
        self._workers = [self._start() for _ in range(jobs)]

    def _start(self):
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(target=_worker_main,
                                        args=(child_end, self._job, self._threads), daemon=True)
        process.start()
        child_end.close()
        return process, parent_end

    def run(self, tasks: list[Task]):
        """Yield a record per task as workers finish them."""
        from multiprocessing.connection import wait

        pending = list(reversed(tasks))
        busy = {}
        for index, (_, connection) in enumerate(self._workers):
            if pending:
                busy[index] = pending.pop()
                connection.send(busy[index])
        while busy:
            handles = {}
            for index in busy:
                process, connection = self._workers[index]
                handles[connection] = handles[process.sentinel] = index
            for ready in wait(list(handles)):
                index = handles[ready]
                if index not in busy:
                    continue
                process, connection = self._workers[index]
                task = busy.pop(index)
                record = _receive(connection)
                if record is not None:
                    yield record
                else:                                    # the worker died mid-task
                    process.join()
                    yield worker_died(task, f"exit code {process.exitcode}")
                    remove_temporaries(task.target)
                    self._workers[index] = self._start()
                    process, connection = self._workers[index]
                if pending:
                    busy[index] = pending.pop()
                    connection.send(busy[index])

    def close(self) -> None:
        """Stop every worker: SIGTERM (they exit at once), then SIGKILL; `run_tasks` then
        removes the temporaries of unfinished tasks."""
        for process, connection in self._workers:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + 5
        for process, connection in self._workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            connection.close()


def _receive(connection) -> Record | None:
    """A worker's record, or None if it died instead of sending one (its end of the pipe
    closed: `poll` says it is readable, `recv` raises EOFError)."""
    if not connection.poll():
        return None
    try:
        return connection.recv()
    except EOFError:
        return None


class Interrupted(BaseException):       # not an Exception: `process_file` must not catch it
    def __init__(self, name: str):
        self.name = name


def _raise_interrupted(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def run_tasks(tasks: list[Task], job: ApplyJob, options: BatchOptions = BatchOptions(),
              on_record=None) -> BatchReport:
    """Run `tasks` on the Dask scheduler ``options.dask`` (see `convcli.cluster`), or on
    ``options.jobs`` local worker processes (in this process if 1) dividing the threads
    (`convcli.threads.thread_count`) between them.

    `on_record(record)` is called as each file finishes.  SIGINT, SIGTERM and SIGHUP stop
    the run: workers are stopped (on a cluster: chunks not started are cancelled, running
    ones may finish), temporary files of unfinished outputs removed, and the report says so.
    """
    report = BatchReport(total=len(tasks))
    start = time.perf_counter()
    previous = {s: signal.signal(s, _raise_interrupted)
                for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    pool = None
    try:
        if options.dask:
            from .cluster import DaskPool

            pool = DaskPool(options.dask, job, tasks)
        else:
            pool = _local_pool(job, options.jobs, len(tasks))
        results = (process_file(job, task) for task in tasks) if pool is None else pool.run(tasks)
        for record in results:
            report.records.append(record)
            if on_record is not None:
                on_record(record)
            if options.fail_fast and record.status == "failed":
                break
    except Interrupted as exc:
        report.interrupted = exc.name
    finally:
        for s in previous:                       # a second Ctrl-C must not cut the cleanup
            signal.signal(s, signal.SIG_IGN)
        if pool is not None:
            pool.close()
        finished = {r.target for r in report.records}
        for task in tasks:
            if str(task.target) not in finished:
                remove_temporaries(task.target)
        for s, handler in previous.items():
            signal.signal(s, handler)
    report.elapsed = time.perf_counter() - start
    return report


def _local_pool(job: ApplyJob, jobs: int | None, files: int) -> WorkerPool | None:
    """`jobs` forked workers (default: one per CPU) sharing the threads, or None (and all
    the threads for this process) if one is enough."""
    from .conv import warm_up
    from .threads import set_threads, thread_count

    warm_up()                        # load the compiled core once, before forking
    jobs = max(1, min(jobs or os.cpu_count() or 1, files or 1))
    threads = max(1, thread_count() // jobs)
    if jobs == 1:
        set_threads(threads)
        return None
    return WorkerPool(jobs, job, threads)
