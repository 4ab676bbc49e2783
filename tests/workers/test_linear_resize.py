"""The device letterbox's resize is OpenCV's ``INTER_LINEAR``: bit for bit on a downscale, within a level on a
some pixels of an upscale."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from workers.linear_resize import resize_linear


def _image(height: int, width: int) -> np.ndarray:
    """Smooth gradients plus noise: every rounding path of the arithmetic is taken."""
    rng = np.random.default_rng(height * 7919 + width)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), (x + y) % 256], axis=-1)
    return np.clip(base + rng.integers(-40, 41, base.shape), 0, 255).astype(np.uint8)


def _ours(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    return resize_linear(torch.from_numpy(image), size).numpy()


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((3024, 4032), (477, 636)),
        ((4032, 3024), (636, 477)),
        ((480, 640), (477, 636)),
        ((1272, 1272), (636, 636)),
        ((1080, 1920), (358, 636)),
        ((10, 5001), (1, 636)),
        ((777, 333), (636, 273)),
    ],
)
def test_a_downscale_is_opencvs_bit_for_bit(source, target):
    image = _image(*source)
    expected = cv2.resize(image, target[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(_ours(image, target), expected)


@pytest.mark.parametrize(("source", "target"), [((230, 352), (416, 636)), ((1, 1), (636, 636)), ((3, 200), (10, 636))])
def test_an_upscale_is_opencvs_within_a_level(source, target):
    image = _image(*source)
    difference = np.abs(
        _ours(image, target).astype(int) - cv2.resize(image, target[::-1], interpolation=cv2.INTER_LINEAR)
    )
    assert difference.max() <= 1
