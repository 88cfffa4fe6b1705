"""Reports you look at: one self-contained HTML page per report (``--report FILE.html``).

Pages are plain f-strings: every user-supplied string goes through `esc`, pictures are
inline ``data:`` URIs, and a Content-Security-Policy forbids any request (and any script but
the page's own, by its hash), so a page works offline and a hostile file name stays text.
Each number a page shows from its JSON report carries it in ``data-key``/``data-value``
attributes, so tests can compare the two.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from pathlib import Path

import numpy as np

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 12px;word-break:break-all}
table{border-collapse:collapse;margin:6px 0}td,th{padding:3px 10px;border:1px solid #ddd;
text-align:right}th{background:#f4f4f4}td.l,th.l{text-align:left}
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}
figure{margin:0}figcaption{color:#555;font-size:13px;word-break:break-all}
img.pic{max-width:560px;height:auto;image-rendering:auto;border:1px solid #ccc}
img.px{image-rendering:pixelated;border:1px solid #ccc}
table.heat td{width:44px;height:34px;text-align:center;font-variant-numeric:tabular-nums}
.sheet{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
.card{border:1px solid #ddd;padding:6px;content-visibility:auto;contain-intrinsic-size:260px 170px}
.card.failed{border-color:#d55e00;background:#fff4ec}
.card img{width:120px;height:120px;object-fit:contain;background:#f4f4f4}
.name{font-size:12px;word-break:break-all}.error{color:#a33c00;font-size:13px;
white-space:pre-wrap;word-break:break-word}
"""

#: Sets each thumbnail's src from its data-src once it nears the screen.
LAZY_SCRIPT = ("(function(){var imgs=document.querySelectorAll('img[data-src]');"
               "function show(i){i.src=i.getAttribute('data-src');i.removeAttribute('data-src')}"
               "if(!('IntersectionObserver' in window)){imgs.forEach(show);return}"
               "var o=new IntersectionObserver(function(es){es.forEach(function(e){"
               "if(e.isIntersecting){show(e.target);o.unobserve(e.target)}})},"
               "{rootMargin:'600px'});imgs.forEach(function(i){o.observe(i)})})();")

#: Largest side of the input and output pictures on an apply page (pixels).
PICTURE_SIDE = 768
#: Side of batch thumbnails (pixels); they are WebP (a 512² photo: 1.6 KB against JPEG's 3 KB).
THUMB_SIDE = 120
#: Largest equivalent matrix (entries) a matrix page draws.
PAGE_MATRIX_LIMIT = 2**20
#: Bins of the histogram of values before mapping.
HISTOGRAM_BINS = 64


def esc(value) -> str:
    """`value` as HTML text (quotes escaped too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


def page(title: str, body: str, script: str | None = None) -> str:
    """A whole page: nothing may be fetched; only `script` (by its hash) may run."""
    policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    tail = ""
    if script is not None:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        policy += f"; script-src 'sha256-{digest}'"
        tail = f"<script>{script}</script>"
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>"
            f"<body>{body}{tail}</body></html>\n")


def write_page(path, text: str) -> None:
    """Write a page atomically."""
    from .files import atomic_write

    atomic_write(Path(path), lambda out: out.write(text.encode("utf-8")))


def image_uri(image, fmt: str = "PNG") -> str:
    """A Pillow image as a ``data:`` URI."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 60, "method": 1} if fmt == "WEBP" else {}))
    mime = fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buffer.getvalue()).decode()}"


def number_text(value) -> str:
    """1,234 for integers, four significant digits for other numbers."""
    if value is None:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:.4g}"


def milliseconds(seconds: float) -> str:
    return f"{1000 * seconds:,.1f} ms"


def datum(key: str, value, text: str | None = None, tag: str = "td", cls: str = "") -> str:
    """An element showing `value` (as `number_text`, or `text`) with the value itself in
    its data attributes."""
    shown = esc(number_text(value) if text is None else text)
    klass = f' class="{cls}"' if cls else ""
    return (f'<{tag}{klass} data-key="{esc(key)}" data-value="{esc(json.dumps(value))}">'
            f"{shown}</{tag}>")


