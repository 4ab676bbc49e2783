"""Video decoding on real encoded files: numbering, sampling, ranges, broken streams and the display matrix of
phone video (no Ray)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.support.videos import decode_all, encode_h264, marked_frames, photo_frames
from workers.letterbox import LetterboxSpec, target_size
from workers.video import BrokenVideo, Sampling, VideoError, decode_frames, probe_video

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def frames(coco_images: list[Path]) -> list[np.ndarray]:
    return photo_frames(coco_images, 48, size=(160, 120))


@pytest.fixture(scope="module")
def mp4(tmp_path_factory, frames) -> Path:
    return encode_h264(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=12)


def _decode(path: Path, start: int, stop: int | None, sampling: Sampling, fit: LetterboxSpec | None = None) -> list:
    with open(path, "rb") as handle:
        info = probe_video(handle)
    with open(path, "rb") as handle:
        return list(decode_frames(handle, start, stop, sampling, info, fit))


def test_probe_reads_rate_and_exact_count(mp4):
    with open(mp4, "rb") as handle:
        info = probe_video(handle)
    assert (info.fps, info.frames, info.exact_count, info.splittable) == (12.0, 48, True, True)


def test_stride_gives_true_frame_numbers_timestamps_and_pixels(mp4):
    reference = decode_all(mp4)
    got = _decode(mp4, 0, None, Sampling(stride=4))
    assert [f.index for f in got] == list(range(0, 48, 4))
    assert [f.timestamp_s for f in got] == [i / 12 for i in range(0, 48, 4)]
    assert all(np.array_equal(f.image, reference[f.index]) for f in got)


@pytest.mark.parametrize(
    "suffix,codec",
    [(".mp4", "libx264"), (".mov", "libx264"), (".mkv", "libx264"), (".webm", "libvpx-vp9"), (".avi", "libx264")],
)
def test_ranges_give_exactly_the_frames_of_one_pass(tmp_path, frames, suffix, codec):
    path = encode_h264(tmp_path / f"clip{suffix}", frames, fps=12, codec=codec)
    whole = _decode(path, 0, None, Sampling(stride=3))
    assert [f.index for f in whole] == list(range(0, 48, 3))
    with open(path, "rb") as handle:
        splittable = probe_video(handle).splittable
    assert splittable == (suffix != ".avi")  # AVI has no presentation timestamps: planned as one range
    if not splittable:
        return
    for cuts in ([0, 7, 13, 29, 41, None], [0, 12, 24, 36, None], [0, 1, 2, 47, None]):
        pieces = [f for a, b in zip(cuts[:-1], cuts[1:]) for f in _decode(path, a, b, Sampling(stride=3))]
        assert [f.index for f in pieces] == [f.index for f in whole], cuts
        assert all(np.array_equal(a.image, b.image) for a, b in zip(pieces, whole))


def test_target_rate_picks_nearest_frames_and_max_frames_caps(mp4):
    got = _decode(mp4, 0, None, Sampling(fps=5))
    assert [f.index for f in got][:6] == [0, 2, 5, 7, 10, 12]  # round(k * 12 / 5), half up
    assert len(got) == 20
    capped = Sampling(stride=4, max_frames=3)
    assert [f.index for f in _decode(mp4, 0, None, capped)] == [0, 4, 8]
    assert capped.last_index(12.0) == 8
    assert Sampling(fps=24).sample_number(7, 12.0) == 7  # a target above the video's rate keeps every frame


def test_truncated_video_keeps_decoded_frames_and_says_where_it_broke(tmp_path, mp4):
    data = mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    got = []
    with pytest.raises(BrokenVideo) as broken:
        with open(mp4, "rb") as handle:
            info = probe_video(handle)
        with open(cut, "rb") as handle:
            for frame in decode_frames(handle, 0, None, Sampling(), info):
                got.append(frame.index)
    assert 10 <= len(got) < 48 and got == list(range(len(got)))
    assert broken.value.at == len(got)
    assert str(broken.value) == f"stream ended at frame {len(got)} of 48: Invalid data found when processing input"


def test_a_truncated_video_cut_into_ranges_breaks_once_where_one_pass_breaks(tmp_path, mp4):
    data = mp4.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 6 // 10])
    with open(mp4, "rb") as handle:
        info = probe_video(handle)

    def outcome(start: int, stop: int | None) -> tuple[list[int], tuple[int, str] | None]:
        got: list[int] = []
        with open(cut, "rb") as handle:
            try:
                got.extend(f.index for f in decode_frames(handle, start, stop, Sampling(), info))
            except BrokenVideo as exc:
                return got, (exc.at, str(exc))
        return got, None

    whole_frames, whole_break = outcome(0, None)
    assert whole_break is not None
    for step in (10, 7, 24):
        bounds = [*range(0, 48, step), None]
        ranges = [outcome(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
        assert [i for frames, _ in ranges for i in frames] == whole_frames, step
        assert [b for _, b in ranges if b is not None] == [whole_break], step  # later ranges seek past the break


_MOST_THREADS = """
import os, sys
from workers.video import Sampling, decode_frames, probe_video
with open(sys.argv[1], "rb") as handle:
    info = probe_video(handle)
before = len(os.listdir("/proc/self/task"))
with open(sys.argv[1], "rb") as handle:
    frames = decode_frames(handle, 0, None, Sampling(), info, threads=int(sys.argv[2]))
    print(before, max(len(os.listdir("/proc/self/task")) for _ in frames))
