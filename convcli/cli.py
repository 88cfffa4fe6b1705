"""The command line: parse, call the library, render with rich.

Heavy modules (numpy, numba, Pillow, rich) are imported inside the commands, so
``convcli --help`` loads only click.  Every user mistake ends as one line on stderr with
exit code 2 (usage) or 1 (failure); see `ConvcliGroup.main`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .choices import ALPHA_POLICIES, FORMATS, RANGE_POLICIES
from .errors import ConvcliError
from .options import FLOATS, conv_options



class ConvcliGroup(click.Group):
    """A group whose errors are one line on stderr, never a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            click.echo("Aborted.", err=True)
            code = 130
        except click.ClickException as exc:
            click.echo(f"Error: {exc.format_message()}", err=True)
            code = exc.exit_code
        except ConvcliError as exc:
            click.echo(f"Error: {exc}", err=True)
            code = exc.exit_code
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            code = 130
        code = code if isinstance(code, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)


@click.group(cls=ConvcliGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="convcli")
def cli():
    """Apply convolution kernels to images, and explain what they did.

    Semantics are PyTorch's conv2d: cross-correlation, weights (Cout, Cin/groups, kh, kw),
    output size ⌊(H + pads − d·(k−1) − 1)/s⌋ + 1.
    """


def main(args=None, prog_name: str = "convcli"):
    """Entry point of the ``convcli`` script and ``python -m convcli``."""
    cli.main(args=args, prog_name=prog_name)


def _console(stderr: bool = False):
    """A rich console; tables are not squeezed to 80 columns when output is piped."""
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, width=None if stream.isatty() else 160)


# ----------------------------------------------------------------------------------------
# apply


def _output_path(source: Path, output: str, kernel_names: list[str], fmt: str | None) -> Path:
    """-o FILE, or -o DIR/ (or an existing directory) → DIR/NAME_KERNEL.EXT."""
    suffix = f".{fmt.lower().lstrip('.')}" if fmt else source.suffix
    if output.endswith(("/", "\\")) or Path(output).is_dir():
        stem = f"{source.stem}_{'+'.join(kernel_names)}"
        return Path(output) / f"{stem}{suffix}"
    path = Path(output)
    return path.with_suffix(suffix) if fmt else path


@cli.command()
@click.argument("source", metavar="INPUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-k", "--kernel", "kernel_specs", multiple=True, required=True, metavar="SPEC",
              help="A catalogue name (sobel_x), name:params (gaussian:sigma=2, box:5, "
                   "log:sigma=1.4, dog:sigma1=1,sigma2=2, motion:length=9,angle=30, "
                   "unsharp:sigma=1,amount=1.5), a matrix (\"[[1,2,1],[2,4,2],[1,2,1]]/16\" or "
                   "\"1 2 1; 2 4 2; 1 2 1\") or a file (@k.npy, @k.txt, @k.csv, "
                   "@bank.yaml:name). Repeat to apply several in turn.")
@click.option("-o", "--output", required=True, metavar="FILE|DIR/",
              help="Output file, or a folder (then NAME_KERNEL.EXT).")
@click.option("--kernels", "catalogues", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="A user kernel catalogue (YAML) whose entries add to or override the "
                   "built-in ones; repeatable. $CONVCLI_KERNELS lists more.")
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
              type=click.Choice(sorted({ext[1:] for ext in FORMATS}), case_sensitive=False),
              help="Output format, instead of the output's (or input's) extension.")
@click.option("--quality", type=click.IntRange(1, 100), default=None,
              help="JPEG/WebP quality (default 92).")
@click.option("--grid", is_flag=True,
              help="Tile every output channel (feature map) into one gray image, with a thin "
                   "border between them.")
