"""What the benchmark scripts share: test inputs made from a folder of photos, and weights as a file."""

from __future__ import annotations

import shutil
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


def image_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def copied_images(paths: list[Path], folder: Path, copies: int) -> Path:
    """``copies`` copies of the photos under ``folder`` (distinct files, so the job sees distinct inputs)."""
    for c in range(copies):
        (folder / str(c)).mkdir(parents=True)
        for p in paths:
            shutil.copy(p, folder / str(c) / p.name)
    return folder


def weights_file(weights: str, model_name: str, folder: Path) -> str:
    """A checkpoint path the job can read: ``weights`` itself, or for ``random`` a seeded model saved in ``folder``."""
    if weights != "random":
        return weights
    import torch

    from workers.weights import load_weights

    path = folder / "random.pth"
    torch.save(load_weights("random", model_name).state_dict, path)
    return str(path)
