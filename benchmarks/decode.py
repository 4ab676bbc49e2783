"""How many frames per second one core decodes and letterboxes, for camera photos and HD video, with
``--decode exact`` (super-gradients' pixels) and ``--decode fast``, and what the difference does to the boxes;
and for ``--decode device``, what the CPU still does per photo and how fast the model's device decodes them.

    python3 -m uv run --frozen python benchmarks/decode.py [--photos 0.3,3,12,24] [--videos 720p,1080p,4k]
        [--frames 48] [--repeat 5] [--cores 16] [--device-batch 16] [--weights PATH] [--json out/decode.json]

Photos: a coco-tiny photo upscaled (bicubic) to each size in megapixels, saved as JPEG (quality 92), then read
from memory, decoded and letterboxed as the decode stage does it (``workers.decoding.decode_for`` and
``workers.letterbox.letterbox``) ``--repeat`` times. Video: an H.264 clip of ``--frames`` frames at each size (a
pan across the photo, so every frame differs), decoded from the file and letterboxed as the decode stage does
(``workers.video.decode_frames``, every frame sampled). OpenCV is held to one thread and the process to one core
(FFmpeg's decoding threads included): the rates are per core, and a node feeds its model about ``--cores`` times
as many (its decode tasks each hold one core).

``--decode device`` (photos): the CPU's share, reading the header and checking the file whole
(``workers.frames.EncodedJpeg.of``), per core; and the device's, ``workers.device_frames.DeviceFrames`` decoding
and letterboxing batches of ``--device-batch`` copies of the photo on CUDA where there is a GPU (else on this one
core), in frames/s of the whole device.

With ``--weights`` (a checkpoint), the coco-tiny photos whose long side is 640, upscaled to 12 MP and stored under
four EXIF orientations (``tests/support/photos.large_photos``), are detected both ways and the fast boxes scored
against the exact ones (which are ``predict()``'s: the suite checks that): the share of exact boxes found again
(same class, IoU >= 0.5) and the share of fast boxes that are exact ones. Prints markdown tables and writes JSON.
Results: docs/performance.md#decoding-camera-photos-and-hd-video.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.parity import agreement  # noqa: E402
from tests.support.photos import large_photos  # noqa: E402
from workers.decoding import decode_for, prepare_image  # noqa: E402
from workers.device_frames import DeviceFrames  # noqa: E402
from workers.frames import EncodedJpeg, FrameBatch, PayloadBatchBuilder  # noqa: E402
from workers.letterbox import LetterboxSpec, letterbox  # noqa: E402

PHOTO = REPO / "tests" / "data" / "coco-tiny" / "images" / "train2017" / "000000041888.jpg"
"""A 640x480 landscape photo with several people (coco-tiny)."""
VIDEO_SIZES = {"720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}
MODES = ("exact", "fast")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--photos", default="0.3,3,12,24", help="photo sizes in megapixels, comma-separated; empty: none"
    )
    parser.add_argument(
        "--videos", default="720p,1080p,4k", help=f"video sizes: {', '.join(VIDEO_SIZES)}; empty: none (no PyAV needed)"
    )
    parser.add_argument("--frames", type=int, default=48, help="frames per video clip")
    parser.add_argument("--repeat", type=int, default=5, help="decodes of each photo")
    parser.add_argument("--cores", type=int, default=16, help="cores of the node the projection is for")
    parser.add_argument("--device-batch", type=int, default=16, help="photos per device call (--decode device)")
    parser.add_argument("--weights", help="a yolo_nas_s checkpoint: also score the fast boxes against the exact ones")
    parser.add_argument("--json", type=Path, default=REPO / "out" / "decode.json")
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # FFmpeg's decoding threads too: one core's rate
    spec = LetterboxSpec()
    with tempfile.TemporaryDirectory() as scratch:
        photos = [_photo(float(mp)) for mp in filter(None, args.photos.split(","))]
        results = {
            "photos": [_photo_rates(data, spec, args.repeat, args.cores, args.device_batch) for data in photos],
            "videos": [
                _video_rates(_clip(Path(scratch), name, args.frames), name, spec, args.cores)
                for name in filter(None, args.videos.split(","))
            ],
        }
        if args.weights:
            results["agreement"] = _agreement(Path(scratch) / "large", spec, args.weights)
    _print(results, args.cores)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))


def _photo(megapixels: float) -> bytes:
    """The test photo upscaled to ``megapixels`` (4:3), as JPEG bytes."""
    image = cv2.imread(str(PHOTO))
    scale = (megapixels * 1e6 / (image.shape[0] * image.shape[1])) ** 0.5
    big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    return cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _photo_rates(data: bytes, spec: LetterboxSpec, repeat: int, cores: int, batch: int) -> dict:
    height, width = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_REDUCED_COLOR_8).shape[:2]
    row: dict = {"megapixels": round(height * width * 64 / 1e6, 1)}
    for mode in MODES:
        started = time.perf_counter()
        for _ in range(repeat):
            decoded = decode_for(data, spec if mode == "fast" else None, channels="bgr")
            letterbox(decoded.image, spec, "bgr", (decoded.height, decoded.width))
        rate = repeat / (time.perf_counter() - started)
        row[mode] = {"per_core": rate, "node": rate * cores}
    row["device"] = _device_rates(data, spec, repeat, batch)
    return row


def _device_rates(data: bytes, spec: LetterboxSpec, repeat: int, batch: int) -> dict:
    """``--decode device``: the CPU's check of one photo per core, and the device's batched decode+letterbox."""
    started = time.perf_counter()
    for _ in range(repeat):
        encoded = EncodedJpeg.of(data, spec)
    checked = repeat / (time.perf_counter() - started)
    builder = PayloadBatchBuilder(batch)
    for _ in range(batch):
        builder.add(encoded)
    columns = builder.columns()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    frames = DeviceFrames(spec, device)
    frames.build(columns)  # warm: nvJPEG's handle, CUDA kernels
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    synchronize()
    started = time.perf_counter()
    for _ in range(repeat):
        frames.build(columns)
    synchronize()
    return {"cpu_per_core": checked, "device": device, "frames_per_s": repeat * batch / (time.perf_counter() - started)}


def _clip(folder: Path, name: str, frames: int) -> Path:
    """An H.264 clip at size ``name``: a window panning across the upscaled photo."""
    from tests.support.videos import encode_h264  # PyAV: only where videos are measured (not in the GPU wheel set)

    width, height = VIDEO_SIZES[name]
    image = cv2.cvtColor(cv2.imread(str(PHOTO)), cv2.COLOR_BGR2RGB)
    wide = cv2.resize(image, (width + 4 * frames, height), interpolation=cv2.INTER_CUBIC)
    path = folder / f"{name}.mp4"
    return encode_h264(path, [np.ascontiguousarray(wide[:, 4 * i : 4 * i + width]) for i in range(frames)], fps=24)


def _video_rates(path: Path, name: str, spec: LetterboxSpec, cores: int) -> dict:
    from workers.video import Sampling, decode_frames, probe_video

    row: dict = {"video": name}
    with open(path, "rb") as handle:
        info = probe_video(handle)
    for mode in MODES:
        with open(path, "rb") as handle:
            started, count = time.perf_counter(), 0
            for frame in decode_frames(handle, 0, None, Sampling(), info, spec if mode == "fast" else None):
                letterbox(frame.image, spec, "rgb", frame.full)
                count += 1
        rate = count / (time.perf_counter() - started)
        row[mode] = {"per_core": rate, "node": rate * cores}
    return row


def _agreement(folder: Path, spec: LetterboxSpec, weights: str) -> dict:
    from workers.detector import Detector
    from workers.weights import load_weights

    photos = [p for p in sorted(PHOTO.parents[1].glob("*/*.jpg")) if max(cv2.imread(str(p)).shape[:2]) == 640]
    large = large_photos(folder, photos)
    detector = Detector.from_weights("yolo_nas_s", load_weights(weights, "yolo_nas_s"), spec)
    boxes: dict[str, dict[str, np.ndarray]] = {mode: {} for mode in MODES}
    for path in large:
        for mode in MODES:
            found = detector.detect(FrameBatch.stack([prepare_image(path.read_bytes(), spec, fast=mode == "fast")]))
            rows = [found.boxes, found.scores[:, None], found.class_ids[:, None].astype(np.float32)]
            boxes[mode][path.name] = np.concatenate(rows, axis=1)
    return {
        "photos": len(large),
        "exact_boxes": sum(map(len, boxes["exact"].values())),
        "recall": agreement(boxes["fast"], boxes["exact"])[0],
        "precision": agreement(boxes["exact"], boxes["fast"])[0],
    }


def _print(results: dict, cores: int) -> None:
    print("| photo (MP) | device: CPU check, frames/s per core | device: decode + letterbox, frames/s | on |")
    print("|---|---|---|---|")
    for row in results["photos"]:
        rates = row["device"]
        print(
            f"| {row['megapixels']} | {rates['cpu_per_core']:.0f} | {rates['frames_per_s']:.1f} | {rates['device']} |"
        )
    print()
    header = f"exact: frames/s per core | fast: frames/s per core | fast / exact | fast, {cores} cores |"
    for kind, key in (("photo (MP)", "megapixels"), ("video (H.264)", "video")):
        print(f"| {kind} | {header}\n|---|---|---|---|---|")
        for row in results["photos" if key == "megapixels" else "videos"]:
            exact, fast = row["exact"]["per_core"], row["fast"]["per_core"]
            print(f"| {row[key]} | {exact:.1f} | {fast:.1f} | {fast / exact:.2f}x | {row['fast']['node']:.0f} |")
        print()
    if "agreement" in results:
        row = results["agreement"]
        print("| 12 MP photos | exact boxes | exact boxes found by fast | fast boxes that are exact ones |")
        print("|---|---|---|---|")
        print(f"| {row['photos']} | {row['exact_boxes']} | {row['recall']:.3f} | {row['precision']:.3f} |")


if __name__ == "__main__":
    main()
