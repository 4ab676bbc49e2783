"""``yolonas-batch report``: the page of a real job run (photos, a video, a corrupt file with a hostile name),
opened in a real headless browser; outputs made by hand for what a run cannot easily produce (an uncommitted
shard, two runs over one input, hostile class names, inputs gone since, S3); and every refusal in one line."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html import escape, unescape
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from common.storage import location
from exports.committed import CommittedRows
from exports.report import report_main
from exports.report_stats import OutputStats, SampledFrame
from exports.report_thumbs import THUMB_SIZE, read_frame
from tests.exports.conftest import HOSTILE_FILE, PHOTOS, VIDEO_FRAMES, output_rows
from tests.support.browser import CHROMIUM, visit
from tests.support.outputs import Frame, commit_run, run_id
from tests.support.s3 import s3_storage_options
from tests.support.videos import decode_all, encode_h264, photo_frames

HOSTILE_CLASS = '<script>alert("class")</script>'
CLASSES = ("cat", "dog", HOSTILE_CLASS)
OLD_RUN, NEW_RUN = run_id(1), run_id(2, "bbbbbb")
OK_FRAMES = PHOTOS + 1 + VIDEO_FRAMES
"""The real run's ``ok`` frames: the photos, the blank one and every frame of the video."""


@pytest.fixture(scope="module")
def page(job_output) -> SimpleNamespace:
    path = job_output.out.parent / "report.html"
    assert report_main([str(job_output.out), "--to", str(path)]) == 0
    return SimpleNamespace(path=path, html=path.read_text(encoding="utf-8"))


def _counts(html: str) -> dict[str, int]:
    return {key: int(value.replace(",", "")) for key, value in re.findall(r'data-count="(\w+)">([\d,]+)<', html)}


def _section(html: str, title: str) -> str:
    """The ``<section>`` of the page headed ``title``."""
    match = re.search(rf"<section><h2>{re.escape(title)}</h2>.*?</section>", html, flags=re.S)
    assert match, f"no section {title!r}"
    return match.group(0)


def _bars(section: str) -> dict[str, int]:
    """Label -> count of every bar of a chart, from the bars' tooltips."""
    return {
        unescape(label): int(n.replace(",", "")) for label, n in re.findall(r"<title>(.*?): ([\d,]+)</title>", section)
    }


def _thumbs(html: str, state: str = "ok") -> list[str]:
    return re.findall(rf'<figure data-thumb="{state}">(.*?)</figure>', html, flags=re.S)


def test_counts_and_charts_equal_duckdb_over_the_tables(page, job_output):
    out, manifest = job_output.out, job_output.manifest
    [(frames, ok, error)] = output_rows(
        out, "select count(*), count(*) filter (status = 'ok'), count(*) filter (status = 'error') from {frames}"
    )
    [(detections,)] = output_rows(out, "select count(*) from {detections}")
    assert (frames, ok, error) == (PHOTOS + 1 + VIDEO_FRAMES + 1, PHOTOS + 1 + VIDEO_FRAMES, 1)
    assert _counts(page.html) == {"frames": frames, "ok": ok, "error": error, "detections": detections}
    assert detections == manifest.counts.detections > 0
    assert 'data-error-kind="decode">1<' in page.html
    classes = dict(output_rows(out, "select class_name, count(*) from {detections} group by 1"))
    assert _bars(_section(page.html, "Detections per class")) == classes
    assert sum(_bars(_section(page.html, "Score histogram")).values()) == detections
    assert sum(_bars(_section(page.html, "Boxes per frame")).values()) == ok


