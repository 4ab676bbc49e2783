"""workers.letterbox: super-gradients' geometry and pixels, rounding included."""

import numpy as np
import pytest

from workers.decoding import prepare_image
from workers.letterbox import LetterboxSpec, letterbox, place, target_size
from workers.processing import default_processing_params, letterbox_spec


def test_letterbox_matches_super_gradients_processor_pixel_for_pixel(coco_images):
    from PIL import Image

    processor = default_processing_params()["image_processor"]
    for path in coco_images[:6]:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        reference, _ = processor.preprocess_image(rgb.copy())  # CHW float32 in [0, 1]
        for ours in (letterbox(rgb, LetterboxSpec()), prepare_image(path.read_bytes(), LetterboxSpec())):
            as_float = (ours.image.astype(np.float32) / 255.0).transpose(2, 0, 1)
            np.testing.assert_array_equal(as_float, reference)


@pytest.mark.parametrize(("height", "width"), [(480, 640), (640, 427), (1, 1), (20, 3000), (636, 636), (333, 500)])
def test_letterbox_geometry_centres_the_image_like_super_gradients(height, width):
    rgb = np.full((height, width, 3), 7, dtype=np.uint8)
    out = letterbox(rgb, LetterboxSpec())
    scale = min(636 / height, 636 / width)
    new_h, new_w = round(height * scale), round(width * scale)
    assert out.scale == scale
    assert (out.pad_top, out.pad_left) == ((640 - new_h) // 2, (640 - new_w) // 2)
    assert out.image.shape == (640, 640, 3)
    inside = out.image[out.pad_top : out.pad_top + new_h, out.pad_left : out.pad_left + new_w]
    assert np.all(inside == 7)
    assert (out.image == 114).sum() == 3 * (640 * 640 - new_h * new_w)
    assert target_size(height, width, LetterboxSpec()) == place(height, width, LetterboxSpec()).size == (new_h, new_w)


def test_a_3_pixel_strip_letterboxes_to_one_row_instead_of_failing():
    out = letterbox(np.full((3, 10_000, 3), 7, dtype=np.uint8), LetterboxSpec())
    assert out.scale == 636 / 10_000
    assert (out.image != 114).all(axis=2).sum() == 636
    assert out.pad_top == (640 - 1) // 2


def test_a_fit_larger_than_the_canvas_is_refused():
    with pytest.raises(ValueError, match="exceeds the 640x640 canvas"):
        place(480, 640, LetterboxSpec(fit=(700, 700)))


def test_bgr_spec_reverses_channels():
    rgb = np.zeros((10, 10, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    out = letterbox(rgb, LetterboxSpec(bgr=True))
    assert out.image[320, 320].tolist() == [0, 0, 200]


def test_default_spec_is_super_gradients_coco_processing():
    assert letterbox_spec(default_processing_params()["image_processor"]) == LetterboxSpec()