def heat_table(matrix, key: str) -> str:
    """A 2-D array as a table of its numbers on diverging colours (blue < 0 < red)."""
    from .render import diverging_colors

    matrix = np.asarray(matrix, np.float64)
    colours = diverging_colors(matrix)
    shade = colours.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    rows = []
    for i, row in enumerate(matrix):
        cells = []
        for j, value in enumerate(row):
            r, g, b = (int(v) for v in colours[i, j])
            ink = "#000" if shade[i, j] > 128 else "#fff"
            cells.append(f'<td style="background:rgb({r},{g},{b});color:{ink}" '
                         f'data-key="{esc(key)}" data-value="{esc(json.dumps(float(value)))}">'
                         f"{esc(f'{value:.4g}')}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table class="heat">{"".join(rows)}</table>'


# ----------------------------------------------------------------------------------------
# Pieces shared by several pages


def comparison_table(stats: dict) -> str:
    """The conv-vs-dense table of `convcli.matrix.conv_vs_dense`."""
    from .plan import shape_text

    rows = [("input", shape_text(stats["input_shape"]), None, "dense_in"),
            ("output", shape_text(stats["output_shape"]), None, "dense_out"),
            ("weights", None, "conv_weights", "dense_weights"),
            ("bias", None, "conv_bias", "dense_bias"),
            ("parameters", None, "conv_params", "dense_params"),
            ("multiply-accumulates", None, "conv_macs", "dense_macs")]
    body = []
    for label, text, conv_key, dense_key in rows:
        conv = f"<td>{esc(text)}</td>" if text else datum(conv_key, stats[conv_key])
        body.append(f'<tr><th class="l">{esc(label)}</th>{conv}'
                    f"{datum(dense_key, stats[dense_key])}</tr>")
    ratio = stats["param_ratio"]
    body.append(f'<tr><th class="l">dense ÷ conv parameters</th><td>1</td>'
                f"{datum('param_ratio', ratio, f'{ratio:,.0f}×' if ratio >= 100 else f'{ratio:.3g}×')}"
                "</tr>")
    rows_m, cols_m = stats["matrix_shape"]
    return (f'<table><tr><th></th><th>convolution</th><th>dense layer</th></tr>{"".join(body)}'
            f"</table><p>Equivalent matrix {rows_m:,}×{cols_m:,}: "
            f"{datum('matrix_nonzeros', stats['matrix_nonzeros'], tag='span')} nonzeros "
            f"(density {stats['matrix_density']:.4%}); each weight is used "
            f"{datum('weight_reuse', stats['weight_reuse'], tag='span')} times.</p>")


def bars_svg(rows) -> str:
    """Horizontal bars on a log scale for (label, value) pairs: the sizes the article
    compares (9 against 225 … 27 against 11,289,600,000) fit one picture."""
    width, label_w, bar_h, gap = 720, 210, 22, 8
    values = [max(1.0, float(v)) for _, v in rows]
    top = math.log10(max(values)) or 1.0
    height = len(rows) * (bar_h + gap) + gap
    colours = ("#0072b2", "#e69f00")                   # Okabe–Ito blue and orange
    parts = []
    for index, ((label, value), shown) in enumerate(zip(rows, values)):
        y = gap + index * (bar_h + gap)
        length = max(2.0, (width - label_w - 170) * math.log10(shown) / top)
        parts.append(f'<text x="{label_w - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">'
                     f"{esc(label)}</text>"
                     f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" '
                     f'fill="{colours[index % 2]}"/>'
                     f'<text x="{label_w + length + 6:.1f}" y="{y + bar_h * 0.7:.1f}">'
                     f"{esc(number_text(value))}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-size="13" role="img" aria-label="log-scale bars">{"".join(parts)}</svg>'
            f'<p class="sub">Bar lengths are logarithmic (a tenfold value is one step).</p>')


def histogram_svg(counts, edges, kept, clipped: float) -> str:
    """Bars of `counts` over `edges`, the kept range `kept` (low, high) shaded, the share
    clipped written under it."""
    width, height, left, bottom = 720, 220, 50, 40
    plot_w, plot_h = width - left - 20, height - bottom - 14
    lo, hi = float(edges[0]), float(edges[-1])
    span = hi - lo or 1.0
    peak = max(1, int(np.max(counts)))

    def x(value: float) -> float:
        return left + plot_w * (min(max(value, lo), hi) - lo) / span

    parts = []
    k0, k1 = x(kept[0]), x(kept[1])
    parts.append(f'<rect x="{k0:.1f}" y="14" width="{max(1.0, k1 - k0):.1f}" height="{plot_h}" '
                 f'fill="#56b4e9" opacity="0.25"/>')
    for count, a, b in zip(counts, edges[:-1], edges[1:]):
        if count:
            h = plot_h * math.sqrt(count / peak)
            inside = kept[0] <= (a + b) / 2 <= kept[1]
            parts.append(f'<rect x="{x(a):.1f}" y="{14 + plot_h - h:.1f}" '
                         f'width="{max(0.8, x(b) - x(a) - 0.5):.1f}" height="{h:.1f}" '
                         f'fill="{"#0072b2" if inside else "#d55e00"}"/>')
    for value in (kept[0], kept[1]):
        if lo <= value <= hi:
            parts.append(f'<line x1="{x(value):.1f}" x2="{x(value):.1f}" y1="10" '
                         f'y2="{14 + plot_h}" stroke="#000" stroke-dasharray="4 3"/>')
    axis = 14 + plot_h
    parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{axis}" y2="{axis}" stroke="#555"/>'
                 f'<text x="{left}" y="{axis + 18}">{esc(number_text(lo))}</text>'
                 f'<text x="{left + plot_w}" y="{axis + 18}" text-anchor="end">'
                 f"{esc(number_text(hi))}</text>")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-size="12" role="img" aria-label="histogram">{"".join(parts)}</svg>'
            f'<p>Values before mapping (bar heights on a square-root scale); the shaded band '
            f"between the dashed lines is kept ({esc(number_text(kept[0]))} … "
            f"{esc(number_text(kept[1]))}); orange bars fall outside it. Clipped: "
            f"{datum('clipped_fraction', clipped, f'{100 * clipped:.2f}%', tag='b')}.</p>")


