"""Awkward and hostile image files: each decodes to the size a viewer shows and letterboxes, or fails fast with
the one-line cause the job writes in its error row (``decode: `` + the ``DecodeError`` message)."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from schemas.choices import DEFAULT_MAX_PIXELS
from tests.support.awkward_images import CASES, Expected, make_corpus
from workers import decoding
from workers.decoding import decode_image
from workers.image_checks import DecodeError
from workers.letterbox import LetterboxSpec, letterbox


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, coco_images: list[Path]) -> tuple[Path, dict[str, Expected]]:
    folder = tmp_path_factory.mktemp("awkward")
    return folder, make_corpus(folder, coco_images[0])


def _outcome(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Expected:
    """What the job's CPU stage makes of the bytes: the displayed size, or its ``decode:`` error message."""
    try:
        rgb = decode_image(data, max_pixels=max_pixels)
    except DecodeError as exc:
        return Expected("error", error=f"decode: {exc}")
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    placed = letterbox(rgb, LetterboxSpec())
    assert placed.image.shape == (640, 640, 3)
    return Expected("ok", size=(rgb.shape[1], rgb.shape[0]))


def _rgb(folder: Path, name: str) -> np.ndarray:
    return decode_image((folder / name).read_bytes())


def _pillow_rgb(folder: Path, name: str) -> np.ndarray:
    """The file as Pillow converts it to RGB (what super-gradients' ``predict()`` sees), EXIF ignored."""
    return np.asarray(Image.open(folder / name).convert("RGB"))


def _mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_decodes_to_its_displayed_size_or_fails_fast_with_its_cause(corpus, name):
    folder, expected = corpus
    data = (folder / name).read_bytes()
    started = time.perf_counter()
    outcome = _outcome(data)
    assert time.perf_counter() - started < 1.0
    if expected[name].status == "ok":
        assert outcome == expected[name]
    else:
        assert outcome.status == "error", f"{name} decoded to {outcome.size}"
        assert outcome.error.startswith(expected[name].error)
        assert "\n" not in outcome.error


LOSSLESS = [
    "gray.png",
    "palette.png",
    "rgba.png",
    "one-pixel.png",
    "wide.png",
    "photo.bmp",
    "photo.tif",
    "lossless.webp",
]


@pytest.mark.parametrize("name", LOSSLESS)
def test_lossless_files_give_pillows_rgb_exactly(corpus, name):
    """Gray is replicated, the palette (with a transparent entry) looked up, alpha dropped without blending."""
    folder, _ = corpus
    np.testing.assert_array_equal(_rgb(folder, name), _pillow_rgb(folder, name))


@pytest.mark.parametrize("name", ["gray16.png", "rgb16.png"])
def test_16_bit_samples_keep_their_high_byte(corpus, name):
    folder, _ = corpus
    stored = cv2.imread(str(folder / name), cv2.IMREAD_UNCHANGED)
    assert stored.dtype == np.uint16
    high = (stored >> 8).astype(np.uint8)
    expected = np.dstack([high] * 3) if high.ndim == 2 else high[..., ::-1]
    np.testing.assert_array_equal(_rgb(folder, name), expected)


def test_cmyk_jpeg_colours_match_pillows_conversion(corpus):
    folder, _ = corpus
    ours, pillows = _rgb(folder, "cmyk.jpg"), _pillow_rgb(folder, "cmyk.jpg")
    assert _mean_abs_diff(ours, pillows) < 2.0
    assert _mean_abs_diff(ours, _rgb(folder, "photo.jpg")) < 3.0


@pytest.mark.parametrize(("name", "turns"), [("exif6.jpg", -1), ("exif8.jpg", 1)])
def test_exif_orientation_turns_the_stored_pixels_as_a_viewer_does(corpus, name, turns):
    """Orientation 6 is shown turned a quarter clockwise (``rot90`` by -1), 8 anticlockwise."""
    folder, _ = corpus
    stored = _pillow_rgb(folder, name)
    ours = _rgb(folder, name)
    assert _mean_abs_diff(ours, np.rot90(stored, turns)) < 2.0
    assert _mean_abs_diff(ours, np.rot90(stored, -turns)) > 20.0


def test_the_pixel_limit_is_inclusive():
    ok, encoded = cv2.imencode(".png", np.zeros((60, 100, 3), dtype=np.uint8))
    assert ok
    assert _outcome(encoded.tobytes(), max_pixels=6_000) == Expected("ok", size=(100, 60))
    assert _outcome(encoded.tobytes(), max_pixels=5_999) == Expected(
        "error", error="decode: image is 100x60 = 0.006 MP, above the 0.005999 MP limit"
    )


def test_the_bomb_is_refused_from_its_header_without_reaching_the_decoder(corpus, monkeypatch):
    folder, _ = corpus
    data = (folder / "bomb.png").read_bytes()
    assert len(data) < 200_000

    def no_decoding(*_: object) -> None:
        raise AssertionError("the bomb reached cv2.imdecode")

    monkeypatch.setattr(decoding.cv2, "imdecode", no_decoding)
    started = time.perf_counter()
    with pytest.raises(DecodeError, match=r"^image is 30000x30000 = 900 MP, above the 178\.957 MP limit$"):
        decode_image(data)
    assert time.perf_counter() - started < 0.1
