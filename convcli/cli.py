"""The command line: parse, call the library, render with rich.

Heavy modules (numpy, numba, Pillow, rich) are imported inside the commands, so
``convcli --help`` loads only click.  Every user mistake ends as one line on stderr with
exit code 2 (usage) or 1 (failure); see `ConvcliGroup.main`.
"""

from __future__ import annotations

import contextlib
import re
import sys
import warnings
from pathlib import Path

import click

from . import __version__
from .choices import ALPHA_POLICIES, RANGE_POLICIES
from .formats import BY_EXTENSION, extensions
from .errors import ConvcliError, ParameterError
from .files import check_distinct
from .options import (CATALOGUES, DILATION, FLOATS, JSON, PAD_MODE, PADDING, STRIDE,
                      FiniteFloatRange, PairType, conv_options, report_option,
                      weights_option)
from .limits import MAX_EPOCHS, MAX_WORKERS
from .plan import shape_text



class ConvcliGroup(click.Group):
    """A group whose errors are one line on stderr, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        from .backend import one_shot

        warnings.showwarning = _warning_line
        try:
            with one_shot():            # a command is one job: see convcli.backend
                code = super().main(args, prog_name, complete_var, standalone_mode=False,
                                    **extra)
        except click.exceptions.Abort:
            _ignore_interrupts()
            click.echo("Aborted.", err=True)
            code = 130
        except click.exceptions.NoArgsIsHelpError as exc:      # `convcli` alone: its help
            click.echo(exc.ctx.get_help())
            code = 0
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except ConvcliError as exc:
            click.echo(f"Error: {exc}", err=True)
            code = exc.exit_code
        except KeyboardInterrupt:
            _ignore_interrupts()
            click.echo("Interrupted.", err=True)
            code = 130
        except OSError as exc:       # the environment failed: a full disk or stdout, say
            _silence_stdout()
            click.echo(f"Error: {exc.filename or 'standard output'}: {exc.strerror or exc}",
                       err=True)
            code = 1
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


def _ignore_interrupts() -> None:
    """Once a run is stopping, a further Ctrl-C (or SIGTERM) cannot cut its last words and
    exit code short."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _silence_stdout() -> None:
    """Point standard output at the null device, so that what is still buffered for a
    stream that failed (a full disk) is not written again, with a traceback, at exit."""
    import os

    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


class ConvcliCommand(click.Command):
    """A command that shows library errors in its own terms: the parameter an error names
    becomes this command's flag, and ``name=value`` in the message becomes ``--flag value``."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ParameterError as exc:
            raise flag_error(exc, ctx) from None
        except ConvcliError as exc:
            exc.args = (flag_text(str(exc), ctx),)
            raise


#: Library parameters whose option has another name in the CLI.
CLI_NAMES = {"input_shape": "shape", "layer": "layer_key", "catalogue": "catalogues"}


def _option(ctx: click.Context, name: str) -> click.Option | None:
    """The option of the running command that stands for library parameter `name`."""
    name = CLI_NAMES.get(name, name)
    return next((p for p in ctx.command.params if isinstance(p, click.Option) and p.name == name),
                None)


def flag_text(message: str, ctx: click.Context) -> str:
    """`message` with each ``name=value`` of a library parameter as this command's flag."""
    def flag_of(match: re.Match) -> str:
        found = _option(ctx, match[1])
        if found is None:
            return match[0]
        flag = max(found.opts, key=len)
        if found.is_flag:
            return found.secondary_opts[0] if match[2] == "False" and found.secondary_opts else flag
        return f"{flag} {match[2]}" if match[2] else flag

    return re.sub(r"\b([a-z_]+)=([^\s,;:)]*)", flag_of, message)


def flag_error(exc: ParameterError, ctx: click.Context) -> click.ClickException:
    """The click error that says `exc` with this command's flags for the library's names."""
    message = flag_text(exc.message, ctx)
    if exc.parameter:
        found = _option(ctx, exc.parameter)
        message = f"{max(found.opts, key=len) if found else exc.parameter} {message}"
    return click.UsageError(message, ctx)


