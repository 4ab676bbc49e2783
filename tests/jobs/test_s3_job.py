"""The job S3 → S3 on a real local Ray and a real S3 API (moto's server), with the weights in S3 and a store
that throttles and drops connections: every image and sampled video frame once, read back with a second,
independent client (pyarrow's own S3 filesystem), detections equal to super-gradients' ``predict()``."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pytest

from jobs.runner import run_job
from schemas.config import JobConfig
from tests.conftest import predict_boxes
from tests.support.parity import mismatches
from tests.support.s3 import ACCESS_KEY, REGION, SECRET_KEY, s3_client, s3_storage_options
from tests.support.videos import decode_all, encode_h264, photo_frames

IMAGES = 8
SECRET = "s3cr3t-never-logged-7f3a"
"""moto does not check signatures, so a secret of our own shows whether it leaks anywhere."""


@pytest.fixture(scope="module")
def clip(tmp_path_factory, coco_images) -> Path:
    return encode_h264(
        tmp_path_factory.mktemp("s3clip") / "clip.mp4", photo_frames(coco_images, 48, size=(640, 480)), fps=12
    )


@pytest.fixture
def s3_run(s3_endpoint, s3_bucket, flaky_proxy, coco_images, clip, probe_weights, ray_cluster):
    client = s3_client(s3_endpoint)
    for image in coco_images[:IMAGES]:
        client.put_object(Bucket=s3_bucket, Key=f"in/photos/{image.parent.name} {image.name}", Body=image.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="in/videos/clip.mp4", Body=clip.read_bytes())
    client.put_object(Bucket=s3_bucket, Key="in/notes.txt", Body=b"not media")
    client.put_object(Bucket=s3_bucket, Key="models/probe.pth", Body=probe_weights.read_bytes())
    first = coco_images[0]
    listed = f"s3://{s3_bucket}/in/photos/{first.parent.name} {first.name}\ns3://{s3_bucket}/gone/deleted.jpg\n"
    client.put_object(Bucket=s3_bucket, Key="lists/extra.txt", Body=listed.encode())
    flaky_proxy.fail_every, flaky_proxy.drop_every = 11, 23
    config = JobConfig(
        sources=[f"s3://{s3_bucket}/in", f"s3://{s3_bucket}/lists/extra.txt"],
        output=f"s3://{s3_bucket}/out",
        weights=f"s3://{s3_bucket}/models/probe.pth",
        video_stride=4,
        video_segment_frames=16,
        shard_size=6,
        storage_options={**s3_storage_options(flaky_proxy.url), "secret": SECRET},
    )
    log = io.StringIO()
    result = run_job(config, stream=log)
    return result, log.getvalue(), s3_bucket, s3_endpoint, flaky_proxy


def _read_back(endpoint: str, bucket: str, table: str) -> list[dict]:
    s3 = pafs.S3FileSystem(
        endpoint_override=endpoint, access_key=ACCESS_KEY, secret_key=SECRET_KEY, region=REGION, scheme="http"
    )
    return (
        ds.dataset(f"{bucket}/out/{table}", filesystem=s3, format="parquet", partitioning="hive").to_table().to_pylist()
    )


def test_s3_to_s3_through_a_flaky_store_loses_nothing_and_records_vanished_objects(
    s3_run, coco_images, clip, reference_model, reference_predictions
):
    result, log, bucket, endpoint, proxy = s3_run
    assert result.exit_code == 0, log
    assert proxy.failures > 0  # the store really failed requests during the run
    frames = _read_back(endpoint, bucket, "frames")
    photos = sorted(r["source_uri"] for r in frames if "/in/photos/" in r["source_uri"])  # listed twice, one row
    expected = sorted(f"s3://{bucket}/in/photos/{p.parent.name} {p.name}" for p in coco_images[:IMAGES])
    assert photos == expected  # each once, URIs as named, not percent-encoded
    video = sorted((r for r in frames if r["source_uri"].endswith("/clip.mp4")), key=lambda r: r["frame_index"])
    assert [r["frame_index"] for r in video] == list(range(0, 48, 4))
    assert [r["timestamp_s"] for r in video] == pytest.approx([i / 12 for i in range(0, 48, 4)])
    gone = [r for r in frames if r["source_uri"] == f"s3://{bucket}/gone/deleted.jpg"]
    assert [(r["status"], r["error"], r["source"]) for r in gone] == [("error", "read: file not found", "extra")]
    assert len(frames) == IMAGES + 12 + 1 and sum(r["status"] == "ok" for r in frames) == IMAGES + 12
    assert result.manifest.plan.skipped == {"not media": 1}
    assert result.manifest.model.weights == f"s3://{bucket}/models/probe.pth"
    manifest = (
        s3_client(endpoint).get_object(Bucket=bucket, Key=f"out/_runs/{result.manifest.run_id}.json")["Body"].read()
    )
    assert SECRET not in log and SECRET.encode() not in manifest

    detections = _read_back(endpoint, bucket, "detections")
    ours: dict[tuple, list] = {}
    for row in detections:
        ours.setdefault((row["source_uri"], row["frame_index"]), []).append(
            [row[k] for k in ("x1", "y1", "x2", "y2", "score", "class_id")]
        )
    by_name = {
        f"s3://{bucket}/in/photos/{p.parent.name} {p.name}": "file://" + str(p.resolve()) for p in coco_images[:IMAGES]
    }
    reference = {(uri, 0): reference_predictions[original] for uri, original in by_name.items()}
    decoded = decode_all(clip)
    for index, boxes in zip(range(0, 48, 4), predict_boxes(reference_model, [decoded[i] for i in range(0, 48, 4)])):
        reference[(f"s3://{bucket}/in/videos/clip.mp4", index)] = boxes
    reference = {k: v for k, v in reference.items() if len(v)}
    assert sum(len(v) for v in reference.values()) > 0
    assert mismatches({k: np.array(v) for k, v in ours.items()}, reference) == []
