"""Translate super-gradients' image processors into the job's own ``LetterboxSpec``.

A checkpoint may carry ``processing_params`` (the preprocessing it was trained with). super-gradients turns
them into a chain of ``Processing`` objects that run image by image in NumPy float64; the job instead runs the
same geometry once on uint8 (``workers.letterbox``) and the arithmetic batched on the device. This module is
the bridge, and it refuses chains it cannot reproduce exactly rather than guessing.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from workers.letterbox import LetterboxSpec


class UnsupportedProcessing(ValueError):
    """The checkpoint's image processor has a step this job cannot reproduce faithfully."""


def default_processing_params() -> dict[str, Any]:
    """super-gradients' processing for YOLO-NAS trained on COCO (what ``predict()`` uses for COCO weights)."""
    from workers.quiet import super_gradients_models

    super_gradients_models()
    from super_gradients.training.processing.processing import default_yolo_nas_coco_processing_params

    return default_yolo_nas_coco_processing_params()


def letterbox_spec(image_processor: Any) -> LetterboxSpec:
    """Read a super-gradients ``Processing`` (usually ``ComposeProcessing``) into a ``LetterboxSpec``."""
    from super_gradients.training.processing import processing as sgp

    steps = list(getattr(image_processor, "processings", [image_processor]))
    fields: dict[str, Any] = {"bgr": False}
    mean, std = np.zeros(3), np.ones(3)
    stage = 0  # 0: colour/geometry, 1: after padding, 2: arithmetic, 3: layout
    for step in steps:
        if isinstance(step, sgp.ReverseImageChannels) and stage == 0:
            fields["bgr"] = not fields["bgr"]
        elif isinstance(step, sgp.DetectionLongestMaxSizeRescale) and stage == 0 and "fit" not in fields:
            fields["fit"] = tuple(int(v) for v in step.output_shape)
        elif isinstance(step, (sgp.DetectionCenterPadding, sgp.DetectionBottomRightPadding)) and stage == 0:
            fields["canvas"] = tuple(int(v) for v in step.output_shape)
            fields["pad_value"] = _scalar_pad(step.pad_value)
            fields["centre"] = isinstance(step, sgp.DetectionCenterPadding)
            stage = 1
        elif isinstance(step, sgp.StandardizeImage) and stage in (1, 2):
            std = std * step.max_value
            stage = 2
        elif isinstance(step, sgp.NormalizeImage) and stage in (1, 2):
            mean = mean + np.asarray(step.mean, dtype=np.float64).reshape(-1) * std
            std = std * np.asarray(step.std, dtype=np.float64).reshape(-1)
            stage = 2
        elif isinstance(step, sgp.ImagePermute) and tuple(step.permutation) == (2, 0, 1) and stage >= 1:
            stage = 3
        else:
            raise UnsupportedProcessing(f"image processor step {type(step).__name__} is not supported here")
    if "fit" not in fields or "canvas" not in fields or stage != 3:
        raise UnsupportedProcessing("image processor must rescale, pad and permute to CHW (a YOLO-NAS letterbox)")
    return LetterboxSpec(
        **fields,
        mean=_per_channel(mean),
        std=_per_channel(std),
    )


def _scalar_pad(pad_value: Any) -> int:
    values = np.atleast_1d(np.asarray(pad_value))
    if not np.all(values == values[0]):
        raise UnsupportedProcessing("per-channel pad values are not supported")
    return int(values[0])


def letterbox_spec_from_params(processing_params: dict[str, Any]) -> LetterboxSpec:
    """Build super-gradients' processor from a checkpoint's ``processing_params`` and read it."""
    from workers.quiet import super_gradients_models  # the processing factory needs super-gradients' registry

    super_gradients_models()
    from super_gradients.common.factories.processing_factory import ProcessingFactory
    from super_gradients.training.processing.processing import Processing

    processor = processing_params["image_processor"]
    if not isinstance(processor, Processing):
        try:
            processor = ProcessingFactory().get(processor)
        except Exception as exc:  # the factory raises assorted errors for unknown or malformed entries
            raise UnsupportedProcessing(f"cannot read the checkpoint's image processor: {exc}") from None
    return letterbox_spec(processor)


def _per_channel(value: Any) -> tuple[float, float, float]:
    """A scalar or per-channel normalisation value as one float per RGB channel."""
    first, second, third = (float(v) for v in np.broadcast_to(value, 3))
    return first, second, third
