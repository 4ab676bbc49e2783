"""The report page: one self-contained HTML file (inline CSS, inline SVG charts, thumbnails as ``data:`` URIs).

It must open offline, years later, from an e-mail attachment or a bucket: so it references nothing outside
itself, runs no script, and every string that comes from the data (URIs, class names, error messages, run
ids, weights paths) is HTML-escaped, since input file names and class names are untrusted.

Elements that tests and scripts may want to read carry ``data-*`` attributes (``data-count``, ``data-thumb``).
"""

from __future__ import annotations

import base64
import posixpath
from dataclasses import dataclass
from html import escape

from exports.report_stats import MAX_BOXES_DRAWN, MAX_FAILED, SCORE_BINS, Stats
from exports.report_svg import bar_chart, histogram
from exports.report_thumbs import Thumbnail, class_colour
from schemas.manifest import RunManifest

MAX_CLASSES = 40
"""Classes drawn in the bar chart; the rest are summed into one line under it."""

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;
background:#eef0f3;color:#1d2430}
header{background:#243447;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d4e0}
main{padding:18px 28px;display:flex;flex-direction:column;gap:18px}
section{background:#fff;border-radius:8px;padding:14px 18px;box-shadow:0 1px 3px rgba(0,0,0,.12)}
h2{font-size:16px;margin:0 0 10px}
.row{display:flex;flex-wrap:wrap;gap:18px}
.row>section{flex:1 1 420px}
table{border-collapse:collapse}
th,td{text-align:left;padding:4px 10px;border-bottom:1px solid #e3e6ea;vertical-align:top}
th{background:#f6f7f9;font-weight:600}
td.n{text-align:right;font-variant-numeric:tabular-nums}
.uri{word-break:break-all;font-family:ui-monospace,"DejaVu Sans Mono",monospace;font-size:12px}
.note{color:#5b6573;font-size:12px;margin:6px 0 0}
.error{color:#a22}
svg text{font-size:11px;fill:#1d2430}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:12px}
figure{margin:0;background:#f6f7f9;border-radius:6px;padding:5px}
figure img{display:block;max-width:100%;height:auto;margin:0 auto}
figcaption{font-size:12px;margin-top:4px}
.missing{display:flex;align-items:center;justify-content:center;height:200px;background:#e4e7eb;color:#a22;
padding:10px;text-align:center;word-break:break-word}
"""


@dataclass(frozen=True)
class PageContent:
    out_uri: str
    run_filter: str | None
    generated_at: str
    manifests: list[RunManifest]
    stats: Stats
    thumbnails: list[Thumbnail]
    thumbnails_asked: int


def render_page(page: PageContent) -> str:
    """The whole HTML document."""
    stats = page.stats
    sections = [
        _runs(page.manifests, stats),
        f'<div class="row">{_counts(stats)}{_error_kinds(stats)}</div>',
        _classes(stats),
        f'<div class="row">{_scores(stats)}{_boxes_per_frame(stats)}</div>',
        _failed(stats),
        _videos(stats),
        _grid(page),
    ]
    scope = f"run {escape(page.run_filter)}" if page.run_filter else "all runs, newest row per frame"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>Detection report: {escape(page.out_uri)}</title><style>{STYLE}</style></head><body>"
        f'<header><h1>Detection report</h1><p class="uri">{escape(page.out_uri)}</p>'
        f"<p>{scope}; committed shards only; generated {escape(page.generated_at)}</p></header>"
        f"<main>{''.join(s for s in sections if s)}</main></body></html>\n"
    )


def _section(title: str, body: str, note: str = "") -> str:
    note_html = f'<p class="note">{note}</p>' if note else ""
    return f"<section><h2>{escape(title)}</h2>{body}{note_html}</section>"


def _table(header: list[str], rows: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _num(value: float | int | None, digits: int = 0) -> str:
    return "&ndash;" if value is None else f"{value:,.{digits}f}"


def _runs(manifests: list[RunManifest], stats: Stats) -> str:
    rows = []
    for m in manifests:
        walls = [a.wall_s for a in m.attempts if a.wall_s is not None]
        rates = [a.frames_per_s for a in m.attempts if a.frames_per_s]  # 0: too short to measure (progress.rate)
        rows.append(
            f'<tr><td class="uri">{escape(m.run_id)}</td><td>{escape(m.status)}</td>'
            f"<td>{escape(m.model.name)} ({escape(m.model.precision)})</td>"
            f'<td class="uri" title="{escape(m.model.weights)}">{escape(m.model.weights_sha256[:12])}</td>'
            f'<td class="n">{_num(m.plan.inputs)}</td>'
            f'<td class="n" data-run-frames="{escape(m.run_id)}">{_num(stats.frames_by_run.get(m.run_id, 0))}</td>'
            f'<td class="n">{len(m.attempts)}</td><td class="n">{_num(sum(walls) if walls else None, 1)}</td>'
            f'<td class="n">{_num(rates[-1] if rates else None, 2)}</td></tr>'
        )
    header = ["run", "status", "model", "weights sha256", "inputs", "frames shown", "attempts", "wall s", "frames/s"]
    weights = sorted({m.model.weights for m in manifests})
    licences = sorted({m.model.license for m in manifests if m.model.license})
    notes = [f'weights: <span class="uri">{escape(w)}</span>' for w in weights]
    notes += [f"licence: {escape(text)}" for text in licences]
    notes.append(
        "Slowest inputs are not listed: the output records no per-input timing. Wall s: the run's attempts "
        "together; frames/s: its last measured attempt at steady state (&ndash; when too short to measure)."
    )
    return _section("Runs", _table(header, rows), "<br>".join(notes))


def _counts(stats: Stats) -> str:
    c = stats.counts
    rows = [
        f'<tr><th>{label}</th><td class="n" data-count="{key}">{value:,}</td></tr>'
        for label, key, value in (
            ("frames", "frames", c.frames),
            ("ok", "ok", c.ok),
            ("error", "error", c.error),
            ("detections", "detections", c.detections),
        )
    ]
    return _section("Frames by status", f"<table><tbody>{''.join(rows)}</tbody></table>")


def _error_kinds(stats: Stats) -> str:
    if not stats.counts.error_kinds:
        return _section("Errors by stage", "<p>No error frames.</p>")
    rows = [
        f'<tr><td>{escape(kind)}</td><td class="n" data-error-kind="{escape(kind)}">{n:,}</td></tr>'
        for kind, n in stats.counts.error_kinds
    ]
    return _section("Errors by stage", _table(["stage", "frames"], rows))


def _classes(stats: Stats) -> str:
    if not stats.classes:
        return _section("Detections per class", "<p>No detections.</p>")
    shown, rest = stats.classes[:MAX_CLASSES], stats.classes[MAX_CLASSES:]
    note = f"{len(rest)} more classes with {sum(n for _, n in rest):,} detections not drawn." if rest else ""
    return _section("Detections per class", bar_chart(shown, colour=_hex_colour), note)


def _scores(stats: Stats) -> str:
    width = 1 / SCORE_BINS
    bins = [(f"score {i * width:.2f}\u2013{(i + 1) * width:.2f}", n) for i, n in enumerate(stats.score_bins)]
    ticks = {float(i): f"{i * width:.1f}" for i in range(0, SCORE_BINS + 1, SCORE_BINS // 5)}
    return _section("Score histogram", histogram(bins, "score", ticks), "Detections by score, bins of 0.05.")


def _boxes_per_frame(stats: Stats) -> str:
    bins = [(f"{label} boxes", n) for label, n in stats.boxes_per_frame]
    every = -(-len(bins) // 10)
    ticks = {i + 0.5: label for i, (label, _) in enumerate(stats.boxes_per_frame) if i % every == 0}
    return _section("Boxes per frame", histogram(bins, "boxes in a frame", ticks), "ok frames by their boxes.")


def _failed(stats: Stats) -> str:
    if not stats.failed:
        return ""
    rows = [
        f'<tr><td class="uri">{escape(f.source_uri)}</td><td class="n">{f.frame_index}</td>'
        f'<td class="error">{escape(f.error)}</td><td class="uri">{escape(f.run_id)}</td></tr>'
        for f in stats.failed
    ]
    more = stats.counts.error - len(stats.failed)
    note = f"The first {MAX_FAILED} by URI; {more:,} more error frames not listed." if more > 0 else ""
    return _section("Failed inputs", _table(["input", "frame", "error", "run"], rows), note)


def _videos(stats: Stats) -> str:
    if not stats.videos:
        return ""
    rows = [
        f'<tr><td class="uri">{escape(uri)}</td><td class="n">{frames:,}</td><td class="n">{errors:,}</td></tr>'
        for uri, frames, errors in stats.videos
    ]
    return _section(
        "Largest videos", _table(["video", "sampled frames", "error frames"], rows), "By frames sampled, the work."
    )


def _grid(page: PageContent) -> str:
    if page.thumbnails_asked <= 0:
        return ""
    tiles = "".join(_tile(t) for t in page.thumbnails)
    note = (
        f"{len(page.thumbnails)} of {page.stats.counts.ok:,} ok frames, chosen deterministically (frames with boxes "
        f"first, then by MD5 of URI and frame); at most {MAX_BOXES_DRAWN} boxes drawn per frame, best first."
    )
    body = f'<div class="grid">{tiles}</div>' if tiles else "<p>No ok frames to show.</p>"
    return _section("Sample frames", body, note)


def _tile(thumb: Thumbnail) -> str:
    f = thumb.frame
    if thumb.jpeg is not None:
        data = base64.b64encode(thumb.jpeg).decode("ascii")
        picture = f'<img src="data:image/jpeg;base64,{data}" alt="{escape(_name(f.source_uri))}">'
    else:
        picture = f'<div class="missing">could not show this frame: {escape(thumb.problem or "unknown")}</div>'
    where = f", frame {f.frame_index} ({f.timestamp_s:.2f} s)" if f.timestamp_s is not None else ""
    boxes = f"{f.num_detections} box{'' if f.num_detections == 1 else 'es'}"
    if f.num_detections > MAX_BOXES_DRAWN:
        boxes += f", best {MAX_BOXES_DRAWN} drawn"
    state = "ok" if thumb.jpeg is not None else "missing"
    return (
        f'<figure data-thumb="{state}">{picture}<figcaption><span class="uri" title="{escape(f.source_uri)}">'
        f"{escape(_name(f.source_uri))}</span>{where} &middot; {boxes}</figcaption></figure>"
    )


def _name(uri: str) -> str:
    return posixpath.basename(uri) or uri


def _hex_colour(name: str) -> str:
    b, g, r = class_colour(name)
    return f"#{r:02x}{g:02x}{b:02x}"