class _Markup(HTMLParser):
    """The page as a browser parses it: its elements with their attributes, and its style sheets."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.styles: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        if self.elements and self.elements[-1][0] == "style":
            self.styles.append(data)


def test_page_is_self_contained_and_escapes_the_data(page):
    html = page.html
    markup = _Markup(html)
    tags = {tag for tag, _ in markup.elements}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base", "form", "a"}, tags
    assert tags >= {"svg", "img", "table", "figure"}
    for tag, attributes in markup.elements:
        for name, value in attributes.items():
            assert not name.startswith("on"), (tag, name)
            if name in ("src", "href", "srcset", "action", "poster"):
                assert (value or "").startswith("data:image/jpeg;base64,"), (tag, name, value)
            assert not re.search(r"https?:", value or ""), (tag, name, value)
    assert markup.styles and not any("url(" in s or "@import" in s for s in markup.styles)
    assert HOSTILE_FILE not in html and escape(HOSTILE_FILE) in html
    failed = _section(html, "Failed inputs")
    assert escape(HOSTILE_FILE) in failed and "decode: not a decodable image" in failed


def test_one_thumbnail_per_ok_frame_when_fewer_than_asked(page, job_output):
    tiles = _thumbs(page.html)
    assert len(tiles) == OK_FRAMES and _thumbs(page.html, "missing") == []
    assert sum("clip.mp4</span>, frame " in tile for tile in tiles) == VIDEO_FRAMES
    encoded = re.search(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", tiles[0])
    assert encoded
    image = cv2.imdecode(np.frombuffer(base64.b64decode(encoded.group(1)), np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and max(image.shape[:2]) == THUMB_SIZE


def test_sample_is_deterministic_and_prefers_frames_with_boxes(job_output, tmp_path):
    def keys(n: int) -> list[tuple[str, int, int]]:
        with CommittedRows(location(str(job_output.out))) as committed:
            return [(f.source_uri, f.frame_index, f.num_detections) for f in OutputStats(committed).sample(n)]

    few, again, every = keys(3), keys(3), keys(100)
    assert few == again and len(few) == 3 and set(few) <= set(every) and len(every) == OK_FRAMES
    assert min(boxes for *_, boxes in few) >= min(boxes for *_, boxes in every if boxes > 0)


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (CI installs Debian's chromium)")
def test_page_renders_offline_in_headless_chromium(page):
    seen = visit(page.path)
    assert seen.console_errors == [] and seen.page_errors == []
    assert seen.remote_requests == [] and seen.requests
    assert len(seen.images) == OK_FRAMES and all(seen.images), "every thumbnail decodes"
    (page.path.parent / "report.png").write_bytes(seen.screenshot)
    shot = cv2.imdecode(np.frombuffer(seen.screenshot, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert shot.shape[0] > 1500, "the whole page, thumbnails included"
    assert shot.std() > 30 and (shot > 250).mean() < 0.8, "a page with content, not a blank one"


@pytest.fixture
def hand_made(tmp_path, coco_images) -> SimpleNamespace:
    """Two runs: the newer redoes the photo (two boxes instead of one) and adds an error row; the older also has a
    frame whose input is gone and a shard it never committed."""
    out = tmp_path / "out"
    photo, gone, never = (f"file://{coco_images[0]}", f"file://{tmp_path}/gone.jpg", f"file://{tmp_path}/never.jpg")
    commit_run(
        out,
        OLD_RUN,
        {
            "00000": [
                Frame(photo, [("cat", 0.9, 10, 10, 200, 200)]),
                Frame(gone, [(HOSTILE_CLASS, 0.5, 1, 1, 20, 20)]),
            ],
            "00001": [Frame(never, [("dog", 0.99, 1, 1, 30, 30)])],
        },
        class_names=CLASSES,
        uncommitted=frozenset({"00001"}),
    )
    commit_run(
        out,
        NEW_RUN,
        {
            "00000": [
                Frame(photo, [("cat", 0.8, 10, 10, 300, 200), ("cat", 0.4, 50, 60, 100, 120)]),
                Frame(f"file://{tmp_path}/bad.jpg", error="read: file not found"),
            ]
        },
        class_names=CLASSES,
    )
    return SimpleNamespace(out=out, report=tmp_path / "report.html")


def _report(out: str, to: Path, *options: str) -> str:
    assert report_main([out, "--to", str(to), *options]) == 0
    return to.read_text(encoding="utf-8")


def test_newest_committed_row_per_frame_and_hostile_strings(hand_made):
    html = _report(str(hand_made.out), hand_made.report)
    assert _counts(html) == {"frames": 3, "ok": 2, "error": 1, "detections": 3}
    assert _bars(_section(html, "Detections per class")) == {"cat": 2, HOSTILE_CLASS: 1}
    assert HOSTILE_CLASS not in html and escape(HOSTILE_CLASS) in html
    assert "<weights>" not in html and "<b>licence</b>" not in html and "&lt;b&gt;licence&lt;/b&gt;" in html
    [missing] = _thumbs(html, "missing")
    assert "could not show this frame: FileNotFoundError" in missing and "gone.jpg" in missing
    assert len(_thumbs(html)) == 1


def test_one_run_by_its_id(hand_made):
    html = _report(str(hand_made.out), hand_made.report, "--run-id", OLD_RUN, "--thumbnails", "0")
    assert _counts(html) == {"frames": 2, "ok": 2, "error": 0, "detections": 2}
    assert NEW_RUN not in html and "<figure" not in html


def test_s3_output_and_images(hand_made, s3_endpoint, s3_bucket, coco_images):
    """Output, images and the page itself on S3: DuckDB reads through the job's fsspec filesystem."""
    options = s3_storage_options(s3_endpoint)
    fs = location(f"s3://{s3_bucket}", options).fs
    fs.put_file(str(coco_images[1]), f"{s3_bucket}/images/photo.jpg")
    commit_run(hand_made.out, run_id(3, "cccccc"), {"00000": [Frame(f"s3://{s3_bucket}/images/photo.jpg")]})
    fs.put(f"{hand_made.out}/", f"{s3_bucket}/out/", recursive=True)
    target = f"s3://{s3_bucket}/reports/report.html"
    assert report_main([f"s3://{s3_bucket}/out", "--to", target, "--storage-options", json.dumps(options)]) == 0
    html = fs.cat_file(target[len("s3://") :]).decode()
    assert _counts(html) == {"frames": 4, "ok": 3, "error": 1, "detections": 3}
    assert f"s3://{s3_bucket}/out" in html and len(_thumbs(html)) == 2 and len(_thumbs(html, "missing")) == 1


