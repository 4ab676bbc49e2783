"""What the job accepts and its defaults, spelled once: the CLI, the config and the model side all read them here.

This module sits below both ``jobs/`` and ``workers/`` and imports neither, so the model side (which must run
without Ray) and the driver agree on names without depending on each other.
"""

from __future__ import annotations

from typing import Literal, get_args

ModelName = Literal["yolo_nas_s", "yolo_nas_m", "yolo_nas_l"]
MODEL_NAMES: tuple[str, ...] = get_args(ModelName)
DEFAULT_MODEL: ModelName = "yolo_nas_s"

Device = Literal["cpu", "cuda"]
Precision = Literal["fp32", "bf16", "fp16"]
"""Weights and activations in this type (not autocast): fp32 gives super-gradients' boxes exactly; bf16 pays on
CPUs with AVX512-BF16 or AMX and on GPUs; fp16 is for GPUs."""
Runtime = Literal["torch", "onnxruntime"]
"""What runs the forward pass: torch (TorchScript or eager), or ONNX Runtime (CPU, fp32)."""
RuntimeChoice = Literal["auto", "torch", "onnxruntime"]
"""``--runtime``: ``auto`` is, for fp32 on CPUs, the faster of the two there (same boxes; measured once per kind of
CPU, ``workers.runtime_choice``), else torch."""

DecodeMode = Literal["exact", "fast", "device"]
"""``--decode``: ``exact`` gives super-gradients' pixels (a frame decoded whole, then rescaled bilinearly); ``fast``
decodes a JPEG at least twice the model's input at 1/2, 1/4 or 1/8 of its size (libjpeg) and has FFmpeg scale a
video frame while converting it to RGB: several times faster on camera photos and HD video, other pixels and so
other boxes (docs/performance.md gives their agreement); ``device`` has the model actors decode JPEGs on their own
device (nvJPEG on a GPU), so the CPUs only read them: ``exact``'s pixels on a CPU, within a few levels on a GPU."""

OverwriteScope = Literal["model", "all"]
"""``--overwrite``: the earlier runs of this model (its model fingerprint) and their rows, or every run's."""

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300
"""super-gradients' own ``predict()`` defaults for YOLO-NAS, so the job's boxes match it unless told otherwise."""

DEFAULT_BATCH_SIZE: dict[str, int] = {"cpu": 8, "cuda": 64}
"""Frames per model call. On CPUs larger batches gain nothing and hold more decoded frames in memory; on GPUs
this is the most a batch brings, and each model actor runs it in the largest chunks its GPU's memory takes
(``Detector.fit_batch``)."""

DEFAULT_MAX_PIXELS = 178_956_970
"""Largest image (width x height, as the header declares it) that ``decode_image`` decodes.

Pillow's decompression-bomb error threshold (2 x ``PIL.Image.MAX_IMAGE_PIXELS``), a limit users already know:
above single-shot camera sensors (150 MP at most), while the decoded RGB array stays under 540 MB, plus
OpenCV's working buffers while it decodes. OpenCV has its own cap, 2**30 pixels unless the environment variable
``OPENCV_IO_MAX_IMAGE_PIXELS`` said otherwise before OpenCV's first use; it is above this one and read once per
process, so the check here is the one that binds.
"""

DEFAULT_STALL_TIMEOUT_S = 600.0
"""``--stall-timeout``: long enough for the slowest legitimate wait without a finished frame (a GPU node joining an
autoscaling cluster, a large model loading), short enough that a scheduled run that hangs is ended the same hour."""
DEFAULT_LEASE_TTL_S = 180.0
"""``--lease-ttl``: how long the output's lease lasts unrenewed, so how long a run killed without a chance to
release it keeps the next run out. Renewed every third of it, it survives two missed renewals (a store's hiccup)."""
MIN_LEASE_TTL_S = 3.0
"""Below this a renewal's round trip to an object store could outlast a third of the lease."""
DEFAULT_STOP_GRACE_S = 20.0
"""``--stop-grace``: how long a run stopped by a signal waits for the shards (or videos) it is publishing, under
Kubernetes' default 30 s between SIGTERM and SIGKILL, so the attempt is still recorded before the kill."""
