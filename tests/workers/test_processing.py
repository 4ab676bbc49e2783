"""workers.processing: a checkpoint's image processor kept as plain dicts reads as super-gradients' own objects
read, and without importing super-gradients."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from workers.letterbox import LetterboxSpec
from workers.processing import UnsupportedProcessing, letterbox_spec, letterbox_spec_from_params

REPO = Path(__file__).resolve().parents[2]


def _chain(*steps: Any) -> dict[str, Any]:
    return {"ComposeProcessing": {"processings": list(steps)}}


RESCALE = {"DetectionLongestMaxSizeRescale": {"output_shape": [636, 636]}}
CENTRE = {"DetectionCenterPadding": {"output_shape": [640, 640], "pad_value": 114}}
STANDARDIZE = {"StandardizeImage": {"max_value": 255.0}}
PERMUTE = {"ImagePermute": {"permutation": [2, 0, 1]}}

FORMS = {
    "coco": _chain(RESCALE, CENTRE, STANDARDIZE, PERMUTE),
    "canvas-320": _chain(
        {"DetectionLongestMaxSizeRescale": {"output_shape": [316, 316]}},
        {"DetectionCenterPadding": {"output_shape": [320, 320], "pad_value": 114}},
        STANDARDIZE,
        PERMUTE,
    ),
    "bottom-right": _chain(
        RESCALE, {"DetectionBottomRightPadding": {"output_shape": [640, 480], "pad_value": 0}}, STANDARDIZE, PERMUTE
    ),
    "imagenet-normalize": _chain(
        RESCALE,
        CENTRE,
        STANDARDIZE,
        {"NormalizeImage": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}},
        PERMUTE,
    ),
    "scalar-normalize-alone": _chain(RESCALE, CENTRE, {"NormalizeImage": {"mean": 127.5, "std": 127.5}}, PERMUTE),
    "bgr": _chain({"ReverseImageChannels": {}}, RESCALE, CENTRE, STANDARDIZE, PERMUTE),
    "bgr-twice-by-name": _chain("ReverseImageChannels", RESCALE, "ReverseImageChannels", CENTRE, STANDARDIZE, PERMUTE),
    "bare-names": _chain(RESCALE, CENTRE, "StandardizeImage", "ImagePermute"),
    "omitted-defaults": _chain(RESCALE, CENTRE, {"StandardizeImage": {}}, {"ImagePermute": {}}),
    "tuples-and-equal-channel-pad": {
        "ComposeProcessing": {
            "processings": (
                {"DetectionLongestMaxSizeRescale": {"output_shape": (600, 636)}},
                {"DetectionCenterPadding": {"output_shape": (608, 640), "pad_value": [114, 114, 114]}},
                {"StandardizeImage": {"max_value": 1}},
                {"ImagePermute": {"permutation": (2, 0, 1)}},
            )
        }
    },
}
"""Processors as checkpoints keep them, each exercising a step, a default or a way of writing one."""


def _super_gradients_spec(image_processor: Any) -> LetterboxSpec:
    """The spec read from the objects super-gradients' factory builds (on a copy: the factory rewrites it)."""
    from workers.quiet import super_gradients_models

    super_gradients_models()
    from super_gradients.common.factories.processing_factory import ProcessingFactory

    return letterbox_spec(ProcessingFactory().get(copy.deepcopy(image_processor)))


@pytest.mark.parametrize("name", FORMS)
def test_plain_form_reads_as_super_gradients_objects_read(name):
    form = FORMS[name]
    params = {"class_names": ["a", "b"], "iou": 0.7, "conf": 0.25, "image_processor": copy.deepcopy(form)}
    assert letterbox_spec_from_params(params) == _super_gradients_spec(form)
    assert params["image_processor"] == form  # read where it lies, not rebuilt into objects in the checkpoint's dict


def test_coco_chain_as_dicts_is_the_default_spec():
    assert letterbox_spec_from_params({"image_processor": copy.deepcopy(FORMS["coco"])}) == LetterboxSpec()


