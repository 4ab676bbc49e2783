"""The model's input batch made on the model's own device from the decode stage's payloads (``--decode device``).

On a GPU the CPUs that decode set the pace for large photos (docs/performance.md), so with ``--decode device``
the decode stage only reads a JPEG and checks its header, and the model actor decodes the batch's JPEGs on its
device in one call (TorchCodec's ``decode_jpeg``: nvJPEG on CUDA, libjpeg-turbo on a CPU) and letterboxes them
there. TorchCodec is the decoder PyTorch maintains (torchvision's own JPEG decoding is deprecated in its favour),
and its wheel carries nvJPEG, so nothing else is installed for it.

The pixels are the CPU path's (``workers.decoding``): on a CPU the same libjpeg-turbo decode, with the EXIF
orientation applied as OpenCV applies it, and OpenCV's own bilinear arithmetic (``workers.linear_resize``), so the
same boxes (tested). On CUDA, nvJPEG's IDCT may differ from libjpeg-turbo's by a level or two; a JPEG the device
cannot decode is decoded on the CPU instead, and one whose data TorchCodec finds damaged by OpenCV, as the CPU
path decodes it.
"""

from __future__ import annotations

import sys
from typing import Sequence, cast

import numpy as np
import torch
from torchcodec.decoders import decode_jpeg

from workers.decoding import decode_for
from workers.errors import one_line
from workers.frames import FrameBatch, frame_batch
from workers.image_checks import DecodeError
from workers.letterbox import LetterboxSpec, target_size
from workers.linear_resize import resize_linear

_CPU = torch.device("cpu")


class DeviceFrames:
    """Builds (B, canvas_h, canvas_w, 3) uint8 batches on ``device`` from ``PayloadBatchBuilder`` columns."""

    def __init__(self, spec: LetterboxSpec, device: str | torch.device) -> None:
        self.spec = spec
        self.device = torch.device(device)

    def build(self, columns: dict[str, np.ndarray]) -> tuple[torch.Tensor, dict[int, str]]:
        """The canvases of every row, and the error message of each row whose JPEG could not be decoded (its
        canvas left blank). A row with no payload (an input that failed on the CPU) stays blank."""
        payloads, jpeg = columns["payload"], columns["jpeg"]
        heights, widths, tops, lefts = (columns[name] for name in ("height", "width", "pad_top", "pad_left"))
        canvas = torch.full(
            (len(payloads), *self.spec.canvas, 3), self.spec.pad_value, dtype=torch.uint8, device=self.device
        )
        failed: dict[int, str] = {}
        rows = np.flatnonzero(jpeg)
        for row, image in zip(rows.tolist(), self._decode([payloads[row] for row in rows])):
            if isinstance(image, str):
                failed[row] = image
                continue
            if tuple(image.shape[1:]) != (heights[row], widths[row]):
                failed[row] = (
                    f"decode: decoded {image.shape[2]}x{image.shape[1]}, the header said {widths[row]}x{heights[row]}"
                )
                continue
            pixels = self._rescale(image)
            _paste(canvas[row], pixels, int(tops[row]), int(lefts[row]))
        for row in np.flatnonzero(~jpeg).tolist():
            if len(payloads[row]):
                size = target_size(int(heights[row]), int(widths[row]), self.spec)
                pixels = torch.from_numpy(np.frombuffer(payloads[row], np.uint8).reshape(*size, 3).copy())
                _paste(canvas[row], pixels.to(self.device), int(tops[row]), int(lefts[row]))
        return canvas, failed

    def batch(self, columns: dict[str, np.ndarray]) -> tuple[FrameBatch, dict[int, str]]:
        """``build``'s canvases with the columns' geometry, as the detector takes them."""
        canvases, failed = self.build(columns)
        return frame_batch({**columns, "image": canvases}), failed

    def _decode(self, payloads: Sequence[bytes]) -> list[torch.Tensor | str]:
        """(3, H, W) RGB of each JPEG, or its error message: all in one device call; when that fails, each alone,
        and one the device cannot decode on the CPU."""
        if not payloads:
            return []
        if self.device.type != "cpu":
            try:
                return list(decode_jpeg(list(payloads), mode="RGB", device=self.device))
            except Exception:  # nvJPEG refuses the batch as a whole; each JPEG alone says which
                pass
        return [self._decode_one(data) for data in payloads]

    def _decode_one(self, data: bytes) -> torch.Tensor | str:
        """One JPEG on the device, else by TorchCodec on the CPU, else by OpenCV as ``--decode exact`` decodes it:
        libjpeg-turbo refuses a JPEG whose data is damaged, where OpenCV keeps what it could decode (grey
        below), so a damaged photo is the same row, and the same boxes, whichever way it is decoded."""
        for device in [self.device] if self.device.type == "cpu" else [self.device, _CPU]:
            try:
                return cast(torch.Tensor, decode_jpeg(data, mode="RGB", device=device)).to(self.device)
            except Exception:  # a JPEG this decoder cannot take: the next one
                pass
        try:  # the decode stage has checked the header against --max-image-pixels already
            image = decode_for(data, None, max_pixels=sys.maxsize).image
        except DecodeError as exc:
            return f"decode: {exc}"
        except Exception as exc:  # OpenCV raises cv2.error and others for hostile files
            return f"decode: {one_line(exc)}"
        return torch.from_numpy(image).to(self.device).permute(2, 0, 1)

    def _rescale(self, image: torch.Tensor) -> torch.Tensor:
        """(3, H, W) RGB → (h, w, 3) in the model's channel order, rescaled into ``spec.fit`` as OpenCV does."""
        pixels = image.permute(1, 2, 0)  # decoders keep pixels interleaved: this is the layout in memory
        size = target_size(pixels.shape[0], pixels.shape[1], self.spec)
        if tuple(pixels.shape[:2]) != size:
            pixels = resize_linear(pixels, size)
        return pixels.flip(-1) if self.spec.bgr else pixels


def _paste(canvas: torch.Tensor, pixels: torch.Tensor, top: int, left: int) -> None:
    canvas[top : top + pixels.shape[0], left : left + pixels.shape[1]] = pixels