@click.group(cls=ConvcliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convcli")
def cli():
    """Apply convolution kernels to images, and explain what they did.

    Semantics are PyTorch's conv2d: cross-correlation, weights (Cout, Cin/groups, kh, kw),
    output size ⌊(H + pads − d·(k−1) − 1)/s⌋ + 1.
    """


cli.command_class = ConvcliCommand


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Show a library warning as one line on stderr."""
    click.echo(f"Warning: {message}", err=True)


def main(args=None, prog_name: str = "convcli"):
    """Entry point of the ``convcli`` script and ``python -m convcli``."""
    cli.main(args=args, prog_name=prog_name)


def _text(value) -> str:
    """A value read from a file or typed by the user, shown as itself, never as rich
    markup (``[red]`` stays ``[red]``)."""
    from rich.markup import escape

    return escape(str(value))


def _console(stderr: bool = False):
    """A rich console; tables are not squeezed to 80 columns when output is piped."""
    from rich.console import Console

    import os

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS", "").isdigit() else 160
    return Console(stderr=stderr, highlight=False, width=width)


# ----------------------------------------------------------------------------------------
# apply


def _output_path(source: Path, output: str, job) -> Path:
    """-o FILE, or -o DIR/ (or an existing directory) → DIR/NAME_KERNEL.EXT; a name longer
    than the file system allows is refused."""
    import os

    def fits(path: Path) -> Path:
        folder = next((p for p in path.parents if p.is_dir()), Path("."))
        try:
            limit = os.pathconf(folder, "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            limit = 255
        size = len(os.fsencode(path.name))
        if size > limit:
            shown = path.name if len(path.name) <= 40 else f"{path.name[:20]}…{path.name[-12:]}"
            raise click.BadParameter(f"the file name {shown} is {size} bytes long; the file "
                                     f"system allows {limit}", param_hint="'-o'")
        return path

    if output.endswith(("/", "\\")) or fits(Path(output)).is_dir():
        return fits(Path(output) / job.output_name(source))
    path = Path(output)
    return fits(path.with_suffix(f".{job.fmt.lower()}") if job.fmt else path)


@contextlib.contextmanager
def _pipe_ends(source: Path, output: str, job):
    """(input file, output file, whether the output goes to stdout) of a single-file apply:
    ``-`` as INPUT is standard input and ``-`` or ``FORMAT:-`` as -o standard output, each
    through a file in a private temporary folder removed afterwards."""
    import tempfile

    from .pipes import DASH, read_stream, stdout_extension

    if str(source) != DASH and stdout_extension(output, job.fmt, source) is None:
        yield source, _output_path(source, output, job), False
        return
    with tempfile.TemporaryDirectory(prefix="convcli-pipe-") as folder:
        if str(source) == DASH:
            source = read_stream(sys.stdin.buffer, Path(folder))
        extension = stdout_extension(output, job.fmt, source)
        if extension is None:
            yield source, _output_path(source, output, job), False
        else:
            yield source, Path(folder) / f"stdout{extension}", True


def _copy_to_stdout(path: Path) -> None:
    """The bytes of a written output on standard output."""
    import shutil

    with path.open("rb") as written:
        shutil.copyfileobj(written, sys.stdout.buffer)
    sys.stdout.buffer.flush()


@cli.command()
@click.argument("inputs", metavar="INPUT…", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("-k", "--kernel", "kernel_specs", multiple=True, metavar="SPEC",
              help="A catalogue name (sobel_x), name:params (gaussian:sigma=2, box:5, "
                   "log:sigma=1.4, dog:sigma1=1,sigma2=2, motion:length=9,angle=30, "
                   "unsharp:sigma=1,amount=1.5), a matrix (\"[[1,2,1],[2,4,2],[1,2,1]]/16\" or "
                   "\"1 2 1; 2 4 2; 1 2 1\") or a file (@k.npy, @k.txt, @k.csv, "
                   "@bank.yaml:name, @weights.npz:layer). Repeat to apply several in turn.")
@click.option("-o", "--output", required=True, metavar="FILE|DIR/",
              help="Output file, or a folder (then NAME_KERNEL.EXT); for folders or several "
                   "inputs, the folder that mirrors the input tree.")
@CATALOGUES
@conv_options()
@click.option("--bias", type=FLOATS, default=None,
              help="Added to each output: one number, or one per output channel.")
@click.option("--normalize", is_flag=True, help="Scale each kernel's weights to sum 1.")
@click.option("--range", "range_policy", type=click.Choice(RANGE_POLICIES), default="auto",
              show_default=True,
              help="Results to pixels: clip, abs (|v|), offset (add mid-grey), minmax "
                   "(stretch), float (raw values, .tiff/.npy only); auto asks the kernel.")
@click.option("--alpha", type=click.Choice(ALPHA_POLICIES), default="keep", show_default=True,
              help="keep: filter colour, pass alpha through; filter: filter alpha too; drop.")
@click.option("--gray", is_flag=True, help="Convert to luminance (BT.601) first.")
@click.option("--rgb", is_flag=True, help="Repeat a gray image into 3 channels first.")
@click.option("--format", "fmt", default=None,
              type=click.Choice(extensions(), case_sensitive=False),
              help="Output format, instead of the output's (or input's) extension.")
@click.option("--page", type=click.IntRange(min=1), default=None, metavar="N",
              help="Page of a multi-page input (TIFF), from 1 (default: the first, with a "
                   "note when there are more).")
@click.option("--quality", type=click.IntRange(1, 100), default=None,
              help="JPEG/WebP quality (default 92).")
@click.option("--grid", is_flag=True,
              help="Tile every output channel (feature map) into one gray image, with a thin "
                   "border between them; --range auto stretches each map (minmax) unless the "
                   "kernel's catalogue entry names a range.")
@report_option("what was done: shapes, kernels, options, parameter counts against a dense "
               "layer, value range, algorithm, time of each stage (a batch: every file; its "
               "page is a contact sheet)")
@click.option("--stats", "show_stats", is_flag=True,
              help="Print the conv-vs-dense comparison of each kernel after applying.")
@click.option("-r", "--recursive", is_flag=True, help="Walk input folders' subfolders too.")
@click.option("--glob", "globs", multiple=True, metavar="PATTERN",
              help="Take the files of input folders whose name matches (default: every image "
                   "extension convcli reads); repeatable.")
@click.option("--exclude", "excludes", multiple=True, metavar="PATTERN",
              help="Skip files and folders whose name or relative path matches; repeatable.")
@click.option("--follow-links", is_flag=True, help="Follow symbolic links to folders.")
@click.option("-j", "--jobs", type=click.IntRange(1, MAX_WORKERS), default=None,
              help="Worker processes for folders (default: the number of CPUs).")
@click.option("--skip-existing", is_flag=True,
              help="Keep outputs that exist (resume an interrupted batch).")
@click.option("--overwrite", is_flag=True,
              help="Replace outputs that exist (a batch refuses by default).")
@click.option("--fail-fast", is_flag=True, help="Stop a batch at its first failure.")
@click.option("--dask", metavar="tcp://HOST:8786", envvar="CONVCLI_DASK", default=None,
              help="Run a batch on this Dask scheduler's workers, which must see the inputs "
                   "and -o at the same paths (needs convcli[dask]; $CONVCLI_DASK).")
@click.option("-q", "--quiet", is_flag=True,
              help="Print nothing on success: no progress bar, no 'wrote …' line or batch "
                   "table, no batch warnings (errors and failed files are still shown).")
@weights_option("-k LAYER applies that conv layer (the same as -k @WEIGHTS.npz:LAYER)")
@click.option("--net", "--rf-overlay", "--at", "moved", hidden=True, expose_value=False,
              callback=lambda ctx, param, value: _moved_to_forward(value))
def apply(inputs, kernel_specs, output, catalogues, stride, padding, pad_mode, dilation,
          groups, mode, algo, threads, bias, normalize, range_policy, alpha, gray, rgb, fmt,
          page, quality, grid, report_path, show_stats, recursive, globs, excludes, follow_links,
          jobs, skip_existing, overwrite, fail_fast, dask, quiet, weights_path):
    """Apply kernels to an image, or to folders of images.

    A 2-D kernel is applied to each colour channel on its own; a 4-D kernel
    (Cout, Cin/groups, kh, kw) mixes channels as a CNN layer does.  Given folders (or
    several files), -o is a folder that mirrors the input tree, and files are processed
    in parallel.
    """
    from .kernels import Catalogue, resolve_kernel
    from .pipeline import ApplyJob, ConvOptions

    if gray and rgb:
        raise click.UsageError("--gray and --rgb exclude each other")
    if not output.strip():
        raise click.BadParameter("is empty; give an output file, or a folder as DIR/",
                                 param_hint="'-o'")
    if not kernel_specs:
        raise click.UsageError("Missing option '-k' / '--kernel'")
    if skip_existing and overwrite:
        raise click.UsageError("--skip-existing and --overwrite exclude each other")
    catalogue = Catalogue.load(catalogues)
    if weights_path is not None:
        from .model import conv_layer_names

        layers = conv_layer_names(weights_path)
        kernel_specs = tuple(f"@{weights_path}:{spec}" if spec in layers else spec
                             for spec in kernel_specs)
    kernels = tuple(resolve_kernel(spec, catalogue) for spec in kernel_specs)
    options = ConvOptions(stride=stride, padding=padding, dilation=dilation, groups=groups,
                          pad_mode=pad_mode, mode=mode, bias=bias, normalize=normalize, algo=algo)
    job = ApplyJob(kernels=kernels, options=options, range_policy=range_policy, alpha=alpha,
                   gray=gray, rgb=rgb, quality=quality, grid=grid, fmt=fmt, page=page)
    if threads is not None:
        from .threads import set_threads

        set_threads(threads)
    if len(inputs) > 1 or inputs[0].is_dir():
        if "-" in map(str, inputs) or output == "-" or output.endswith(":-"):
            raise click.UsageError("standard input and output carry one image; a batch of "
                                   "several inputs or a folder reads and writes files")
        if show_stats:
            raise click.UsageError("--stats describes one file; for a batch use --report")
        if not output.endswith(("/", "\\")) and not Path(output).is_dir() \
                and Path(output).suffix.lower() in BY_EXTENSION:
            raise click.BadParameter(f"{output} names a file, but several inputs or a folder "
                                     f"write a folder of outputs; give a folder ({output}/ if "
                                     "that is the name you want)", param_hint="'-o'")
        from .batch import BatchOptions

        if dask and (jobs is not None or threads is not None):
            raise click.UsageError("-j and --threads are local: with --dask, the cluster's "
                                   "workers set them (their share of their cores)")
        batch = BatchOptions(recursive=recursive, globs=globs, excludes=excludes,
                             follow_links=follow_links, jobs=jobs, skip_existing=skip_existing,
                             overwrite=overwrite, fail_fast=fail_fast, dask=dask or None)
        _apply_batch(inputs, Path(output), job, batch, quiet, report_path,
                     _read_files(catalogue, kernel_specs))
        return
    if dask and click.get_current_context().get_parameter_source("dask").name == "COMMANDLINE":
        raise click.UsageError("--dask runs batches (folders or several files); drop it for "
                               "one file")
    with _pipe_ends(inputs[0], output, job) as (source, target, to_stdout):
        check_distinct([("input", source), *_read_files(catalogue, kernel_specs)],
                       [("-o", target), ("--report", report_path)])
        report = job.run(source, target, details=show_stats or report_path is not None)
        if to_stdout:
            _copy_to_stdout(target)
    report.update(input=str(inputs[0]) if str(inputs[0]) == "-" else report["input"],
                  output="-" if to_stdout else report["output"])
    for note in report["notes"] + _clipping_hints(report, job):
        click.echo(f"Warning: {note}", err=True)
    if not quiet:
        click.echo(_apply_summary(report), err=to_stdout)
    if show_stats:
        for stage in report["stages"]:
            _console().print(_comparison_table(stage["conv_vs_dense"], stage["kernel"]))
    if report_path is not None:
        _write_report(report_path, report, lambda: _html().apply_page(job, report))


def _read_files(catalogue, specs=()) -> list[tuple[str, Path]]:
    """The files a run reads besides its images: catalogues and kernel files."""
    from .kernels import spec_file

    return ([("--kernels catalogue", path) for path in catalogue.files]
            + [(f"kernel file of -k {spec}", spec_file(spec)) for spec in specs])


def _moved_to_forward(value) -> None:
    """apply's old network options: a pointer to the command that has them."""
    if value is not None:
        raise click.UsageError("--net, --rf-overlay and --at moved to their own command: "
                               "convcli forward IMAGE NET.yaml -o DIR/ [--rf-overlay OUT.png "
                               "--at Y,X]")


def _apply_batch(inputs, output_dir, job, options, quiet, report_path, read_files):
    import time

    from .batch import Record, find_inputs, no_inputs_reason, plan_tasks, run_tasks

    if output_dir.exists() and not output_dir.is_dir():
        raise click.BadParameter(f"{output_dir} is a file; with folders or several inputs -o "
                                 "must be a folder", param_hint="'-o'")
    found, notes = find_inputs(list(inputs), output_dir, options)
    tasks, existing = plan_tasks(found, output_dir, job, options)
    check_distinct([("input", source) for source, _ in found] + read_files,
                   [("output", task.target) for task in tasks + existing]
                   + [("--report", report_path)])
    if not quiet:
        for note in notes:
            click.echo(f"Warning: {flag_text(note, click.get_current_context())}", err=True)
    if not found:
        raise click.UsageError(flag_text(f"no input files: {no_inputs_reason(inputs, options)}",
                                         click.get_current_context()))
    show_progress = not quiet and sys.stderr.isatty()
    progress = _batch_progress(len(tasks)) if show_progress else None
    failed = finished = 0
    started = time.perf_counter()

    def on_record(record):
        nonlocal failed, finished
        failed += record.status == "failed"
        finished += 1
        if progress is not None:
            rate = finished / (time.perf_counter() - started)
            progress.update(progress.task_ids[0], advance=1, failed=failed,
                            rate=f"{rate:.1f} img/s", refresh=True)

    if progress is not None:
        progress.start()
    try:
        report = run_tasks(tasks, job, options, on_record)
    finally:
        if progress is not None:
            progress.stop()
    if report.interrupted:
        _ignore_interrupts()
    report.total += len(existing)
    report.records[:0] = [Record(str(t.source), str(t.target), "skipped") for t in existing]
    if not quiet:
        _console().print(_batch_summary(report))
    for record in report.failures:
        click.echo(f"failed: {record.error}", err=True)
    if report.interrupted:
        click.echo(f"Interrupted by {report.interrupted}: {len(report.records)} of "
                   f"{report.total} files finished; outputs are complete or absent. Run again "
                   "with --skip-existing to resume.", err=True)
    if report_path is not None:
        data = report.as_dict()
        _write_report(report_path, data, lambda: _html().batch_page(data))
    sys.exit(report.exit_code)


def _batch_progress(total: int):
    """The batch's progress bar, redrawn as each record arrives: no refresh thread, so none
    is alive when local workers are forked (and inherit its locks)."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn)

    progress = Progress(TextColumn("convolving"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        TextColumn("ETA"), TimeRemainingColumn(),
                        TextColumn("[red]{task.fields[failed]} failed"),
                        console=_console(stderr=True), transient=True, auto_refresh=False)
    progress.add_task("batch", total=total, failed=0, rate="")
    return progress


def _batch_summary(report):
    from rich.table import Table

    done = report.count("done")
    table = Table(title="convcli apply: batch", title_justify="left")
    for column in ("done", "skipped", "failed", "not started", "time", "throughput"):
        table.add_column(column, justify="right")
    table.add_row(f"{done:,}", f"{report.count('skipped'):,}", f"{report.count('failed'):,}",
                  f"{report.total - len(report.records):,}", f"{report.elapsed:.2f} s",
                  f"{done / report.elapsed:.1f} img/s" if report.elapsed else "–")
    return table


def _apply_summary(report: dict) -> str:
    shape = _image_size(report["output_shape"])
    channels = report["output_shape"][2] + report["output_alpha"]
    r = report["range"]
    return (f"wrote {report['output']} ({shape}, {channels} channel{'s' * (channels > 1)}, "
            f"{report['output_dtype']}): values {r['min']:.6g} … {r['max']:.6g} before "
            f"--range {r['policy']}, {100 * r['clipped_fraction']:.2f}% clipped")


def _clipping_hints(report: dict, job) -> list[str]:
    """A hint when most values clipped because a kernel's weights do not sum to 1."""
    r = report["range"]
    if r["policy"] != "clip" or r["clipped_fraction"] < 0.25 or job.options.normalize:
        return []
    for kernel in job.kernels:
        sums = kernel.filter_sums()
        if kernel.combine is None and _far_from_one(sums):
            total = ", ".join(sorted({f"{v + 0.0:.4g}" for v in sums}))
            return [f"{100 * r['clipped_fraction']:.0f}% of values clipped: kernel {kernel.name} "
                    f"sums to {total}, not 1; --normalize scales it to sum 1"]
    return []


def _far_from_one(sums) -> bool:
    """Whether any filter sum is far from 1 (≥ 1.5 in magnitude, or ≤ 0.5 but not zero)."""
    return any(abs(v) >= 1.5 or 1e-9 < abs(v) <= 0.5 for v in sums)


def _image_size(shape) -> str:
    """An (H, W, …) image shape as image tools print it: W×H, marked as such."""
    return f"{shape[1]}×{shape[0]} W×H"


def _write_report(path: Path, data, html_page) -> None:
    """--report: a page (``html_page()``) for .html/.htm, else the JSON of `data`."""
    from .files import write_json

    if path.suffix.lower() in (".html", ".htm"):
        _html().write_page(path, html_page())
    else:
        write_json(path, data)


def _html():
    from . import htmlreport

    return htmlreport


# ----------------------------------------------------------------------------------------
# stats and matrix


def _convolution_from_options(shape, spec, catalogues, cout, options, outputs=()):
    """The convolution (and its kernel and plan) a stats or matrix command describes,
    after checking that none of `outputs` (role, path) is a file it reads."""
    from .kernels import Catalogue, resolve_kernel
    from .pipeline import kernel_convolution

    if shape is None:
        raise click.UsageError("Missing option '--input'")
    if spec is None:
        raise click.UsageError("Missing option '-k' / '--kernel'")
    catalogue = Catalogue.load(catalogues)
    check_distinct(_read_files(catalogue, [spec]), outputs)
    kernel = resolve_kernel(spec, catalogue)
    conv = kernel_convolution(kernel, shape[0], options, cout)
    return kernel, conv, conv.plan(shape)


def _stats_options(command):
    """Options shared by `stats` and `matrix`: the layer and its input."""
    from .options import SHAPE

    decorators = [
        click.option("--input", "shape", type=SHAPE, default=None,
                     help="Input shape CxHxW (or HxW for one channel)."),
        click.option("-k", "--kernel", "spec", default=None, metavar="SPEC",
                     help="The kernel: anything -k of apply accepts."),
        CATALOGUES,
        click.option("--cout", type=click.IntRange(min=1), default=None,
                     help="Make a CNN layer of N filters, each the 2-D kernel on every input "
                          "channel (summed). Without it, a 2-D kernel acts on each channel "
                          "on its own, as apply does."),
        conv_options(default_padding="valid", default_pad_mode="zeros", compute=False),
        click.option("--bias/--no-bias", "with_bias", default=None,
                     help="Count one bias per output channel (and per dense output). Default: "
                          "on with --cout, as torch.nn.Conv2d; off for image kernels."),
        JSON,
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _options(stride, padding, pad_mode, dilation, groups, mode):
    from .pipeline import ConvOptions

    return ConvOptions(stride=stride, padding=padding, dilation=dilation, groups=groups,
                       pad_mode=pad_mode, mode=mode)


def _comparison_table(stats: dict, title: str):
    from rich.table import Table

    table = Table(title=f"{_text(title)}: convolution vs dense layer", title_justify="left")
    table.add_column("")
    table.add_column("convolution", justify="right")
    table.add_column("dense", justify="right")
    rows = [
        ("input", shape_text(stats["input_shape"]), f"{stats['dense_in']:,}"),
        ("output", shape_text(stats["output_shape"]), f"{stats['dense_out']:,}"),
        ("weights", f"{stats['conv_weights']:,}", f"{stats['dense_weights']:,}"),
        ("bias", f"{stats['conv_bias']:,}", f"{stats['dense_bias']:,}"),
        ("parameters", f"{stats['conv_params']:,}", f"{stats['dense_params']:,}"),
        ("ratio", "1", f"{stats['param_ratio']:,.0f}×" if stats["param_ratio"] >= 100
         else f"{stats['param_ratio']:.3g}×"),
        ("multiply-accumulates", f"{stats['conv_macs']:,}", f"{stats['dense_macs']:,}"),
        ("float32 weights", _bytes(stats["conv_weights"] * 4), _bytes(stats["dense_bytes_float32"])),
    ]
    for row in rows:
        table.add_row(*row)
    rows_m, cols_m = stats["matrix_shape"]
    table.caption = (
        f"equivalent matrix {rows_m:,}×{cols_m:,}: {stats['matrix_nonzeros']:,} nonzeros, "
        f"density {stats['matrix_density']:.4%}; each weight is reused "
        f"{stats['weight_reuse']:,} times (once per output pixel)")
    table.caption_justify = "left"
    return table


def _bytes(count: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:,.0f} {unit}" if unit == "B" else f"{count:,.1f} {unit}"
        count /= 1000


@cli.command()
@_stats_options
@click.option("--dense-out", type=click.IntRange(min=1), default=None,
              help="Compare with a dense layer of N outputs instead of one output per "
                   "convolution output.")
@click.option("--net", "net_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="NET.yaml|MODEL.onnx",
              help="Instead of -k: the parameters and mult-adds of every layer of a network "
                   "(at its own input, or --input).")
@report_option("the comparison (its page: a table and bars)")
def stats(shape, spec, catalogues, cout, stride, padding, pad_mode, dilation, groups, mode,
          with_bias, as_json, dense_out, net_path, report_path):
    """Parameter counts and costs of a convolution against a dense layer (no image needed),
    or of every layer of a network (--net).

    Example: convcli stats --input 5x5 -k box:3 (9 weights against 225).
    """
    from .matrix import conv_vs_dense

    if net_path is not None:
        if spec is not None:
            raise click.UsageError("--net counts a network's layers; drop -k")
        from .net import load_network, network_report

        network = load_network(net_path, shape)
        report = network_report(network, network.summary(), network.input_shape, fields=False)
        if as_json:
            import json

            click.echo(json.dumps(report))
        else:
            _console().print(_network_table(report, fields=False))
        return

    options = _options(stride, padding, pad_mode, dilation, groups, mode)
    kernel, conv, plan = _convolution_from_options(shape, spec, catalogues, cout, options,
                                                   [("--report", report_path)])
    with_bias = cout is not None if with_bias is None else with_bias
    result = conv_vs_dense(plan.input_shape[1:], conv.weight, plan.stride, plan.padding,
                           plan.dilation, plan.groups, plan.pad_mode, plan.mode, with_bias,
                           dense_out)
    if report_path is not None:
        _write_report(report_path, result,
                      lambda: _html().comparison_page("stats", kernel.name, result))
    if as_json:
        from .files import json_text

        click.echo(json_text(result))
    else:
        _console().print(_comparison_table(result, kernel.name))


@cli.command()
@_stats_options
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a heatmap of the matrix (blue < 0 < red).")
@click.option("--npy", "npy", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the dense matrix as .npy.")
@click.option("--sparse", "sparse", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.npz",
              help="Save the matrix as row, col, value and shape arrays (.npz); works for "
                   "sizes where the dense matrix would not fit.")
@click.option("--im2col", "show_im2col", is_flag=True,
              help="Show the patch matrix (Cin·kh·kw × Ho·Wo) instead, as fast "
                   "implementations multiply it.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random inputs used to verify the matrix.")
@report_option("the matrix's summary (its page: the comparison and the matrix heatmap)")
def matrix(shape, spec, catalogues, cout, stride, padding, pad_mode, dilation, groups, mode,
           with_bias, as_json, png, npy, sparse, show_im2col, seed, report_path):
    """The convolution as one matrix, built and verified: M·x + b = conv(x).

    Example: convcli matrix --input 4x4 -k "[[1,2,3],[4,5,6],[7,8,9]]" prints the
    4×16 matrix of a 3×3 kernel on a 4×4 image, weight by weight.
    """
    import math

    from .htmlreport import PAGE_MATRIX_LIMIT
    from .matrix import conv_vs_dense, explain_matrix, matrix_shape

    options = _options(stride, padding, pad_mode, dilation, groups, mode)
    kernel, conv, plan = _convolution_from_options(
        shape, spec, catalogues, cout, options,
        [("--png", png), ("--npy", npy), ("--sparse", sparse), ("--report", report_path)])
    if kernel.combine:
        click.echo(f"Note: {kernel.name} combines its filters by {kernel.combine}, which is not "
                   f"linear; this is the matrix of its {kernel.n_filters} filters.", err=True)
    bias = conv.bias if with_bias is not False else None
    page = report_path is not None and report_path.suffix.lower() in (".html", ".htm")
    drawable = page and math.prod(matrix_shape(plan)) <= PAGE_MATRIX_LIMIT
    view = explain_matrix(plan, conv.weight, bias, patch_matrix=show_im2col, seed=seed,
                          dense=bool(png or npy or drawable))
    if report_path is not None:
        _write_report(report_path, view.summary(), lambda: _html().comparison_page(
            "matrix", kernel.name, conv_vs_dense(
                plan.input_shape[1:], conv.weight, plan.stride, plan.padding, plan.dilation,
                plan.groups, plan.pad_mode, plan.mode, bias is not None and bool(bias.any())),
            view))
    from .files import save_npy, save_npz

    if sparse is not None:
        if view.sparse is None:
            raise click.UsageError("--sparse saves the equivalent matrix; drop --im2col")
        save_npz(sparse, **view.sparse.arrays())
    if npy is not None:
        save_npy(npy, view.values)
    if png is not None:
        from .images import save_pillow
        from .render import heatmap

        cell = max(1, min(40, 1600 // max(view.shape)))
        labels = [c for row in view.cells for c in row] if view.cells and cell >= 24 else None
        save_pillow(heatmap(view.values, cell, labels), png)
    if as_json:
        from .files import json_text

        click.echo(json_text(view.summary()))
        return
    console = _console()
    console.print(f"[bold]{view.title}[/bold] of {_text(kernel.name)} on {shape_text(shape)} → "
                  f"{shape_text(plan.output_shape[1:])}")
    if view.cells is not None:
        console.print(_cells_table(view.cells, view.values))
    else:
        console.print("(too large to print; see --png, --npy or --sparse)")
    if view.nonzeros is not None:
        console.print(f"nonzeros {view.nonzeros:,} of {view.shape[0] * view.shape[1]:,} "
                      f"(density {view.density:.4%})")
    console.print(f"verified on {view.trials} random inputs: max |M·x + b − conv(x)| = "
                  f"{view.max_abs_error:.3g}")


def _cells_table(cells, values):
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False, padding=(0, 1))
    for _ in cells[0]:
        table.add_column(justify="right")
    for row_cells, row_values in zip(cells, values):
        table.add_row(*(Text(text, style="dim" if text == "0" else
                             "red" if v > 0 else "blue" if v < 0 else "")
                        for text, v in zip(row_cells, row_values)))
    return table


# ----------------------------------------------------------------------------------------
# learn


@cli.command()
@click.argument("source", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("target", metavar="TARGET", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--pair", "pairs", nargs=2, multiple=True, metavar="INPUT TARGET",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Another example pair; repeatable.")
@click.option("-s", "--size", "size", type=STRIDE, required=True, metavar="K|KHxKW",
              help="Kernel size.")
@click.option("--depthwise", is_flag=True,
              help="Learn one 2-D kernel applied to every channel (the default when input "
                   "and target have as many channels; --cout learns a layer instead).")
@click.option("--cout", type=click.IntRange(min=1), default=None,
              help="Learn a layer of N filters, each over all input channels (N must be "
                   "the target's channel count); the default when the channel counts differ.")
@click.option("--bias/--no-bias", "with_bias", default=True, show_default=True,
              help="Learn a bias per output channel.")
@click.option("--stride", type=STRIDE, default=1, show_default=True, help="N or SHxSW.")
@click.option("--dilation", type=DILATION, default=1, show_default=True, help="N or DHxDW.")
@click.option("--pad-mode", type=PAD_MODE, default=None,
              help="Fit border pixels too, padding with this mode (default: fit only pixels "
                   "whose window lies inside the image).")
@click.option("--method", type=click.Choice(["lstsq", "gd"]), default="lstsq", show_default=True,
              help="lstsq: exact least squares; gd: gradient descent, watching the loss.")
@click.option("--ridge", type=FiniteFloatRange(min=0), default=0.0, show_default=True,
              help="Ridge penalty λ·|w|² (per pixel); helps when images barely vary.")
@click.option("--epochs", type=click.IntRange(1, MAX_EPOCHS), default=200, show_default=True,
              help="Gradient descent steps.")
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=None,
              help="Gradient descent step (default: 1/curvature, found by power iteration).")
@click.option("--holdout", type=FiniteFloatRange(0, 1, max_open=True), default=0.0,
              show_default=True, help="Share of pixels kept out of the fit to test it.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the holdout split.")
@click.option("--name", default="learned", show_default=True,
              help="Name of the learned kernel (its catalogue entry with --save).")
@click.option("--save", "save_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="CATALOGUE.yaml",
              help="Append the kernel, with its provenance, to a user catalogue.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="FILE.png", help="Write the loss curve (gd).")
@CATALOGUES
@JSON
def learn(source, target, pairs, size, depthwise, cout, with_bias, stride, dilation, pad_mode,
          method, ridge, epochs, lr, holdout, seed, name, save_path, plot_path, catalogues,
          as_json):
    """Learn the kernel that turns INPUT into TARGET.

    Inputs and targets are images or .npy arrays (H×W or H×W×C; a target may be signed);
    the target is what `convcli apply` with these options would write, so its size is the
    input's at stride 1.
    """
    from .images import read_image
    from .kernels import Catalogue, Kernel, weights_text
    from .learn import Geometry, LearnSettings, closest_kernels
    from .learn import learn as fit
    from .plan import int_pair

    if depthwise and cout is not None:
        raise click.UsageError("--depthwise and --cout exclude each other")
    if plot_path is not None and method != "gd":
        raise click.UsageError("--plot draws the loss curve of --method gd")
    files = [(source, target), *pairs]
    images = [(role, path) for pair in files for role, path in zip(("INPUT", "TARGET"), pair)]
    check_distinct(images, [("--save", save_path), ("--plot", plot_path)])
    check_distinct([("--kernels catalogue", path) for path in catalogues], [("--plot", plot_path)])
    arrays = [(read_image(x).color, read_image(y).color) for x, y in files]
    geometry = Geometry(size=int_pair(size, "size"), stride=int_pair(stride, "stride"),
                        dilation=int_pair(dilation, "dilation"), pad_mode=pad_mode)
    settings = LearnSettings(geometry=geometry, depthwise=depthwise, cout=cout, bias=with_bias,
                             method=method, ridge=ridge, epochs=epochs, lr=lr, holdout=holdout,
                             seed=seed)
    progress = _loss_progress(epochs) if method == "gd" and not as_json and sys.stderr.isatty() else None
    on_epoch = None if progress is None else (
        lambda epoch, loss: progress.update(progress.task_ids[0], advance=1, loss=f"{loss:.6g}"))
    if progress is not None:
        progress.start()
    try:
        result = fit(arrays, settings, on_epoch)
    finally:
        if progress is not None:
            progress.stop()
    catalogue = Catalogue.load(catalogues)
    closest = closest_kernels(result.weight, catalogue)
    weights = result.weight[0] if result.kernel_2d else result.weight
    kernel = Kernel(name, weights, result.bias, description="learned")
    summary = {"name": name, "weights": result.weights_list(), "bias": result.bias.tolist(),
               "rmse": result.fit["rmse"], "r2": result.fit["r2"], "fit": result.fit,
               "holdout": result.held_out,
               "closest": [{"kernel": k, "similarity": v} for k, v in closest],
               "method": method, "losses": result.losses}
    if save_path is not None:
        from .learn import catalogue_entry

        entry = catalogue_entry(result, files, {**settings.as_dict(),
                                                "depthwise": result.depthwise})
        from .kernels import append_to_catalogue

        append_to_catalogue(save_path, name, entry)
    if plot_path is not None:
        from .images import save_pillow
        from .render import line_chart

        save_pillow(line_chart(result.losses, "epoch", "loss (mean squared error)"), plot_path)
    if as_json:
        from .files import json_text

        click.echo(json_text(summary))
        return
    console = _console()
    shape = weights.shape[1:] if result.kernel_2d else weights.shape
    console.print(f"[bold]{_text(name)}[/bold]: "
                  f"{'one 2-D kernel' if result.kernel_2d else 'a layer'} "
                  f"{'×'.join(map(str, shape))} by {method}")
    click.echo(weights_text(kernel))
    for label, report in (("fit", result.fit), ("held out", result.held_out)):
        if report:
            console.print(f"{label}: RMSE {report['rmse']:.6g}, R² {report['r2']:.6f} "
                          f"over {report['pixels']:,} values")
    for index, (k, v) in enumerate(closest):
        prefix = "" if len(closest) == 1 else f"filter {index + 1} "
        console.print(f"{prefix}≈ {_text(k)} ({v:.4f})")
    if result.fit["r2"] < LINEAR_R2:
        click.echo(_nonlinear_hint(result.fit["r2"], source, target), err=True)
    if save_path is not None:
        console.print(_text(f"saved as {name} in {save_path}: convcli apply IMAGE -k {name} "
                            f"--kernels {save_path}"))


#: Below this R², `learn` says the target is not a linear map of the input.
LINEAR_R2 = 0.2


def _nonlinear_hint(r2: float, source: Path, target: Path) -> str:
    """Why a fit explains almost nothing, and what target to give instead."""
    why = ("" if target.suffix.lower() == ".npy" else
           f"; an image keeps only mapped values (an edge map written with --range abs or clip "
           f"has lost its sign), so write a signed target with "
           f"`convcli apply {source} -k KERNEL --range float -o {target.stem}.npy` and learn "
           "from that")
    return (f"Warning: R² {r2:.3f}: {target} is not a linear map of {source} that a kernel can "
            f"learn{why}")


def _loss_progress(epochs: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("learning"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), console=_console(stderr=True),
                        transient=True)
    progress.add_task("gd", total=epochs, loss="…")
    return progress


# ----------------------------------------------------------------------------------------
# networks: receptive-field, forward, stats --net


def _point(text: str) -> tuple[int, int]:
    try:
        y, x = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not Y,X (two whole numbers)",
                                 param_hint="'--at'") from None
    return y, x


NET_ARGUMENT = click.argument("net_path", metavar="NET.yaml|MODEL.onnx",
                              type=click.Path(dir_okay=False, path_type=Path))
LAYER = click.option("--layer", "layer_key", default=None, metavar="NAME|INDEX",
                     help="The layer --at refers to (default: the last spatial layer).")


def _net_input_option(help_text: str):
    from .options import SHAPE

    return click.option("--input", "shape", type=SHAPE, default=None, help=help_text)


def _window(network, rows, at, layer_key) -> dict:
    """--at (and --layer) checked against the layer: the window record."""
    from .net import find_layer, last_spatial, window_at

    position = find_layer(rows, layer_key) if layer_key else last_spatial(rows)
    y, x = _point(at)
    top, bottom, left, right = window_at(rows, position, y, x)
    return {"layer": rows[position].node.name, "position": position, "y": y, "x": x,
            "rows": [top, bottom], "cols": [left, right]}


def _window_text(window: dict) -> str:
    return (f"{window['layer']} pixel ({window['y']}, {window['x']}) sees input rows "
            f"{window['rows'][0]}…{window['rows'][1]}, columns "
            f"{window['cols'][0]}…{window['cols'][1]}")


def _network_table(report: dict, fields: bool):
    """The per-layer table of `net.network_report`; with `fields`, r, S and P too."""
    from rich.table import Table

    layers = report["layers"]
    branching = any(record["inputs"] != [previous["name"]]
                    for previous, record in zip(layers, layers[1:]))
    columns = ["#", "name", "type", *(["inputs"] if branching else []), "output", "params",
               "mult-adds", *(["r", "S", "P"] if fields else [])]
    table = Table(title=f"{_text(report['name'])}: input {shape_text(report['input_shape'])}",
                  title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("name", "type", "inputs",
                                                              "output") else "right")
    for index, record in enumerate(layers, 1):
        cells = [str(index), _text(record["name"]), record["type"],
                 *([_text(", ".join(record["inputs"]))] if branching else []),
                 shape_text(record["output_shape"]), f"{record['params']:,}",
                 f"{record['macs']:,}"]
        if fields and record["spatial"] and not record["grid"]:
            cells += ["not a grid", "", ""]
        elif fields:
            cells += [_axes_text(record[k]) for k in ("rf", "stride", "padding")]
        table.add_row(*cells)
    table.caption = (f"total parameters: {report['total_params']:,}; mult-adds: "
                     f"{report['total_macs']:,}")
    table.caption_justify = "left"
    return table


@cli.command("receptive-field")
@NET_ARGUMENT
@_net_input_option("Input shape CxHxW (or HxW) instead of the network's own.")
@click.option("--at", "at", default=None, metavar="Y,X",
              help="Print the input window this output pixel of the last (or --layer) layer "
                   "sees, clipped to the image.")
@LAYER
@weights_option("checked against the network and described (provenance, each layer's "
                "weight range)")
@JSON
def receptive_field(net_path, shape, at, layer_key, weights_path, as_json):
    """Shapes, parameters, mult-adds and receptive fields of a network, layer by layer.

    NET is a network file (YAML) or an ONNX model.  r is the receptive field, S the
    effective stride and P the effective padding (before the first pixel), all with
    respect to the input; output pixel y sees input pixels y·S − P … y·S − P + r − 1.
    Where paths with different effective strides meet, a layer is "not a grid".
    """
    from .net import load_network, network_report

    network = load_network(net_path, shape)
    rows = network.summary()
    result = network_report(network, rows, network.input_shape)
    if at is not None:
        window = _window(network, rows, at, layer_key)
        del window["position"]
        result["at"] = window
    elif layer_key is not None:
        raise click.UsageError("--layer says which layer --at refers to; give --at Y,X")
    if weights_path is not None:
        from .model import load_weights

        trained = load_weights(weights_path, network)
        result["weights"] = {"file": str(weights_path), "provenance": trained.provenance,
                             "range": {name: [float(a.min()), float(a.max())]
                                       for name, a in trained.arrays.items()}}
    if as_json:
        import json

        click.echo(json.dumps(result))
        return
    _console().print(_network_table(result, fields=True))
    if at is not None:
        click.echo(_window_text(result["at"]))
    if weights_path is not None:
        trained = result["weights"]
        made = trained["provenance"]
        click.echo(f"weights {weights_path}: fit the network; "
                   + (f"trained by {made.get('trainer')} on {made.get('data')} for "
                      f"{made.get('epochs_completed')} epoch(s), val accuracy "
                      f"{made.get('val_accuracy')}" if made else "no provenance"))
        for name, (low, high) in trained["range"].items():
            click.echo(f"  {name}: {low:.4g} … {high:.4g}")


def _axes_text(value) -> str:
    if value is None:
        return "all"
    return f"{value[0]}×{value[1]}" if isinstance(value, list) else str(value)


@cli.command()
@click.argument("image", metavar="IMAGE", type=click.Path(dir_okay=False, path_type=Path))
@NET_ARGUMENT
@click.option("-o", "--output", "output_dir", required=True, metavar="DIR/",
              type=click.Path(file_okay=False, path_type=Path),
              help="The folder for the feature maps: NN_LAYER.npy (H×W×C float32), or "
                   "NN_LAYER.png with --grid.")
@click.option("--grid", is_flag=True,
              help="Write each layer as one gray PNG tiling its channels, each stretched "
                   "on its own (see --range).")
@click.option("--range", "range_policy", type=click.Choice(["minmax", "clip", "abs", "offset"]),
              default=None, help="How --grid tiles map values to gray (default minmax).")
@click.option("--gray", is_flag=True, help="Convert the image to luminance (BT.601) first.")
@click.option("--rgb", is_flag=True, help="Repeat a gray image into 3 channels first.")
@click.option("--rf-overlay", "overlay_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="OUT.png",
              help="With --at: draw on the image the receptive field of that output pixel "
                   "at each depth.")
@click.option("--at", "at", default=None, metavar="Y,X",
              help="An output pixel of the last spatial layer (or --layer), for --rf-overlay.")
@LAYER
@report_option("what was done: the network, image, every map written with its shape and "
               "value range, the window of --at (the page: maps, shapes, parameters, r/S/P, "
               "the overlay)")
@CATALOGUES
@weights_option("for the network's conv layers; the image is then scaled to 0…1, as in "
                "training")
def forward(image, net_path, output_dir, grid, range_policy, gray, rgb, overlay_path, at,
            layer_key, report_path, catalogues, weights_path):
    """Run a network on an image and write every spatial layer's feature maps.

    NET is a network file (YAML: weights from kernel specs or seeded random
    initialisation) or an ONNX model (its weights).  Layers from flatten on are not run.
    Every option is checked before any map is written.
    """
    from .formats import format_of
    from .images import read_image
    from .kernels import Catalogue
    from .files import check_distinct
    from .net import check_input, feature_map_paths, load_network, network_report, write_feature_maps
    from .pipeline import input_planes

    if gray and rgb:
        raise click.UsageError("--gray and --rgb exclude each other")
    if (overlay_path is None) != (at is None):
        raise click.UsageError("--rf-overlay and --at go together")
    if layer_key is not None and at is None:
        raise click.UsageError("--layer says which layer --at refers to; give --at Y,X")
    if range_policy is not None and not grid:
        raise click.UsageError("--range maps the tiles of --grid; .npy maps keep their values")
    if overlay_path is not None and format_of(overlay_path).name == "NPY":
        raise click.BadParameter(f"{overlay_path}: a picture needs an image format such as "
                                 ".png", param_hint="'--rf-overlay'")
    if output_dir.exists() and not output_dir.is_dir():
        raise click.BadParameter(f"{output_dir} is a file; -o is a folder", param_hint="'-o'")
    network = load_network(net_path)
    if weights_path is not None:
        from .model import load_weights, with_weights

        network = with_weights(network, load_weights(weights_path, network))
    catalogue = Catalogue.load(catalogues)
    check_distinct([("input", image), ("network", net_path), *_read_files(catalogue)],
                   [*(("feature map", p) for p in
                      feature_map_paths(network, output_dir, grid).values()),
                    ("--rf-overlay", overlay_path), ("--report", report_path)])
    picture = read_image(image)
    planes = input_planes(picture, gray, rgb)
    if weights_path is not None:          # trained networks see pixels on a 0…1 scale
        planes = planes / picture.max_value
    rows = check_input(network, planes.shape, catalogue)
    window = _window(network, rows, at, layer_key) if at is not None else None
    maps = write_feature_maps(network, planes, output_dir, grid=grid,
                              range_policy=range_policy or "minmax", catalogue=catalogue)
    click.echo(f"wrote the feature maps of {len(maps)} layers to {output_dir}/ "
               f"({'png' if grid else 'npy'})")
    report = {"image": str(image), "network": str(net_path), "name": network.name,
              "input_shape": list(planes.shape), "maps": maps}
    if window is not None:
        _draw_overlay(picture, rows, window, overlay_path)
        click.echo(f"wrote {overlay_path}: {_window_text(window)}")
        del window["position"]
        report.update(at=window, rf_overlay=str(overlay_path))
    if report_path is not None:
        _write_report(report_path, report, lambda: _html().forward_page(
            report, network_report(network, rows, planes.shape)))


def _draw_overlay(picture, rows, window, path) -> None:
    from .images import save_pillow
    from .net import axes, fields_at_depth
    from .pixels import display_rgb
    from .render import draw_windows

    drawn = fields_at_depth(rows, window["position"], window["y"], window["x"])
    labels = [f"{row.node.name}: r={_axes_text(axes(row.fields, 'size'))}" for row, _ in drawn]
    save_pillow(draw_windows(display_rgb(picture.color), [w for _, w in drawn], labels), path)


# ----------------------------------------------------------------------------------------
# kernels


def _provenance_lines(key: str, value, indent: str = "") -> list[str]:
    """A kernel's provenance (nested dicts and lists from its catalogue entry) as indented
    "key: value" lines."""
    if isinstance(value, dict):
        lines = [f"{indent}{key}:"]
        for name, item in value.items():
            lines += _provenance_lines(str(name), item, indent + "  ")
        return lines
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return [f"{indent}{key}:"] + [line for index, item in enumerate(value, 1)
                                      for line in _provenance_lines(str(index), item, indent + "  ")]
    text = ", ".join(map(str, value)) if isinstance(value, list) else value
    return [f"{indent}{key}: {'–' if text is None else text}"]




@cli.group(invoke_without_command=True)
@CATALOGUES
@click.pass_context
def kernels(ctx, catalogues):
    """List the kernel catalogue (or show one kernel)."""
    from .kernels import Catalogue

    ctx.obj = Catalogue.load(catalogues)
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table
    from rich.text import Text

    catalogue = ctx.obj
    columns = ("name", "size", "sum", "separable", "range", "description")
    rows = []
    for name in catalogue.names():
        kernel = catalogue.get(name)
        kh, kw = kernel.size
        size = f"{kh}×{kw}" + (f" ×{kernel.n_filters}" if kernel.n_filters > 1 else "")
        sums = sorted({float(f"{s + 0.0:.4g}") for s in kernel.filter_sums()})
        total = ", ".join(f"{s:.4g}" for s in sums) if len(sums) <= 3 else \
            f"{sums[0]:.4g} … {sums[-1]:.4g}"          # a bank of many different sums
        rows.append((name, size, total, "yes" if kernel.separable() else "no",
                     kernel.range_hint() + (f" ({kernel.combine})" if kernel.combine else ""),
                     ("(learned) " if kernel.learned else "") + kernel.description))
    console = _console()
    if console.width < NARROW_COLUMNS:
        click.echo("\n".join(_narrow_listing(columns, rows, console.width)))
        return
    table = Table(title="convcli kernels", title_justify="left")
    for column in columns:
        table.add_column(column, no_wrap=column != "description")
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    console.print(table)


#: Below this terminal width `convcli kernels` prints each description under its row
#: instead of squeezing it into a column.
NARROW_COLUMNS = 120


def _narrow_listing(columns, rows, width: int) -> list[str]:
    """Rows as aligned columns, the last column (the description) wrapped on the lines
    below each row, indented."""
    import textwrap

    widths = [max(len(row[i]) for row in [columns, *rows]) for i in range(len(columns) - 1)]
    lines = []
    for row in [columns, *rows]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        lines += textwrap.wrap(row[-1], max(20, width - 4), initial_indent="    ",
                               subsequent_indent="    ")
    return lines


kernels.command_class = ConvcliCommand


@kernels.command("show")
@click.argument("spec")
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an enlarged heatmap of the weights (blue < 0 < red).")
@click.option("--cell", type=click.IntRange(4, 200), default=48, show_default=True,
              help="Heatmap pixels per weight.")
@CATALOGUES
@click.pass_obj
def kernels_show(catalogue, spec, png, cell, catalogues):
    """Print a kernel's weights (SPEC is anything -k accepts)."""
    from .kernels import resolve_kernel, weights_text

    for path in catalogues:
        catalogue.add_file(path)
    check_distinct(_read_files(catalogue, [spec]), [("--png", png)])
    kernel = resolve_kernel(spec, catalogue)
    if png is not None:                         # first, so a refused size prints nothing
        from .render import kernel_picture

        picture = kernel_picture(kernel.weights, cell)
    click.echo(f"{kernel.name}  {kernel.description}")
    if kernel.source:
        click.echo(f"source: {kernel.source}")
    if kernel.learned:
        click.echo("\n".join(_provenance_lines("learned", kernel.learned)))
    click.echo(weights_text(kernel))
    if png is not None:
        from .images import save_pillow

        save_pillow(picture, png)
        click.echo(f"wrote {png}")


# ----------------------------------------------------------------------------------------
# train, visualize, attack: a small CNN trained by convcli's own gradients


def _model(net_path, weights_path):
    """The network file with its trained weights."""
    from .model import Model, load_weights
    from .net import load_network

    network = load_network(net_path)
    return Model(network, load_weights(weights_path, network))


@cli.command()
@click.argument("data", metavar="DATA.npz", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--net", "net_path", required=True, metavar="NET.yaml",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The network: conv, relu, pools, flatten, dense, ending in softmax.")
@click.option("-o", "--output", required=True, metavar="WEIGHTS.npz",
              type=click.Path(dir_okay=False, path_type=Path), help="Where to write the weights.")
@click.option("--epochs", type=click.IntRange(min=1), default=8, show_default=True)
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=0.003,
              show_default=True, help="Learning rate.")
@click.option("--batch", type=click.IntRange(min=1), default=32, show_default=True,
              help="Images per step.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the initial weights, the validation split and the batch order.")
@click.option("--val", type=click.FloatRange(0, 1, max_open=True), default=0.1,
              show_default=True, help="Share of the images held out for validation.")
@click.option("--optimizer", type=click.Choice(["adam", "sgd"]), default="adam",
              show_default=True, help="Adam, or SGD with --momentum.")
@click.option("--momentum", type=click.FloatRange(0, 1, max_open=True), default=0.9,
              show_default=True, help="SGD's momentum.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Draw the loss per batch as a PNG.")
def train(data, net_path, output, epochs, lr, batch, seed, val, optimizer, momentum, plot_path):
    """Train a classifier on DATA.npz (arrays images (N, C, H, W) and labels (N,)) by
    backpropagation through convcli's own convolutions.

    One line per epoch goes to stdout (loss, accuracy, validation accuracy, images/s).
    Ctrl-C keeps the last completed epoch: its weights are written and the command says so.
    """
    from .model import Model, initial_weights
    from .net import load_network
    from .train import TrainOptions, load_dataset, provenance
    from .train import train as fit

    options = TrainOptions(epochs=epochs, lr=lr, batch=batch, seed=seed, val=val,
                           optimizer=optimizer, momentum=momentum)
    check_distinct([("DATA", data), ("--net", net_path)],
                   [("-o", output), ("--plot", plot_path)])
    if plot_path is not None and plot_path.suffix.lower() != ".png":
        raise click.BadParameter(f"{plot_path}: the loss plot is a PNG; give a name ending "
                                 "in .png", param_hint="'--plot'")
    network = load_network(net_path)
    if network.nodes[-1].kind != "softmax":
        raise click.BadParameter(f"{net_path} must end in a softmax layer to be trained as a "
                                 "classifier", param_hint="'--net'")
    dataset = load_dataset(data)
    expected = tuple(network.input_shape)
    if dataset.images.shape[1:] != expected:
        raise click.BadParameter(f"{data} holds {shape_text(dataset.images.shape[1:])} images; "
                                 f"{net_path} takes {shape_text(expected)}", param_hint="'DATA'")
    classes = network.summary()[-1].output_shape[0]
    if len(dataset.classes) > classes:
        raise click.BadParameter(f"{data} has {len(dataset.classes)} classes; {net_path} "
                                 f"outputs {classes}", param_hint="'DATA'")
    model = Model(network, initial_weights(network, seed))
    progress = _train_progress() if sys.stderr.isatty() else None
    losses, last, interrupted = [], None, False
    console = _console()

    def on_batch(done, total, loss):
        if progress is not None:
            progress.update(progress.task_ids[0], completed=done, total=total,
                            loss=f"{loss:.4f}")

    if progress is not None:
        progress.start()
    try:
        for epoch in fit(model, dataset, options, on_batch):
            last = epoch
            losses.extend(epoch.losses)
            rate = len(epoch.losses) and (len(dataset.labels) * (1 - val)) / epoch.seconds
            val_text = "" if epoch.val_accuracy is None else \
                f", val accuracy {epoch.val_accuracy:.1%}"
            line = (f"epoch {epoch.number}/{epochs}: loss {epoch.loss:.4f}, accuracy "
                    f"{epoch.accuracy:.1%}{val_text}, {rate:,.0f} images/s")
            if progress is not None:
                progress.console.print(line)
                progress.update(progress.task_ids[0], description=f"epoch {epoch.number + 1}")
            else:
                click.echo(line)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if progress is not None:
            progress.stop()
    if last is None:
        click.echo("Interrupted before the first epoch completed; nothing written.", err=True)
        sys.exit(130)
    last.weights.provenance = provenance(data, dataset, net_path, options, last, interrupted)
    last.weights.save(output)
    if plot_path is not None:
        from .images import save_pillow
        from .render import line_chart

        save_pillow(line_chart(losses, "batch", "training loss (cross-entropy)"),
                    plot_path)
    if interrupted:
        click.echo(f"Interrupted: saved epoch {last.number} of {epochs} to {output}.", err=True)
        sys.exit(130)
    console.print(f"saved {output} (epoch {last.number}"
                  + ("" if last.val_accuracy is None else
                     f", val accuracy {last.val_accuracy:.1%}") + ")")


def _train_progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("loss {task.fields[loss]}"), console=_console(stderr=True),
                        transient=True)
    progress.add_task("epoch 1", total=None, loss="…")
    return progress


@cli.command()
@click.argument("net_path", metavar="NET.yaml", type=click.Path(dir_okay=False, path_type=Path))
@weights_option("the network's trained layers", required=True)
@click.option("--layer", "layer_key", required=True, metavar="NAME|INDEX",
              help="The layer whose channel to excite.")
@click.option("--channel", default="all", show_default=True, metavar="C|all",
              help="A channel number, or all of the layer's channels as a grid.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--steps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--lr", type=FiniteFloatRange(min=0, min_open=True), default=0.05,
              show_default=True, help="Step size (gradients are normalised).")
@click.option("--jitter", type=click.IntRange(min=0), default=2, show_default=True,
              help="Random shift per step, in pixels.")
@click.option("--scale", type=click.FloatRange(0, 0.5), default=0.05, show_default=True,
              help="Random rescaling per step, up to ±this.")
@click.option("--tv", type=click.FloatRange(min=0), default=0.02, show_default=True,
              help="Total-variation penalty.")
@click.option("--blur", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="σ of the smoothing after each step (0: none).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--cell", type=click.IntRange(1, 32), default=3, show_default=True,
              help="Output pixels per image pixel.")
def visualize(net_path, weights_path, layer_key, channel, output, steps, lr, jitter, scale, tv,
              blur, seed, cell):
    """Feature visualisation: the input that excites a channel most (Olah et al., Distill
    2017), found by gradient ascent from faint noise with jitter, rescaling, a
    total-variation penalty and blurring.  Prints each channel's mean activation before
    (on the noise) and after."""
    from .images import write_image
    from .visualize import VisualizeOptions, grid_picture
    from .visualize import visualize as optimise

    check_distinct([("NET", net_path), ("--weights", weights_path)], [("-o", output)])
    model = _model(net_path, weights_path)
    position = model.position(layer_key)
    row = model.rows[position]
    count = row.output_shape[0]
    if channel == "all":
        channels = list(range(count))
    else:
        try:
            channels = [int(channel)]
        except ValueError:
            raise click.BadParameter(f"{channel!r} is not a channel number or 'all'",
                                     param_hint="'--channel'") from None
        if not 0 <= channels[0] < count:
            raise click.BadParameter(f"{row.node.name} has channels 0…{count - 1}, got "
                                     f"{channels[0]}", param_hint="'--channel'")
    options = VisualizeOptions(steps=steps, lr=lr, jitter=jitter, scale=scale, tv=tv, blur=blur,
                               seed=seed)
    images, before, after = optimise(model, position, channels, options)
    write_image(output, grid_picture(images, cell))
    for c, b, a in zip(channels, before, after):
        click.echo(f"{row.node.name} channel {c}: mean activation {b:.4f} → {a:.4f}")
    _console().print(f"wrote {output}")


@cli.command()
@click.argument("net_path", metavar="NET.yaml", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("image", metavar="IMAGE", type=click.Path(dir_okay=False, path_type=Path))
@weights_option("the network's trained layers", required=True)
@click.option("--eps", type=click.FloatRange(0, 1, min_open=True), default=0.02,
              show_default=True, help="Largest change of any pixel (0…1 scale).")
@click.option("--target", default=None, metavar="CLASS",
              help="Push towards this class, a number or a name the weights' provenance "
                   "lists (default: away from the predicted one).")
@click.option("--steps", type=click.IntRange(min=1), default=10, show_default=True,
              help="1 is the fast gradient sign method; more iterate it.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The perturbed image; the change, amplified, goes beside it as "
                   "NAME_change.png.")
def attack(net_path, image, weights_path, eps, target, steps, output):
    """An adversarial example: change IMAGE by at most --eps per pixel so that the network
    misclassifies it.  Prints the class probabilities before and after and the size of
    the change (judged on the 8-bit image written)."""
    from .attack import attack_picture
    from .images import read_image, write_image

    change_path = output.with_name(output.stem + "_change.png")
    check_distinct([("NET", net_path), ("IMAGE", image), ("--weights", weights_path)],
                   [("-o", output), ("the change picture", change_path)])
    model = _model(net_path, weights_path)
    classes = model.rows[-1].output_shape[0]
    names = model.weights.provenance.get("classes") or [str(i) for i in range(classes)]
    if target is not None:
        if target in names[:classes]:
            target = names.index(target)
        elif target.isdigit() and int(target) < classes:
            target = int(target)
        else:
            raise click.BadParameter(
                f"{target!r} is not a class: the network has classes 0…{classes - 1} ("
                + ", ".join(names[:classes]) + ")", param_hint="'--target'")
    result, adversarial, change_picture = attack_picture(model, read_image(image), eps, target,
                                                         steps)
    write_image(output, adversarial)
    write_image(change_path, change_picture)
    from rich.table import Table

    table = Table(title=f"{image.name}: class probabilities", title_justify="left",
                  min_width=len(image.name) + 24)      # the title on one line
    for column in ("class", "before", "after"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for index, name in enumerate(names[:classes]):
        table.add_row(f"{index} {name}", f"{result.before[index]:.4f}", f"{result.after[index]:.4f}")
    console = _console()
    console.print(table)
    first, then = result.predictions
    linf, l2 = result.sizes
    click.echo(f"prediction {names[first]} ({result.before[first]:.1%}) → {names[then]} "
               f"({result.after[then]:.1%}); change L∞ {linf:.4f}, L2 {l2:.4f} (0…1 scale)")
    console.print(f"wrote {output} and {change_path} (the change, ±eps as black…white)")


# ----------------------------------------------------------------------------------------
# animate


@cli.command()
@click.option("--input", "input", required=True, metavar="HxW|MATRIX|FILE.npy",
              help="The input: a size (values 0–3, the same every run), an inline matrix "
                   "such as \"1 2; 3 4\", or a 2-D .npy array.")
@click.option("-k", "--kernel", "kernel", required=True, metavar="K|KHxKW|SPEC",
              help="A kernel size (weights 1) or any kernel spec -k of apply takes (one 2-D "
                   "kernel).")
@CATALOGUES
@click.option("--stride", type=STRIDE, default=1, show_default=True, help="N or SHxSW.")
@click.option("--padding", type=PADDING, default="0", show_default=True,
              help="N, PHxPW or T,B,L,R (valid, same or full without --transposed); zeros.")
@click.option("--dilation", type=DILATION, default=1, show_default=True, help="N or DHxDW.")
@click.option("--transposed", is_flag=True,
              help="A transposed convolution (conv_transpose2d), drawn as the direct one it "
                   "equals: over the stride-dilated, padded input with the kernel flipped.")
@click.option("--output-padding", type=PairType("N|OHxOW", minimum=0), default=0,
              show_default=True, help="Extra output rows/columns of --transposed.")
@click.option("--values", is_flag=True,
              help="Show the numbers: input values with the weight under each tap as a "
                   "subscript, output values once computed.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True, max=100), default=2.0,
              show_default=True, help="Frames a second.")
@click.option("--cell", type=click.IntRange(16, 200), default=48, show_default=True,
              help="Pixels per grid cell.")
@click.option("-o", "--output", required=True, metavar="FILE.gif|FILE.png|DIR/",
              help="An animated GIF, an animated PNG, or a folder for one PNG per frame.")
def animate(input, kernel, catalogues, stride, padding, dilation, transposed,
            output_padding, values, fps, cell, output):
    """Animate a convolution as the guide to convolution arithmetic draws it: one frame per
    output position, the kernel's taps over the cells they read, the output filling in.

    Example: convcli animate --input 5x5 -k 3 --stride 2 --padding 1 -o anim.gif
    """
    from .animate import AnimationOptions, build_animation, input_values, kernel_weights, \
        save_animation
    from .kernels import Catalogue

    options = AnimationOptions(stride=stride, padding=padding, dilation=dilation,
                               transposed=transposed, output_padding=output_padding,
                               values=values, cell=cell)
    animation = build_animation(input_values(input),
                                kernel_weights(kernel, Catalogue.load(catalogues)), options)
    written = save_animation(animation, output, fps)
    size = sum(path.stat().st_size for path in written)
    where = output if len(written) == 1 else f"{len(written)} frames into {output}"
    click.echo(f"wrote {where}: {animation.frame_count} frames, {animation.title} ({size:,} bytes)")
