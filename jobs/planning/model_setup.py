"""Everything the model actors need, settled on the driver before any actor starts.

Reading the weights here means a missing or mismatched checkpoint is a usage error (exit 2) in the first
seconds, not an actor crash minutes later, and the weights' hash is known for the run manifest.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import UsageError
from common.storage import location
from schemas.choices import Precision
from schemas.config import JobConfig
from workers.classes import ClassNamesError, resolve_class_names
from workers.detector import Thresholds
from workers.letterbox import LetterboxSpec
from workers.processing import UnsupportedProcessing
from workers.weights import Weights, WeightsError, load_weights, read_class_names


@dataclass(frozen=True)
class ModelSetup:
    weights: Weights
    spec: LetterboxSpec
    class_names: tuple[str, ...]
    thresholds: Thresholds
    precision: Precision = "fp32"


def prepare_model(config: JobConfig) -> ModelSetup:
    """Load and check weights, class names and preprocessing for ``config``; ``UsageError`` if unusable."""
    try:
        weights = load_weights(
            config.weights,
            config.model,
            trust_checkpoint=config.trust_checkpoint,
            read_bytes=lambda uri: location(uri, config.storage_options).read_bytes(),
        )
        if config.num_classes is not None and config.num_classes != weights.num_classes:
            raise UsageError(
                f"--num-classes {config.num_classes} does not match the weights, "
                f"which have {weights.num_classes} classes"
            )
        given = None
        if config.class_names:
            text = location(config.class_names, config.storage_options).read_bytes().decode("utf-8-sig")
            given = read_class_names(text, config.class_names)
        names = resolve_class_names(weights.num_classes, given, weights.class_names)
        spec = _spec_for(weights)
    except (WeightsError, ClassNamesError, UnsupportedProcessing) as exc:
        raise UsageError(str(exc)) from None
    except FileNotFoundError as exc:
        raise UsageError(f"file not found: {exc.filename or exc}") from None
    return ModelSetup(
        weights=weights,
        spec=spec,
        class_names=names,
        thresholds=Thresholds(conf=config.conf, iou=config.iou, max_det=config.max_det),
        precision=config.precision,
    )


def _spec_for(weights: Weights) -> LetterboxSpec:
    """The checkpoint's own preprocessing when it carries one, else YOLO-NAS' COCO letterbox."""
    if not weights.processing_params or "image_processor" not in weights.processing_params:
        return LetterboxSpec()
    from workers.processing import letterbox_spec_from_params

    return letterbox_spec_from_params(weights.processing_params)
