"""Test weights for YOLO-NAS whose detections depend on the image: the seeded model with the probe's fit
(``tests/support/probe_fit.py``) applied.

The fit takes half a minute of CPU; what it changes (BatchNorm statistics and the class heads, about 70,000 numbers
of the model's 19 million) is kept in ``tests/data/probe/``, with a digest of the fitting code and of the whole
result. ``make_probe_checkpoint`` applies it to the seeded model when both still hold, and fits afresh otherwise (a
changed fit, or a super-gradients or torch whose seeded model differs); ``test_probe_weights.py`` fails while the kept
fit is behind its code. After changing the fit: ``python -m tests.support.probe_weights`` writes it again.

``with_small_canvas`` copies the fitted tensors into a checkpoint that carries its own ``processing_params`` for a
320 x 320 canvas, the way a fine-tuned model carries the preprocessing it was trained with: the whole-job tests run
on it, where the model costs a quarter of its time at 640 and still finds objects in most photos.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import torch

from tests.support import probe_fit

SMALL_CANVAS = 320
KEPT = Path(__file__).resolve().parents[1] / "data" / "probe"
"""The kept fits, one file per model and seed."""


def fit_digest() -> str:
    """What the kept fit depends on besides the libraries: the fitting code."""
    return hashlib.sha256(Path(probe_fit.__file__).read_bytes()).hexdigest()


def kept_fit(model_name: str, seed: int) -> Path:
    return KEPT / f"{model_name}-seed{seed}.pt"


def make_probe_checkpoint(path: Path, model_name: str = "yolo_nas_s", seed: int = 0) -> Path:
    """The seeded model with the probe's fit, saved as ``{"net": state_dict}`` to ``path``: the kept fit applied
    where it is current and reproduces the fitted model exactly, else the fit run here."""
    model = probe_fit.seeded_model(model_name, seed)
    state = _with_kept_fit(model.state_dict(), kept_fit(model_name, seed))
    if state is None:
        state = probe_fit.fit_probe(model).state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net": state}, path)
    return path


def _with_kept_fit(seeded: dict[str, torch.Tensor], kept: Path) -> dict[str, torch.Tensor] | None:
    """``seeded`` with the kept fit's tensors, or None where the fit is not kept, is behind its code, or gives
    another model than the fit did (the seeded model is not the one it was fitted on)."""
    if not kept.is_file():
        return None
    stored = torch.load(kept, weights_only=True)
    if stored["fit_digest"] != fit_digest():
        return None
    state = {**seeded, **stored["changed"]}
    if _state_digest(state) != stored["state_digest"]:
        warnings.warn(f"{kept} does not reproduce the fitted model with these libraries: fitting afresh", stacklevel=2)
        return None
    return state


def _state_digest(state: dict[str, torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().numpy().tobytes())
    return digest.hexdigest()


def keep_fit(model_name: str = "yolo_nas_s", seed: int = 0) -> Path:
    """Fit the probe and keep what the fit changed, with the digests ``make_probe_checkpoint`` checks."""
    model = probe_fit.seeded_model(model_name, seed)
    seeded = {key: value.clone() for key, value in model.state_dict().items()}
    fitted = probe_fit.fit_probe(model).state_dict()
    changed = {key: value for key, value in fitted.items() if not torch.equal(value, seeded[key])}
    path = kept_fit(model_name, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"fit_digest": fit_digest(), "state_digest": _state_digest(fitted), "changed": changed}, path)
    return path


def small_canvas_params(canvas: int = SMALL_CANVAS) -> dict:
    """super-gradients' COCO preprocessing scaled to a ``canvas`` x ``canvas`` input, as plain dicts, the form a
    checkpoint keeps (the rescale leaves the same 4-pixel margin inside the padding as the COCO one at 640)."""
    from workers.classes import COCO_CLASS_NAMES

    steps = [
        {"DetectionLongestMaxSizeRescale": {"output_shape": [canvas - 4, canvas - 4]}},
        {"DetectionCenterPadding": {"output_shape": [canvas, canvas], "pad_value": 114}},
        {"StandardizeImage": {"max_value": 255.0}},
        {"ImagePermute": {"permutation": [2, 0, 1]}},
    ]
    processor = {"ComposeProcessing": {"processings": steps}}
    return {"class_names": list(COCO_CLASS_NAMES), "image_processor": processor, "iou": 0.7, "conf": 0.25}


def with_small_canvas(source: Path, target: Path) -> Path:
    """``source``'s tensors saved to ``target`` with ``small_canvas_params()`` as its ``processing_params``."""
    state = torch.load(source, weights_only=True)["net"]
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"net": state, "processing_params": small_canvas_params()}, target)
    return target


if __name__ == "__main__":
    print(keep_fit())