"""


def _most_threads(video: Path, threads: int) -> tuple[int, int]:
    """Threads of a process before decoding and at most while decoding with ``threads``: in a process of its own,
    where no other library starts threads meanwhile."""
    command = [sys.executable, "-c", _MOST_THREADS, str(video), str(threads)]
    before, most = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return int(before), int(most)


def test_ffmpeg_decodes_on_the_threads_it_is_given(mp4):
    """A decode task holds one CPU: FFmpeg left to itself would start a thread per core of the node in each, and
    PyAV's own conversion more for every frame."""
    before, most = _most_threads(mp4, 1)
    assert most == before
    before, most = _most_threads(mp4, 3)
    assert most > before


def test_not_a_video_is_a_video_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01not a video" * 100)
    with pytest.raises(VideoError), open(junk, "rb") as handle:
        probe_video(handle)


# --- display matrix (phone video) -------------------------------------------------------------------------------

TOP_LEFT, TOP_RIGHT, BOTTOM_LEFT, BOTTOM_RIGHT = "top-left", "top-right", "bottom-left", "bottom-right"


def _turned(stored: np.ndarray, rotation: float, hflip: bool) -> np.ndarray:
    """A stored frame turned the nearest quarter turn counter-clockwise (``np.rot90``), then mirrored."""
    turned = np.rot90(stored, round(rotation / 90))
    return turned[:, ::-1] if hflip else turned


def _marker_corner(image: np.ndarray) -> str:
    rows, cols = np.nonzero((image[..., 0] > 200) & (image[..., 1] < 80))
    height, width = image.shape[:2]
    vertical = "top" if rows.mean() < height / 2 else "bottom"
    return f"{vertical}-{'left' if cols.mean() < width / 2 else 'right'}"


@pytest.mark.parametrize(
    "rotation,hflip,portrait,corner",
    [
        (0, False, False, TOP_LEFT),  # no display matrix
        (90, False, True, BOTTOM_LEFT),  # FFmpeg: transpose=cclock (a quarter turn counter-clockwise)
        (-90, False, True, TOP_RIGHT),  # transpose=clock: an iPhone's portrait video
        (180, False, False, BOTTOM_RIGHT),  # hflip,vflip
        (0, True, False, TOP_RIGHT),  # hflip
        (180, True, False, BOTTOM_LEFT),  # vflip
        (90, True, True, BOTTOM_RIGHT),  # transpose=clock_flip
        (-90, True, True, TOP_LEFT),  # transpose=cclock_flip
        (-60, False, True, TOP_RIGHT),  # not a quarter turn: the nearest one, -90
        (30, False, False, TOP_LEFT),  # the nearest quarter turn is none
    ],
)
def test_display_matrix_turns_frames_as_players_show_them(tmp_path, rotation, hflip, portrait, corner):
    path = encode_h264(tmp_path / "phone.mp4", marked_frames(), fps=12, gop=3, rotation=rotation, hflip=hflip)
    stored = decode_all(path)  # PyAV's own frames: as stored, the matrix not applied
    assert all(f.shape == (48, 64, 3) and _marker_corner(f) == TOP_LEFT for f in stored)
    got = _decode(path, 0, None, Sampling())
    assert [_marker_corner(f.image) for f in got] == [corner] * 6
    assert {f.image.shape for f in got} == {(64, 48, 3) if portrait else (48, 64, 3)}
    assert all(np.array_equal(f.image, _turned(s, rotation, hflip)) for f, s in zip(got, stored))
    after_seek = _decode(path, 4, None, Sampling())  # a later range: frames found by seeking are turned too
    assert [f.index for f in after_seek] == [4, 5]
    assert all(np.array_equal(f.image, got[f.index].image) for f in after_seek)


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_turns_agree_with_opencvs_reader(tmp_path, rotation):
    """OpenCV's video reader applies the rotation of the display matrix too, in code of its own (not mirrors)."""
    path = encode_h264(tmp_path / "phone.mp4", marked_frames(count=1), fps=12, rotation=rotation)
    capture = cv2.VideoCapture(str(path))
    ok, bgr = capture.read()
    capture.release()
    assert ok
    ours = _decode(path, 0, None, Sampling())[0].image
    assert ours.shape == bgr.shape and _marker_corner(ours) == _marker_corner(bgr[..., ::-1])


@pytest.mark.parametrize(("rotation", "portrait", "corner"), [(0, False, TOP_LEFT), (-90, True, TOP_RIGHT)])
def test_fast_decode_scales_frames_to_the_letterbox_target_as_displayed(tmp_path, rotation, portrait, corner):
    """``--decode fast``: FFmpeg scales the stored frame, the display matrix turns it after: the image is the
    target size of the displayed frame, the marker in the corner players show it in, ``full`` the full size."""
    frames = [np.repeat(np.repeat(f, 10, axis=0), 10, axis=1) for f in marked_frames(count=3)]  # 640x480
    path = encode_h264(tmp_path / "phone.mp4", frames, fps=12, rotation=rotation)
    spec = LetterboxSpec()
    got = _decode(path, 0, None, Sampling(), spec)
    full = (640, 480) if portrait else (480, 640)
    assert {f.full for f in got} == {full}
    assert {f.image.shape[:2] for f in got} == {target_size(*full, spec)}
    assert [_marker_corner(f.image) for f in got] == [corner] * 3
    exact = _decode(path, 0, None, Sampling())
    resized = cv2.resize(exact[0].image, target_size(*full, spec)[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(got[0].image.astype(int) - resized.astype(int)).mean() < 2