def _break_manifest(out: Path) -> None:
    (out / "_runs" / f"{NEW_RUN}.json").write_text("{")


def _uncommit_all(out: Path) -> None:
    for marker in out.glob("_runs/*/shards/*.json"):
        marker.unlink()


def _drop_tables(out: Path) -> None:
    shutil.rmtree(out / "frames")


def _corrupt_parquet(out: Path) -> None:
    next((out / "frames").rglob(f"part-{NEW_RUN}-*.parquet")).write_bytes(b"PAR1 not parquet")


@pytest.mark.parametrize(
    ("damage", "options", "message"),
    [
        (lambda out: shutil.rmtree(out / "_runs"), [], "is not a job output: no run manifest"),
        (_break_manifest, [], "cannot read run manifest"),
        (_uncommit_all, [], "has no committed frames"),
        (_drop_tables, [], "has no committed frames"),
        (_corrupt_parquet, [], "cannot read"),
        (None, ["--run-id", "nope"], "--run-id nope: no such run"),
        (None, ["--thumbnails", "-1"], "--thumbnails: expected a whole number"),
        (None, ["--storage-options", "[1]"], "--storage-options: expected a JSON object"),
    ],
    ids=["not-output", "bad-manifest", "empty-run", "no-tables", "corrupt-parquet", "run-id", "thumbnails", "options"],
)
def test_bad_input_is_one_line_and_exit_2(hand_made, capsys, damage, options, message):
    if damage:
        damage(hand_made.out)
    assert report_main([str(hand_made.out), "--to", str(hand_made.report), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("yolonas-batch report: error: ") and message in err and err.count("\n") == 1, err
    assert not hand_made.report.exists()


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_video_thumbnail_is_the_frame_the_row_names(tmp_path, coco_images, suffix):
    """A seekable MP4 is read from the frame's keyframe on; an AVI (no timestamps) from its start."""
    path = encode_h264(tmp_path / f"clip{suffix}", photo_frames(coco_images[:4], 12), fps=6)
    reference = decode_all(path)
    for index in (0, 7, 11):
        frame = SampledFrame(f"file://{path}", index, index / 6, 320, 240, 0, [])
        assert np.array_equal(read_frame(frame, {}), cv2.cvtColor(reference[index], cv2.COLOR_RGB2BGR))