def apply(source, kernel_specs, output, catalogues, stride, padding, pad_mode, dilation,
          groups, mode, bias, normalize, range_policy, alpha, gray, rgb, fmt, quality, grid):
    """Apply kernels to an image.

    A 2-D kernel is applied to each colour channel on its own; a 4-D kernel
    (Cout, Cin/groups, kh, kw) mixes channels as a CNN layer does.
    """
    from .kernels import Catalogue, resolve_kernel
    from .pipeline import ConvOptions, apply_file

    if gray and rgb:
        raise click.UsageError("--gray and --rgb exclude each other")
    catalogue = Catalogue.load(catalogues)
    kernels = [resolve_kernel(spec, catalogue) for spec in kernel_specs]
    target = _output_path(source, output, [k.name for k in kernels], fmt)
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise click.BadParameter(f"{target} is the input; convcli never overwrites its input",
                                 param_hint="'-o'")
    options = ConvOptions(stride, padding, dilation, groups, pad_mode, mode, bias, normalize)
    report = apply_file(source, target, kernels, options, range_policy, alpha, gray, rgb, quality,
                        grid)
    for note in report["notes"]:
        click.echo(f"Warning: {note}", err=True)
    click.echo(_apply_summary(report))


def _apply_summary(report: dict) -> str:
    shape = "×".join(map(str, report["output_shape"][:2]))
    channels = report["output_shape"][2] + report["output_alpha"]
    r = report["range"]
    return (f"wrote {report['output']} ({shape}, {channels} channel{'s' * (channels > 1)}, "
            f"{report['output_dtype']}): values {r['min']:.6g} … {r['max']:.6g} before "
            f"--range {r['policy']}, {100 * r['clipped_fraction']:.2f}% clipped")


# ----------------------------------------------------------------------------------------
# kernels


@cli.group(invoke_without_command=True)
@click.option("--kernels", "catalogues", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False, path_type=Path),
              help="Add a user kernel catalogue (YAML); repeatable.")
@click.pass_context
def kernels(ctx, catalogues):
    """List the kernel catalogue (or show one kernel)."""
    from .kernels import Catalogue

    ctx.obj = Catalogue.load(catalogues)
    if ctx.invoked_subcommand is not None:
        return
    from rich.table import Table

    catalogue = ctx.obj
    table = Table(title="convcli kernels", title_justify="left")
    for column in ("name", "size", "sum", "separable", "range", "description"):
        table.add_column(column, no_wrap=column != "description")
    for name in catalogue.names():
        kernel = catalogue.get(name)
        kh, kw = kernel.size
        size = f"{kh}×{kw}" + (f" ×{kernel.n_filters}" if kernel.n_filters > 1 else "")
        sums = {f"{s + 0.0:.4g}" for s in kernel.weights.reshape(kernel.n_filters, -1).sum(axis=1).round(9)}
        total = ", ".join(sorted(sums))
        table.add_row(name, size, total, "yes" if kernel.separable() else "no",
                      kernel.range_hint() + (f" ({kernel.combine})" if kernel.combine else ""),
                      ("[learned] " if kernel.learned else "") + kernel.description)
    _console().print(table)


@kernels.command("show")
@click.argument("spec")
@click.option("--png", "png", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write an enlarged heatmap of the weights (blue < 0 < red).")
@click.option("--cell", type=click.IntRange(4, 200), default=48, show_default=True,
              help="Heatmap pixels per weight.")
@click.pass_obj
def kernels_show(catalogue, spec, png, cell):
    """Print a kernel's weights (SPEC is anything -k accepts)."""
    from .kernels import resolve_kernel

    kernel = resolve_kernel(spec, catalogue)
    console = _console()
    console.print(f"[bold]{kernel.name}[/bold]  {kernel.description}")
    if kernel.source:
        console.print(f"source: {kernel.source}")
    if kernel.learned:
        console.print(f"learned: {kernel.learned}")
    click.echo(_weights_text(kernel))
    if png is not None:
        from .images import save_pillow
        from .render import kernel_picture

        save_pillow(kernel_picture(kernel.weights, cell), png)
        click.echo(f"wrote {png}")


def _weights_text(kernel) -> str:
    """The weights as aligned rows, factored as "1/d ×" integers where that is exact."""
    import numpy as np

    lines = []
    mats = kernel.weights.reshape(-1, *kernel.size)
    for index, mat in enumerate(mats):
        if len(mats) > 1:
            lines.append(f"filter {index + 1}:")
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
