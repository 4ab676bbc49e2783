"""``--decode device``: canvases made from encoded JPEGs on the model's device equal the CPU letterbox's (on a CPU
exactly, but for an upscale or CMYK), for every EXIF orientation and the JPEG kinds cameras and scanners write;
other payloads are placed as they came; a JPEG the decoder refuses is its row's error alone. Here on the CPU; on
CUDA where a GPU is."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from workers.decoding import prepare_image
from workers.device_frames import DeviceFrames
from workers.frames import EncodedJpeg, PayloadBatchBuilder, payload_columns
from workers.image_checks import DecodeError
from workers.letterbox import LetterboxSpec

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]
LEVELS = {"cpu": 0, "cuda": 3}
"""Most a pixel of a downscaled JPEG may differ from the CPU letterbox's: none on a CPU (the same libjpeg-turbo
decode, OpenCV's own resize arithmetic), a few levels on CUDA (nvJPEG's IDCT)."""


def _jpeg(image: Image.Image, orientation: int = 1, **options: object) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    sink = io.BytesIO()
    image.save(sink, "JPEG", quality=90, exif=exif, **options)
    return sink.getvalue()


@pytest.fixture(scope="module")
def photos(coco_images: list[Path]) -> list[Image.Image]:
    """A portrait photo, a landscape one, the landscape one at 12 MP (rescaled down 6x) and a small one (rescaled
    up, where the resize may differ from OpenCV's by a level: ``workers.linear_resize``)."""
    portrait, landscape = (Image.open(p).convert("RGB") for p in (coco_images[0], coco_images[1]))
    return [
        portrait,
        landscape,
        landscape.resize((landscape.width * 6, landscape.height * 6)),
        portrait.resize((200, 300)),
    ]


@pytest.mark.parametrize("device", DEVICES)
def test_canvases_are_the_cpu_letterbox_within_a_level(photos, device):
    spec = LetterboxSpec()
    images = [_jpeg(photo, orientation) for photo in photos for orientation in range(1, 9)]
    images += [
        _jpeg(photos[0], progressive=True),
        _jpeg(photos[1].convert("L")),
        _jpeg(photos[1].convert("CMYK")),
    ]
    png = io.BytesIO()
    photos[0].save(png, "PNG")
    images.append(png.getvalue())  # not a JPEG: letterboxed on the CPU, its pixels placed as they came
    columns = payload_columns(images, spec)
    assert columns["jpeg"].tolist() == [True] * (len(images) - 1) + [False]

    canvases, failed = DeviceFrames(spec, device).build(columns)

    assert failed == {} and canvases.device.type == device
    expected = np.stack([prepare_image(data, spec).image for data in images])
    difference = np.abs(canvases.cpu().numpy().astype(int) - expected)
    upscaled, cmyk = slice(24, 32), len(images) - 2
    assert difference[:24].max() <= LEVELS[device] and difference[32:cmyk].max() <= LEVELS[device]
    assert difference[upscaled].max() <= LEVELS[device] + 1
    assert difference[cmyk].max() <= LEVELS[device] + 2  # libjpeg-turbo's CMYK → RGB rounds other than OpenCV's
    assert difference[-1].max() == 0


@pytest.mark.parametrize("device", DEVICES)
def test_a_damaged_jpeg_is_decoded_as_the_cpu_path_decodes_it_and_one_no_decoder_takes_is_its_rows_error(
    photos, device
):
    spec = LetterboxSpec(bgr=True)
    whole = _jpeg(photos[1])
    garbled = whole[: len(whole) // 2] + b"\xff\x51" * 2000 + whole[len(whole) // 2 + 4000 :]
    scan = whole.index(b"\xff\xda") + 5
    unreadable = whole[:scan] + b"\x09" + whole[scan + 1 :]  # the scan names a component the frame lacks
    builder = PayloadBatchBuilder(4)
    for data in (whole, garbled, unreadable):
        builder.add(EncodedJpeg.of(data, spec))
    builder.add(None)  # an input that failed on the CPU: no payload, a blank canvas

    canvases, failed = DeviceFrames(spec, device).build(builder.columns())

    # libjpeg-turbo refuses the garbled data; OpenCV, as --decode exact, keeps what it decoded (an ok row there)
    assert np.abs(canvases[0].cpu().numpy().astype(int) - prepare_image(whole, spec).image).max() <= LEVELS[device]
    assert np.array_equal(canvases[1].cpu().numpy(), prepare_image(garbled, spec).image)
    with pytest.raises(DecodeError) as refused:
        prepare_image(unreadable, spec)
    assert failed == {2: f"decode: {refused.value}"}
    assert bool((canvases[2:] == spec.pad_value).all())
