"""Find, read and unpack YOLO-NAS weights: super-gradients checkpoints, bare state dicts, or ``coco``.

Weights are read once, on the driver, into a ``Weights`` value that travels to every model actor through the
object store: cluster nodes need not see the driver's files, a checkpoint is fetched and hashed once, and a bad
file fails the run before any actor starts. Checkpoints load with ``weights_only=True`` (no pickled code runs)
unless the user trusts the file.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

COCO_URL = "https://sghub.deci.ai/models/{model}_coco.pth"
"""Where super-gradients downloads COCO weights from; torch hub's cache keeps them as ``{model}_coco.pth``."""


class WeightsError(ValueError):
    """The weights cannot be found, read, or do not fit the model; the message says what to do."""


@dataclass(frozen=True)
class Weights:
    """A model's parameters and what its checkpoint says about how it was trained."""

    state_dict: dict[str, torch.Tensor]
    sha256: str
    source: str
    """Where the bytes came from (a path or ``coco``), for the run manifest."""
    processing_params: dict[str, Any] | None = None
    checkpoint_key: str = "state_dict"
    """Which part of the file the parameters came from: ``ema_net``, ``net`` or a bare ``state_dict``."""
    class_names: tuple[str, ...] | None = field(default=None)

    @property
    def num_classes(self) -> int:
        """Classes of the detection head, read from the first head's class predictor."""
        for key, tensor in self.state_dict.items():
            if key.endswith("cls_pred.weight"):
                return int(tensor.shape[0])
        raise WeightsError(f"{self.source}: no YOLO-NAS class head (cls_pred) in these weights")


def coco_cache_path(model_name: str) -> Path:
    """torch hub's cache file for the COCO weights of ``model_name`` (where super-gradients keeps them)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{model_name}_coco.pth"


def fetch_coco_weights(model_name: str, timeout_s: float = 30.0) -> Path:
    """Return the cached COCO checkpoint, downloading it once if the host answers."""
    target = coco_cache_path(model_name)
    if target.is_file():
        return target
    url = COCO_URL.format(model=model_name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with (
            urllib.request.urlopen(url, timeout=timeout_s) as response,
            tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as partial,
        ):
            shutil.copyfileobj(response, partial)
        os.replace(partial.name, target)
    except OSError as exc:
        raise WeightsError(
            f"COCO weights for {model_name} are not cached and could not be downloaded ({type(exc).__name__}); "
            f"put {model_name}_coco.pth at {target} or pass --weights PATH"
        ) from None
    return target


def read_weights(data: bytes, source: str, *, trust_checkpoint: bool = False, map_location: str = "cpu") -> Weights:
    """Unpack checkpoint bytes: ``ema_net`` preferred over ``net``, else the file is the state dict itself."""
    try:
        loaded = torch.load(io.BytesIO(data), map_location=map_location, weights_only=not trust_checkpoint)
    except Exception as exc:  # torch raises many types for a bad file; all mean "not loadable weights"
        hint = (
            "" if trust_checkpoint else " (if you trust this file and it holds Python objects, add --trust-checkpoint)"
        )
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"cannot load weights from {source}: {first_line}{hint}") from None
    if not isinstance(loaded, dict):
        raise WeightsError(f"{source} holds a {type(loaded).__name__}, not a checkpoint or state dict")
    key = next((k for k in ("ema_net", "net") if isinstance(loaded.get(k), dict)), None)
    state = loaded[key] if key else loaded
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{source} contains no tensors")
    params = loaded.get("processing_params") if key else None
    names = params.get("class_names") if isinstance(params, dict) else None
    return Weights(
        state_dict=state,
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
        processing_params=params if isinstance(params, dict) else None,
        checkpoint_key=key or "state_dict",
        class_names=tuple(str(n) for n in names) if names else None,
    )


def load_weights(
    spec: str,
    model_name: str,
    *,
    trust_checkpoint: bool = False,
    read_bytes: Callable[[str], bytes] | None = None,
) -> Weights:
    """Resolve ``--weights``: ``coco`` (torch hub cache, else download) or a path read by ``read_bytes``."""
    if spec == "coco":
        path = fetch_coco_weights(model_name)
        return read_weights(path.read_bytes(), "coco", trust_checkpoint=trust_checkpoint)
    if spec == "random":
        return random_weights(model_name)
    reader = read_bytes or (lambda p: Path(p).read_bytes())
    try:
        data = reader(spec)
    except FileNotFoundError:
        raise WeightsError(f"weights file not found: {spec}") from None
    except (OSError, ValueError) as exc:
        raise WeightsError(f"cannot read weights {spec}: {exc}") from None
    return read_weights(data, spec, trust_checkpoint=trust_checkpoint)


def random_weights(model_name: str, seed: int = 0) -> Weights:
    """Seeded random initialisation: for smoke runs only (it scores every box about 0.01, so finds nothing)."""
    from workers.quiet import super_gradients_models

    torch.manual_seed(seed)
    model = super_gradients_models().get(model_name, num_classes=80)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return read_weights(buffer.getvalue(), f"random (seed {seed})")


def read_class_names(text: str, source: str) -> tuple[str, ...]:
    """Parse a class-names file: a JSON list, or one name per line."""
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            names = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{source}: not a JSON list of class names ({exc.msg})") from None
    else:
        names = [line.strip() for line in stripped.splitlines() if line.strip()]
    if not names or not all(isinstance(n, str) for n in names):
        raise WeightsError(f"{source}: expected a list of class names")
    return tuple(names)
