"""Which files the job answers, by extension: the job plans images and videos and skips the rest, and readers of
its output tell a video's frames from images the same way."""

from __future__ import annotations

import posixpath

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm"})


def media_kind(uri: str) -> str:
    """``image``, ``video``, or the reason a file is not planned (``not media``)."""
    ext = posixpath.splitext(uri)[1].lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    return "not media"
