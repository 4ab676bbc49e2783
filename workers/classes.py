"""Class names for detections: from ``--class-names``, the checkpoint, or COCO's 80 for 80-class models."""

from __future__ import annotations

COCO_CLASS_NAMES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
"""super-gradients' ``COCO_DETECTION_CLASSES_LIST``, kept here so the driver need not import super-gradients."""


class ClassNamesError(ValueError):
    """The class names do not fit the model."""


def resolve_class_names(
    num_classes: int, given: tuple[str, ...] | None, from_checkpoint: tuple[str, ...] | None
) -> tuple[str, ...]:
    """Pick the names for a ``num_classes`` head: given > checkpoint > COCO (80) > ``class_<i>``."""
    for names, origin in ((given, "--class-names"), (from_checkpoint, "the checkpoint")):
        if names is not None:
            if len(names) != num_classes:
                raise ClassNamesError(
                    f"{origin} lists {len(names)} class names but the model has {num_classes} classes"
                )
            return names
    if num_classes == len(COCO_CLASS_NAMES):
        return COCO_CLASS_NAMES
    return tuple(f"class_{i}" for i in range(num_classes))
