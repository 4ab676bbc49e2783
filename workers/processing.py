"""Translate super-gradients' image processors into the job's own ``LetterboxSpec``.

A checkpoint may carry ``processing_params`` (the preprocessing it was trained with). super-gradients turns
them into a chain of ``Processing`` objects that run image by image in NumPy float64; the job instead runs the
same geometry once on uint8 (``workers.letterbox``) and the arithmetic batched on the device. This module is
the bridge, and it refuses chains it cannot reproduce exactly rather than guessing.

The chain is read step by step as (name, arguments), whether the steps are ``Processing`` objects or the plain
dicts a checkpoint keeps, so that one reading decides the spec for both.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from workers.letterbox import LetterboxSpec

_Step = tuple[str, dict[str, Any]]
"""A step by its super-gradients name, with its arguments as super-gradients' constructor keeps them."""


class UnsupportedProcessing(ValueError):
    """The checkpoint's image processor has a step this job cannot reproduce faithfully."""


def default_processing_params() -> dict[str, Any]:
    """super-gradients' processing for YOLO-NAS trained on COCO (what ``predict()`` uses for COCO weights)."""
    from workers.quiet import super_gradients_models

    super_gradients_models()
    from super_gradients.training.processing.processing import default_yolo_nas_coco_processing_params

    return default_yolo_nas_coco_processing_params()


def _reverse_channels() -> dict[str, Any]:
    return {}


def _rescale(output_shape: Iterable[int]) -> dict[str, Any]:
    return {"output_shape": tuple(output_shape)}


def _padding(output_shape: Iterable[int], pad_value: Any) -> dict[str, Any]:
    return {"output_shape": tuple(output_shape), "pad_value": pad_value}


def _standardize(max_value: float = 255.0) -> dict[str, Any]:
    return {"max_value": float(max_value)}


def _normalize(mean: Any, std: Any) -> dict[str, Any]:
    return {
        "mean": np.array(mean).reshape((1, 1, -1)).astype(np.float32),
        "std": np.array(std).reshape((1, 1, -1)).astype(np.float32),
    }


def _permute(permutation: Iterable[int] = (2, 0, 1)) -> dict[str, Any]:
    return {"permutation": tuple(permutation)}


_STEPS: dict[str, Callable[..., dict[str, Any]]] = {
    "ReverseImageChannels": _reverse_channels,
    "DetectionLongestMaxSizeRescale": _rescale,
    "DetectionCenterPadding": _padding,
    "DetectionBottomRightPadding": _padding,
    "StandardizeImage": _standardize,
    "NormalizeImage": _normalize,
    "ImagePermute": _permute,
}
"""The steps a letterbox can reproduce, each with a mirror of its super-gradients constructor: the same
parameters, defaults and conversions (``NormalizeImage`` keeps float32), so that a checkpoint's plain dicts give
the spec the objects super-gradients would build from them give. The parameter names are also the attributes the
objects keep them in."""


def letterbox_spec(image_processor: Any) -> LetterboxSpec:
    """Read a super-gradients ``Processing`` (usually ``ComposeProcessing``) into a ``LetterboxSpec``."""
    return _spec(_object_step(step) for step in getattr(image_processor, "processings", [image_processor]))


def letterbox_spec_from_params(processing_params: dict[str, Any]) -> LetterboxSpec:
    """Read a checkpoint's ``processing_params`` into a ``LetterboxSpec``.

    The plain dicts, lists and names a checkpoint keeps are read here, without importing super-gradients (seconds
    of CPU, which a driver planning a run with a cached model would pay for nothing else); anything else (an
    object, a name or an entry this module does not know) is built by super-gradients' own factory, so that it is
    read or refused as super-gradients reads it."""
    processor = processing_params["image_processor"]
    steps = _plain_steps(processor)
    return _spec(steps) if steps is not None else letterbox_spec(_built(processor))