def matrix_picture(view) -> str:
    """The dense values of a `convcli.matrix.MatrixView` as an enlarged heatmap."""
    from .render import heatmap

    cell = max(1, min(28, 900 // max(view.shape)))
    labels = None
    if view.cells is not None and cell >= 24:
        labels = [c for row in view.cells for c in row]
        labels = labels if max(map(len, labels)) * 7 <= cell else None   # text that fits
    image = heatmap(view.values, cell, labels)
    return (f'<img class="px" src="{image_uri(image)}" width="{image.width}" '
            f'height="{image.height}" alt="{esc(view.title)}">')


def _display(color: np.ndarray, side: int):
    """An 8-bit RGB Pillow image of colour (H, W, C), shrunk to at most `side`."""
    from PIL import Image

    from .pixels import display_rgb

    step = max(1, min(color.shape[:2]) // (2 * side))       # thin out before converting
    image = Image.fromarray(np.ascontiguousarray(display_rgb(np.nan_to_num(
        color[::step, ::step]))))
    image.thumbnail((side, side), Image.LANCZOS)
    return image


def _picture(path, side: int, fmt: str = "PNG") -> tuple[str, tuple[int, int]] | None:
    """(data URI, (width, height)) of an image file for display, or None if it cannot be
    read (the page says so instead)."""
    from .errors import ConvcliError
    from .images import read_image

    try:
        image = _display(read_image(Path(path)).color, side)
    except (ConvcliError, OSError, ValueError):
        return None
    return image_uri(image, fmt), image.size


def _figure(path, caption: str, side: int) -> str:
    found = _picture(path, side)
    if found is None:
        return f"<figure><p>(no preview of {esc(path)})</p><figcaption>{esc(caption)}</figcaption></figure>"
    uri, (w, h) = found
    return (f'<figure><img class="pic" src="{uri}" width="{w}" height="{h}" '
            f'alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>')


# ----------------------------------------------------------------------------------------
# apply on one file


def kept_range(policy: str, white: float, low: float, high: float) -> tuple[float, float]:
    """The values (in the source's units) a range policy keeps without clipping."""
    if policy == "clip":
        return 0.0, white
    if policy == "abs":
        return -white, white
    if policy == "offset":
        return -white / 2, white / 2
    return low, high                                   # minmax and float keep everything


def value_histogram(pipeline, low: float, high: float):
    """Counts of a pipeline's float results in `HISTOGRAM_BINS` bins over [low, high]
    (one more pass of the convolution, band by band; nothing whole-image is held)."""
    if not high > low:
        low, high = low - 0.5, high + 0.5
    edges = np.linspace(low, high, HISTOGRAM_BINS + 1)
    counts = np.zeros(HISTOGRAM_BINS, np.int64)
    for _, planes, _ in pipeline.bands():
        finite = planes[np.isfinite(planes)]
        counts += np.histogram(finite, bins=edges)[0]
    return counts, edges


def crop_matrix(stage):
    """The equivalent matrix of the stage's first filter on one channel of a small crop
    (6×6, or the kernel's span plus 2), or None for kernels too large to show."""
    from .matrix import explain_matrix
    from .plan import make_plan

    conv, plan = stage.conv, stage.plan
    kh, kw = conv.weight.shape[2:]
    spans = [d * (k - 1) + 1 for d, k in zip(plan.dilation, (kh, kw))]
    side = max(6, max(spans) + 2, max(plan.padding) + 1)
    if side > 12:
        return None, side
    crop = make_plan((1, 1, side, side), (1, 1, kh, kw), plan.stride, plan.padding,
                     plan.dilation, 1, plan.pad_mode, plan.mode)
    return explain_matrix(crop, conv.weight[:1, :1], dense=True), side


def apply_page(job, report: dict) -> str:
    """The page of `convcli apply` on one file: input and output side by side, each
    kernel as a heatmap with its numbers, the histogram of values before mapping with the
    kept range, the conv-vs-dense table, a crop's equivalent matrix, algorithm and time of
    each stage."""
    from .images import read_image
    from .pipeline import Pipeline
    from .plan import shape_text

    picture = read_image(Path(report["input"]))
    r = report["range"]
    white = float(picture.max_value)
    pipeline = Pipeline(picture, job.kernels, job.options, job.alpha, job.gray, job.rgb)
    counts, edges = value_histogram(pipeline, r["min"], r["max"])
    h_in = shape_text(report["input_shape"])
    h_out = shape_text(report["output_shape"])
    body = [f"<h1>convcli apply: {esc(' + '.join(report['kernels']))}</h1>",
            f'<p class="sub">{esc(report["input"])} → {esc(report["output"])}</p>',
            '<div class="row">',
            _figure(report["input"], f"input {report['input']} ({h_in}, "
                    f"{report['input_dtype']})", PICTURE_SIDE),
            _figure(report["output"], f"output {report['output']} ({h_out}, "
                    f"{report['output_dtype']})", PICTURE_SIDE),
            "</div>"]
    for note in report["notes"]:
        body.append(f'<p class="error">{esc(note)}</p>')
    body.append("<h2>Values before mapping</h2>")
    body.append(f"<p>min {datum('min', r['min'], tag='b')}, max {datum('max', r['max'], tag='b')}"
                f", range policy <b>{esc(r['policy'])}</b> (white = {number_text(white)})</p>")
    body.append(histogram_svg(counts, edges, kept_range(r["policy"], white, r["min"], r["max"]),
                              r["clipped_fraction"]))
    body.append('<h2>Stages</h2><table><tr><th class="l">kernel</th><th>input</th>'
                "<th>output</th><th>padding</th><th class=\"l\">algorithm</th><th>time</th>"
                "</tr>")
    for stage in report["stages"]:
        body.append(f'<tr><td class="l">{esc(stage["kernel"])}</td>'
                    f"<td>{esc(shape_text(stage['input_shape']))}</td>"
                    f"<td>{esc(shape_text(stage['output_shape']))}</td>"
                    f"<td>{esc(','.join(map(str, stage['padding'])))} "
                    f"{esc(stage['pad_mode'])}</td>"
                    f"{datum('algorithm', stage['algorithm'], stage['algorithm'], cls='l')}"
                    f"{datum('seconds', stage['seconds'], milliseconds(stage['seconds']))}</tr>")
    body.append("</table><table><tr>" + "".join(f"<th>{esc(k)}</th>" for k in report["times"])
                + "</tr><tr>" + "".join(datum(f"times.{k}", v, milliseconds(v))
                                        for k, v in report["times"].items()) + "</tr></table>"
                "<p class=\"sub\">Stage times are each stage's own work; the stages run "
                "chained band by band inside the convolution time.</p>")
    for stage, info in zip(pipeline.stages, report["stages"]):
        body.append(f"<h2>Kernel {esc(info['kernel'])}</h2>")
        weights = np.asarray(info["weights"], np.float64)
        grid = weights.reshape(-1, *weights.shape[-2:])
        body.append('<div class="row">' + "".join(
            f"<figure>{heat_table(k, 'weights')}<figcaption>filter {i + 1}"
            f"{' of ' + str(len(grid)) if len(grid) > 1 else ''}</figcaption></figure>"
            for i, k in enumerate(grid[:16])) + "</div>")
        if len(grid) > 16:
            body.append(f"<p>({len(grid) - 16} more filters not shown)</p>")
        if info["combine"]:
            body.append(f"<p>Filters combined by <b>{esc(info['combine'])}</b>.</p>")
        body.append("<h3>Convolution against a dense layer</h3>"
                    + comparison_table(info["conv_vs_dense"]))
        view, side = crop_matrix(stage)
        if view is None:
            body.append(f"<p>(kernel too large for a crop's matrix: {side}×{side} crop)</p>")
        else:
            body.append(f"<h3>Equivalent matrix on a {side}×{side} crop</h3>"
                        f"<p>{esc(view.title)}: the first filter on one channel; each row is "
                        f"one output pixel, each column one input pixel (blue &lt; 0 &lt; "
                        f"red).</p>{matrix_picture(view)}")
    return page(f"convcli apply {report['input']}", "".join(body))


# ----------------------------------------------------------------------------------------
# batch apply


def batch_page(report: dict) -> str:
    """The contact sheet of a batch: totals, failures first with their messages, then a
    card per file with its before/after thumbnails (loaded as they scroll into view)."""
    totals = report["totals"]
    keys = ("inputs", "done", "skipped", "failed", "not_started")
    body = ["<h1>convcli apply: batch</h1>",
            "<table><tr>" + "".join(f"<th>{k.replace('_', ' ')}</th>" for k in keys)
            + "<th>time</th><th>throughput</th></tr><tr>"
            + "".join(datum(f"totals.{k}", totals[k]) for k in keys)
            + datum("totals.seconds", totals["seconds"], f"{totals['seconds']:.2f} s")
            + datum("totals.images_per_second", totals["images_per_second"],
                    f"{totals['images_per_second']:.1f} img/s") + "</tr></table>"]
    if totals.get("interrupted"):
        body.append(f'<p class="error">Interrupted by {esc(totals["interrupted"])}.</p>')
    files = sorted(report["files"], key=lambda f: f["status"] != "failed")
    failed = [f for f in files if f["status"] == "failed"]
    thumbnails = _thumbnails(files)
    if failed:
        body.append(f"<h2>Failures ({len(failed):,})</h2>")
    body.append('<div class="sheet">')
    for index, (record, pictures) in enumerate(zip(files, thumbnails)):
        if index == len(failed) and failed:
            body.append(f'</div><h2>Files ({len(files) - len(failed):,})</h2><div class="sheet">')
        body.append(_card(record, pictures))
    body.append("</div>")
    return page("convcli apply: batch", "".join(body), LAZY_SCRIPT)


def _thumbnails(files: list[dict]) -> list[list]:
    """For each record, its (before, after) thumbnails as `_picture` gives them (after is
    None for a failure), made on threads: reading and shrinking release the GIL."""
    from concurrent.futures import ThreadPoolExecutor

    from .threads import thread_count

    def make(record: dict) -> list:
        return [_picture(record["source"], THUMB_SIDE, "WEBP"),
                None if record["status"] == "failed" else
                _picture(record["target"], THUMB_SIDE, "WEBP")]

    with ThreadPoolExecutor(max(1, min(thread_count(), len(files)))) as pool:
        return list(pool.map(make, files))


def _card(record: dict, pictures: list) -> str:
    from .plan import shape_text

    status = record["status"]
    thumbs = [f'<img data-src="{found[0]}" width="{THUMB_SIDE}" height="{THUMB_SIDE}" '
              f'alt="{label}">' for found, label in zip(pictures, ("before", "after"))
              if found is not None]
    shape = ""
    if record.get("output_shape"):
        shape = f" → {esc(shape_text(record['output_shape']))}"
    error = f'<div class="error">{esc(record["error"])}</div>' if record.get("error") else ""
    return (f'<div class="card {esc(status)}"><div>{"".join(thumbs)}</div>'
            f'<div class="name">{esc(record["source"])}</div>'
            f"<div>{esc(status)}{shape}, {record['seconds']:.2f} s</div>{error}</div>")


# ----------------------------------------------------------------------------------------
# stats and matrix


def comparison_page(command: str, name: str, stats: dict, view=None) -> str:
    """The page of `stats` (and, with the `convcli.matrix.MatrixView` `view`, of `matrix`):
    the article's comparison of a convolution with a dense layer as a table and log-scale
    bars, then the matrix with its checks and heatmap."""
    from .plan import shape_text

    body = [f"<h1>convcli {esc(command)}: {esc(name)}</h1>",
            f'<p class="sub">{esc(shape_text(stats["input_shape"]))} → '
            f"{esc(shape_text(stats['output_shape']))}, weights "
            f"{esc(shape_text(stats['weight_shape']))}</p>",
            comparison_table(stats), "<h2>Parameters and multiply-accumulates</h2>",
            bars_svg([("conv parameters", stats["conv_params"]),
                      ("dense parameters", stats["dense_params"]),
                      ("conv multiply-adds", stats["conv_macs"]),
                      ("dense multiply-adds", stats["dense_macs"])])]
    if view is not None:
        body.append(f"<h2>{esc(view.title[0].upper() + view.title[1:])}</h2><table>")
        for key, value in view.summary().items():
            text = "×".join(f"{v:,}" for v in value) if isinstance(value, list) else None
            if key == "density":
                text = f"{value:.4%}"
            body.append(f'<tr><th class="l">{esc(key.replace("_", " "))}</th>'
                        f"{datum(key, value, text)}</tr>")
        body.append("</table>")
        if view.values is not None:
            body.append("<p>Rows are output values, columns input values; blue &lt; 0 &lt; "
                        "red.</p>" + matrix_picture(view))
        else:
            body.append("<p>(too large to draw; the sparse form of the matrix command holds it)</p>")
    return page(f"convcli {command} {name}", "".join(body))


# ----------------------------------------------------------------------------------------
# forward


def forward_page(report: dict, summary: dict) -> str:
    """The page of `convcli forward`: per layer its feature-map grid, output shape,
    parameters and receptive field r/S/P, and the receptive-field overlay of --at.

    `report` is forward's JSON report (image, network, input_shape, maps: layer, type,
    file, shape, min, max; at and rf_overlay with --at); `summary` is
    `convcli.net.network_report` (layers: name, type, output_shape, params, macs, rf,
    stride, padding; total_params, total_macs).
    """
    from .plan import shape_text

    maps = {record["layer"]: record for record in report["maps"]}
    body = [f"<h1>convcli forward: {esc(summary['name'])}</h1>",
            f'<p class="sub">{esc(report["image"])} ({esc(shape_text(report["input_shape"]))})'
            f" through {esc(report['network'])}</p>",
            f"<p>{datum('total_params', summary['total_params'], tag='b')} parameters, "
            f"{datum('total_macs', summary['total_macs'], tag='b')} multiply-accumulates.</p>"]
    if report.get("rf_overlay"):
        at = report["at"]
        body.append("<h2>Receptive field</h2>" + _figure(
            report["rf_overlay"], f"the receptive field of output pixel ({at.get('y')}, "
            f"{at.get('x')}) at each depth", PICTURE_SIDE))
    body.append('<h2>Layers</h2><table><tr><th class="l">layer</th><th class="l">type</th>'
                "<th>output</th><th>parameters</th><th>multiply-adds</th><th>r</th><th>S</th>"
                "<th>P</th></tr>")
    for layer in summary["layers"]:
        body.append(f'<tr><td class="l">{esc(layer["name"])}</td>'
                    f'<td class="l">{esc(layer["type"])}</td>'
                    f"<td>{esc(shape_text(layer['output_shape']))}</td>"
                    + datum(f"{layer['name']}.params", layer["params"])
                    + datum(f"{layer['name']}.macs", layer["macs"])
                    + "".join(datum(f"{layer['name']}.{key}", layer[key], _axes_text(layer[key]))
                              for key in ("rf", "stride", "padding")) + "</tr>")
    body.append("</table>")
    for layer in summary["layers"]:
        record = maps.get(layer["name"])
        if record is None:
            continue
        body.append(f"<h2>{esc(layer['name'])} ({esc(layer['type'])}): "
                    f"{esc(shape_text(record['shape']))}</h2>"
                    f"<p>values {datum(layer['name'] + '.min', record['min'], tag='b')} … "
                    f"{datum(layer['name'] + '.max', record['max'], tag='b')}; receptive field "
                    f"r={esc(_axes_text(layer['rf']))}, S={esc(_axes_text(layer['stride']))}, "
                    f"P={esc(_axes_text(layer['padding']))}</p>" + _map_grid(record["file"]))
    return page(f"convcli forward {summary['name']}", "".join(body))


def _axes_text(value) -> str:
    if value is None:
        return "–"
    return "×".join(map(str, value)) if isinstance(value, list) else str(value)


def _map_grid(path) -> str:
    """A layer's feature maps as one tiled picture: its --grid PNG, or the channels of its
    (H, W, C) .npy tiled, each stretched from its own min to max (at most 64 shown)."""
    from PIL import Image

    from .render import tile_maps

    path = Path(path)
    if path.suffix.lower() != ".npy":
        return _figure(path, path.name, PICTURE_SIDE)
    try:
        maps = np.load(path, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError):
        return f"<p>(cannot read {esc(path)})</p>"
    planes = np.asarray(maps[:, :, :64], np.float64).transpose(2, 0, 1)
    low = planes.min(axis=(1, 2), keepdims=True)
    span = planes.max(axis=(1, 2), keepdims=True) - low
    tiles = np.rint(255 * (planes - low) / np.where(span > 0, span, 1)).astype(np.uint8)
    image = Image.fromarray(tile_maps(tiles, fill=127))
    scale = max(1, 384 // max(image.size))
    image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    image.thumbnail((PICTURE_SIDE, PICTURE_SIDE), Image.LANCZOS)
    caption = f"{path.name}" + (f" (first 64 of {maps.shape[2]} channels)"
                                if maps.shape[2] > 64 else "")
    return (f'<figure><img class="px" src="{image_uri(image)}" width="{image.width}" '
            f'height="{image.height}" alt="{esc(path.name)}"><figcaption>{esc(caption)}'
            f"</figcaption></figure>")
