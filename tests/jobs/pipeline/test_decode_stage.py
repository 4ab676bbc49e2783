"""The decode stage on its own, without Ray: the rows it gives the model stage for a video."""

from __future__ import annotations

import numpy as np

from jobs.pipeline.decode_stage import Decoding, decode_batch
from tests.support.videos import encode_h264, marked_frames
from workers.preprocess import LetterboxSpec
from workers.video import Sampling


def test_frame_rows_have_the_displayed_width_and_height(tmp_path):
    """The decode stage's rows (width, height, letterbox geometry that maps boxes back) are of the turned frame."""
    decoding = Decoding(LetterboxSpec(), Sampling(stride=2), storage_options={}, rows_per_batch=64, max_pixels=10**8)
    for name, rotation, portrait in (("phone.mp4", -90, True), ("plain.mp4", 0, False)):
        path = encode_h264(tmp_path / name, marked_frames(), fps=12, rotation=rotation)
        item = {
            "shard_id": "00000",
            "partition": "p",
            "source_uri": str(path),
            "item": 0,
            "kind": "video",
            "frame_start": 0,
            "frame_stop": None,
            "fps": 12.0,
            "video_frames": 6,
        }
        (rows,) = decode_batch({k: np.array([v], dtype=object) for k, v in item.items()}, decoding)
        assert list(rows["status"]) == ["ok"] * 3
        shown = (48, 64) if portrait else (64, 48)
        assert {(int(w), int(h)) for w, h in zip(rows["width"], rows["height"])} == {shown}
        # A portrait frame is padded on its left and right, a landscape one above and below.
        assert {int(left) > int(top) for left, top in zip(rows["pad_left"], rows["pad_top"])} == {portrait}