def _spec(steps: Iterable[_Step]) -> LetterboxSpec:
    fields: dict[str, Any] = {"bgr": False}
    mean, std = np.zeros(3), np.ones(3)
    stage = 0  # 0: colour/geometry, 1: after padding, 2: arithmetic, 3: layout
    for name, args in steps:
        if name == "ReverseImageChannels" and stage == 0:
            fields["bgr"] = not fields["bgr"]
        elif name == "DetectionLongestMaxSizeRescale" and stage == 0 and "fit" not in fields:
            fields["fit"] = tuple(int(v) for v in args["output_shape"])
        elif name in ("DetectionCenterPadding", "DetectionBottomRightPadding") and stage == 0:
            fields["canvas"] = tuple(int(v) for v in args["output_shape"])
            fields["pad_value"] = _scalar_pad(args["pad_value"])
            fields["centre"] = name == "DetectionCenterPadding"
            stage = 1
        elif name == "StandardizeImage" and stage in (1, 2):
            std = std * args["max_value"]
            stage = 2
        elif name == "NormalizeImage" and stage in (1, 2):
            mean = mean + np.asarray(args["mean"], dtype=np.float64).reshape(-1) * std
            std = std * np.asarray(args["std"], dtype=np.float64).reshape(-1)
            stage = 2
        elif name == "ImagePermute" and tuple(args["permutation"]) == (2, 0, 1) and stage >= 1:
            stage = 3
        else:
            raise UnsupportedProcessing(f"image processor step {name} is not supported here")
    if "fit" not in fields or "canvas" not in fields or stage != 3:
        raise UnsupportedProcessing("image processor must rescale, pad and permute to CHW (a YOLO-NAS letterbox)")
    return LetterboxSpec(**fields, mean=_per_channel(mean), std=_per_channel(std))


def _object_step(step: Any) -> _Step:
    from super_gradients.training.processing import processing as sgp

    for name, mirror in _STEPS.items():
        if isinstance(step, getattr(sgp, name)):
            return name, {key: getattr(step, key) for key in inspect.signature(mirror).parameters}
    return type(step).__name__, {}


def _plain_steps(image_processor: Any) -> list[_Step] | None:
    """The steps of a processor kept as plain dicts, or None where only super-gradients can tell what it is.

    This mirrors super-gradients' ``ProcessingFactory``: a ``{"ComposeProcessing": {"processings": [...]}}`` or a
    single step, each step a name or ``{name: {arguments}}``, arguments passed to the constructor by keyword."""
    entries = [image_processor]
    if isinstance(image_processor, Mapping) and list(image_processor) == ["ComposeProcessing"]:
        compose = image_processor["ComposeProcessing"]
        if not isinstance(compose, Mapping) or list(compose) != ["processings"]:
            return None
        entries = compose["processings"]
        if not isinstance(entries, (list, tuple)):
            return None
    steps = []
    for entry in entries:
        step = _plain_step(entry)
        if step is None:
            return None
        steps.append(step)
    return steps


def _plain_step(entry: Any) -> _Step | None:
    arguments: Any
    if isinstance(entry, str):
        name, arguments = entry, {}
    elif isinstance(entry, Mapping) and len(entry) == 1:
        ((name, arguments),) = entry.items()
    else:
        return None
    mirror = _STEPS.get(name)
    if mirror is None:
        return None
    try:
        return name, mirror(**arguments)
    except Exception:  # super-gradients' constructor fails on it too: its factory says how
        return None


def _built(image_processor: Any) -> Any:
    """super-gradients' ``Processing`` for a processor this module cannot read by itself."""
    from workers.quiet import super_gradients_models  # the processing factory needs super-gradients' registry

    super_gradients_models()
    from super_gradients.common.factories.processing_factory import ProcessingFactory
    from super_gradients.training.processing.processing import Processing

    if isinstance(image_processor, Processing):
        return image_processor
    try:
        return ProcessingFactory().get(image_processor)
    except Exception as exc:  # the factory raises assorted errors for unknown or malformed entries
        raise UnsupportedProcessing(f"cannot read the checkpoint's image processor: {exc}") from None


def _scalar_pad(pad_value: Any) -> int:
    values = np.atleast_1d(np.asarray(pad_value))
    if not np.all(values == values[0]):
        raise UnsupportedProcessing("per-channel pad values are not supported")
    return int(values[0])


def _per_channel(value: Any) -> tuple[float, float, float]:
    """A scalar or per-channel normalisation value as one float per RGB channel."""
    first, second, third = (float(v) for v in np.broadcast_to(value, 3))
    return first, second, third