def test_plain_forms_are_read_without_importing_super_gradients():
    """The driver plans a run without paying super-gradients' import for a checkpoint's own processing."""
    code = (
        "import json, sys\n"
        "from workers.processing import letterbox_spec_from_params\n"
        "forms = json.loads(sys.stdin.read())\n"
        "specs = [repr(letterbox_spec_from_params({'image_processor': form})) for form in forms]\n"
        "assert 'super_gradients' not in sys.modules, 'super-gradients was imported'\n"
        "print(json.dumps(specs))\n"
    )
    forms = list(FORMS.values())
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, input=json.dumps(forms), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [repr(_super_gradients_spec(form)) for form in forms]


@pytest.mark.parametrize(
    "form",
    [
        pytest.param(_chain(RESCALE, CENTRE, {"Sharpen": {}}, STANDARDIZE, PERMUTE), id="unknown-step"),
        pytest.param(_chain(RESCALE, CENTRE, "Sharpen", STANDARDIZE, PERMUTE), id="unknown-bare-name"),
        pytest.param(
            _chain(RESCALE, {"DetectionCenterPadding": {"output_shape": [640, 640]}}, STANDARDIZE, PERMUTE),
            id="missing-argument",
        ),
        pytest.param(_chain(RESCALE, CENTRE, {"StandardizeImage": {"max": 255}}, PERMUTE), id="unknown-argument"),
        pytest.param(_chain(RESCALE, CENTRE, {"StandardizeImage": {"max_value": "x"}}, PERMUTE), id="bad-value"),
        pytest.param(_chain(RESCALE, CENTRE, {"StandardizeImage": [255]}, PERMUTE), id="arguments-not-a-dict"),
        pytest.param(_chain(RESCALE, {**CENTRE, **STANDARDIZE}, PERMUTE), id="two-steps-in-one-entry"),
        pytest.param(
            {"ComposeProcessing": {"processings": [RESCALE, CENTRE, STANDARDIZE, PERMUTE], "strict": True}},
            id="compose-with-more-than-its-steps",
        ),
    ],
)
def test_entries_super_gradients_cannot_build_are_refused_by_its_factory(form):
    with pytest.raises(UnsupportedProcessing, match="cannot read the checkpoint's image processor"):
        letterbox_spec_from_params({"image_processor": copy.deepcopy(form)})


@pytest.mark.parametrize(
    ("form", "message"),
    [
        pytest.param(
            _chain({"DetectionRescale": {"output_shape": [640, 640]}}, CENTRE, STANDARDIZE, PERMUTE),
            "step DetectionRescale is not supported",
            id="a-step-only-super-gradients-knows",
        ),
        pytest.param(
            _chain(RESCALE, STANDARDIZE, CENTRE, PERMUTE), "step StandardizeImage is not supported", id="out-of-order"
        ),
        pytest.param(
            _chain(RESCALE, CENTRE, STANDARDIZE, {"ImagePermute": {"permutation": [0, 1, 2]}}),
            "step ImagePermute is not supported",
            id="not-to-chw",
        ),
        pytest.param(
            _chain(
                RESCALE, {"DetectionCenterPadding": {"output_shape": [640, 640], "pad_value": [114, 0, 0]}}, PERMUTE
            ),
            "per-channel pad values",
            id="per-channel-pad",
        ),
        pytest.param(_chain(RESCALE, CENTRE, STANDARDIZE), "must rescale, pad and permute", id="no-permute"),
        pytest.param(RESCALE, "must rescale, pad and permute", id="a-single-step"),
    ],
)
def test_chains_a_letterbox_cannot_reproduce_are_refused_as_from_objects(form, message):
    with pytest.raises(UnsupportedProcessing, match=message):
        letterbox_spec_from_params({"image_processor": copy.deepcopy(form)})
    with pytest.raises(UnsupportedProcessing, match=message):
        _super_gradients_spec(form)
