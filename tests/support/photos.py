"""Input folders of distinct files made from the coco-tiny photos, for tests that need more inputs than it has."""

from __future__ import annotations

from pathlib import Path


def numbered_photos(folder: Path, photos: list[Path], count: int) -> Path:
    """``count`` files ``NN-<photo name>`` in ``folder``, cycling through ``photos``."""
    folder.mkdir(parents=True)
    for i in range(count):
        image = photos[i % len(photos)]
        (folder / f"{i:02d}-{image.name}").write_bytes(image.read_bytes())
    return folder
