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


LARGE_SCALE = 6.3
"""640x480 COCO photos upscaled to 4032x3024 (12.2 MP), a phone camera's size."""
ORIENTATIONS = (1, 3, 6, 8)
"""EXIF orientations a camera writes: upright, upside down, and the two quarter turns of portrait shots."""


def large_photos(folder: Path, photos: list[Path], orientations: tuple[int, ...] = ORIENTATIONS) -> list[Path]:
    """Camera-sized JPEGs made from ``photos`` (bicubic upscale, quality 92), the i-th stored turned so that its
    EXIF orientation ``orientations[i % len]`` shows it upright: what a viewer and the job display is the
    upscaled photo itself."""
    import cv2
    from PIL import Image

    stored_turn = {1: None, 3: cv2.ROTATE_180, 6: cv2.ROTATE_90_COUNTERCLOCKWISE, 8: cv2.ROTATE_90_CLOCKWISE}
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for i, photo in enumerate(photos):
        orientation = orientations[i % len(orientations)]
        big = cv2.resize(cv2.imread(str(photo)), None, fx=LARGE_SCALE, fy=LARGE_SCALE, interpolation=cv2.INTER_CUBIC)
        turn = stored_turn[orientation]
        stored = big if turn is None else cv2.rotate(big, turn)
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = folder / f"large-{orientation}-{photo.name}"
        Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB)).save(path, "JPEG", quality=92, exif=exif.tobytes())
        made.append(path)
    return made
