"""workers.decoding: bytes to the pixels super-gradients sees, a large JPEG decoded reduced with the full geometry."""

import cv2
import numpy as np
import pytest

from tests.support.photos import LARGE_SCALE
from workers.decoding import decode_for, decode_image, jpeg_reduction, prepare_image
from workers.image_checks import DecodeError
from workers.letterbox import LetterboxSpec, letterbox


@pytest.mark.parametrize("spec", [LetterboxSpec(), LetterboxSpec(bgr=True), LetterboxSpec(centre=False)], ids=str)
def test_channels_swapped_after_the_rescale_give_the_same_canvas(coco_images, spec):
    """The fast path keeps OpenCV's channel order until after the rescale; no pixel may change for it."""
    for path in coco_images[:5]:
        slow = letterbox(decode_image(path.read_bytes()), spec).image
        fast = prepare_image(path.read_bytes(), spec).image
        np.testing.assert_array_equal(fast, slow)


def test_decode_gives_rgb():
    bgr = np.zeros((4, 4, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    ok, encoded = cv2.imencode(".png", bgr)
    assert ok
    rgb = decode_image(encoded.tobytes())
    assert rgb.shape == (4, 4, 3)
    assert rgb[0, 0].tolist() == [255, 0, 0]


@pytest.mark.parametrize(("data", "message"), [(b"", "empty file"), (b"not an image at all", "not a decodable image")])
def test_decode_rejects_bad_bytes_with_a_clear_message(data, message):
    with pytest.raises(DecodeError, match=message):
        decode_image(data)


@pytest.mark.parametrize(
    ("width", "height", "factor"),
    [(4032, 3024, 4), (3024, 4032, 4), (1272, 954, 2), (1270, 954, 1), (640, 480, 1), (5088, 5088, 8), (20000, 3, 8)],
)
def test_jpeg_reduction_is_the_largest_that_still_covers_the_letterbox(width, height, factor):
    assert jpeg_reduction(width, height, LetterboxSpec()) == factor


def test_a_reduced_jpeg_keeps_the_full_images_geometry_in_every_orientation(large, camera_sized):
    """Decoded at 1/4 (EXIF applied), a camera photo letterboxes to the full decode's geometry, so boxes map back to
    the full image's pixels; only the pixels differ, by libjpeg's averaging against bilinear sampling."""
    spec = LetterboxSpec()
    upright = {
        path.name: tuple(round(side * LARGE_SCALE) for side in cv2.imread(str(photo)).shape[:2])
        for path, photo in zip(large, camera_sized)
    }
    for path in large:
        data = path.read_bytes()
        full = decode_image(data, channels="bgr")
        reduced = decode_for(data, spec, channels="bgr")
        assert (reduced.height, reduced.width) == full.shape[:2] == upright[path.name], path.name
        factor = jpeg_reduction(full.shape[1], full.shape[0], spec)
        assert factor == 4, path.name
        assert reduced.image.shape[:2] == tuple(-(-side // factor) for side in full.shape[:2])
        fast, slow = prepare_image(data, spec, fast=True), prepare_image(data, spec)
        geometry = ("height", "width", "scale", "pad_top", "pad_left")
        assert [getattr(fast, g) for g in geometry] == [getattr(slow, g) for g in geometry]
        assert fast.pixels.shape == slow.pixels.shape
        assert np.abs(fast.pixels.astype(int) - slow.pixels.astype(int)).mean() < 4, path.name


def test_only_jpegs_are_decoded_reduced(large):
    png = cv2.imencode(".png", cv2.imread(str(large[0])))[1].tobytes()
    assert decode_for(png, LetterboxSpec()).image.shape[:2] == cv2.imread(str(large[0])).shape[:2]
