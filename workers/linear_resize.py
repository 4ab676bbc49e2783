"""OpenCV's bilinear resize (``INTER_LINEAR`` on 8-bit images) in torch, so it runs on the model's device.

Boxes follow the pixels closely (a model near its score threshold keeps or drops a box on a one-level change), so
the device's letterbox reproduces OpenCV's own arithmetic rather than a float bilinear: coefficients rounded to
11 bits, a horizontal pass in integers, and the vertical pass rounded as OpenCV's vectorised loop rounds it
(``VResizeLinearVec_32s8u``: each product shifted down before the sum). On a downscale, the case of every photo
larger than the model's input, the result is OpenCV's bit for bit; on an upscale some pixels differ by one level
(tested), where OpenCV takes another path.
"""

from __future__ import annotations

import torch

_BITS = 11
"""OpenCV's ``INTER_RESIZE_COEF_BITS``."""


def resize_linear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(H, W, C) uint8 → (h, w, C) uint8 for ``size`` = (h, w), as ``cv2.resize(..., INTER_LINEAR)`` gives it.
    Channels last, as decoders lay pixels out: whole rows are then contiguous to select."""
    height, width, _ = image.shape
    x0, x1, a0, a1 = _taps(width, size[1], image.device)
    y0, y1, b0, b1 = _taps(height, size[0], image.device)
    # Only the source rows some output row reads (on a downscale, a few of them) go through the horizontal pass.
    used = torch.unique(torch.cat([y0, y1]))
    pixels = image.index_select(0, used).to(torch.int32)
    rows = pixels.index_select(1, x0) * a0[:, None] + pixels.index_select(1, x1) * a1[:, None]  # scaled by 2**11
    top = rows.index_select(0, torch.searchsorted(used, y0)) >> 4
    bottom = rows.index_select(0, torch.searchsorted(used, y1)) >> 4
    summed = ((b0[:, None, None] * top) >> 16) + ((b1[:, None, None] * bottom) >> 16)
    return ((summed + 2) >> 2).clamp_(0, 255).to(torch.uint8)


def _taps(source: int, target: int, device: torch.device) -> tuple[torch.Tensor, ...]:
    """For each target index: the two source indices and their 11-bit weights, computed in float32 as OpenCV does
    (half-pixel centres; an index past either edge is clamped to it, with the whole weight)."""
    centre = ((torch.arange(target, dtype=torch.float64) + 0.5) * (source / target) - 0.5).to(torch.float32)
    first = torch.floor(centre)
    fraction = centre - first
    first = first.to(torch.int64)
    edge = (first < 0) | (first >= source - 1)
    fraction[edge] = 0
    first = first.clamp(0, source - 1)
    second = (first + 1).clamp(max=source - 1)
    scale = float(1 << _BITS)
    weight0 = torch.round((1 - fraction) * scale).to(torch.int32)
    weight1 = torch.round(fraction * scale).to(torch.int32)
    return tuple(t.to(device) for t in (first, second, weight0, weight1))
