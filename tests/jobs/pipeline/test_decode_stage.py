"""The decode stage on its own, without Ray: the rows it gives the model stage for a video, and for camera photos
decoded whole or reduced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from jobs.pipeline.decode_stage import Decoding, decode_batch
from tests.support.videos import encode_h264, marked_frames, photo_frames
from workers.letterbox import LetterboxSpec
from workers.video import Sampling

DECODING = Decoding(LetterboxSpec(), Sampling(stride=2), storage_options={}, rows_per_batch=64, max_pixels=10**8)
GEOMETRY = ("width", "height", "scale", "pad_top", "pad_left")


def _rows(paths: list, kind: str, decoding: Decoding = DECODING) -> dict[str, np.ndarray]:
    """The decode stage's one output batch for work items of ``paths`` (a whole video each)."""
    items = [
        {
            "shard_id": "00000",
            "partition": "p",
            "source_uri": str(path),
            "item": i,
            "kind": kind,
            "frame_start": 0,
            "frame_stop": None,
            "fps": 12.0,
            "video_frames": 6,
        }
        for i, path in enumerate(paths)
    ]
    (rows,) = decode_batch({k: np.array([item[k] for item in items], dtype=object) for k in items[0]}, decoding)
    return rows


def test_frame_rows_have_the_displayed_width_and_height(tmp_path):
    """The decode stage's rows (width, height, letterbox geometry that maps boxes back) are of the turned frame."""
    for name, rotation, portrait in (("phone.mp4", -90, True), ("plain.mp4", 0, False)):
        path = encode_h264(tmp_path / name, marked_frames(), fps=12, rotation=rotation)
        rows = _rows([path], "video")
        assert list(rows["status"]) == ["ok"] * 3
        shown = (48, 64) if portrait else (64, 48)
        assert {(int(w), int(h)) for w, h in zip(rows["width"], rows["height"])} == {shown}
        # A portrait frame is padded on its left and right, a landscape one above and below.
        assert {int(left) > int(top) for left, top in zip(rows["pad_left"], rows["pad_top"])} == {portrait}


def test_reduced_jpegs_keep_the_geometry_of_the_full_decode(large):
    """``--decode fast``: the same rows and letterbox geometry (boxes map back to the full photo), pixels
    from libjpeg's 1/4 decode instead of the full image, close to them."""
    full = _rows(large, "image")
    reduced = _rows(large, "image", replace(DECODING, mode="fast"))
    assert list(reduced["status"]) == list(full["status"]) == ["ok"] * len(large)
    for name in GEOMETRY:
        np.testing.assert_array_equal(reduced[name], full[name])
    difference = np.abs(reduced["image"].astype(int) - full["image"].astype(int))
    assert 0 < difference.mean() < 2


def test_fast_video_frames_keep_the_geometry_of_the_exact_ones(tmp_path, coco_images):
    path = encode_h264(tmp_path / "clip.mp4", photo_frames(coco_images, 6, size=(1280, 720)), fps=12, rotation=-90)
    exact, fast = _rows([path], "video"), _rows([path], "video", replace(DECODING, mode="fast"))
    assert list(fast["status"]) == list(exact["status"]) == ["ok"] * 3
    for name in GEOMETRY:
        np.testing.assert_array_equal(fast[name], exact[name])
    assert {(int(w), int(h)) for w, h in zip(fast["width"], fast["height"])} == {(720, 1280)}  # portrait
    assert 0 < np.abs(fast["image"].astype(int) - exact["image"].astype(int)).mean() < 4
