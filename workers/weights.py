"""Find, read and unpack YOLO-NAS weights: super-gradients checkpoints, bare state dicts, safetensors, or ``coco``.

Weights are read once, on the driver, into a ``Weights`` value that travels to every model actor through the
object store: cluster nodes need not see the driver's files, a checkpoint is fetched and hashed once, and a bad
file fails the run before any actor starts. Checkpoints load with ``weights_only=True`` (no pickled code runs)
unless the user trusts the file; a safetensors file holds no code at all, so it loads the same either way.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import fsspec
import safetensors.torch
import torch

from workers.errors import one_line
from workers.files import write_atomic

HF_COCO_REPO = "CondadosAI/detectors"
HF_COCO_FILES = {
    "yolo_nas_s": "yolo-nas-s.safetensors",
    "yolo_nas_m": "yolo-nas-m.safetensors",
    "yolo_nas_l": "yolo-nas-l.safetensors",
}
"""Deci's COCO checkpoints as safetensors on the Hugging Face hub, keyed as super-gradients' own state dicts.

The names are the ``modern-yolonas`` project's (github.com/CondadosAI/modern-yolonas, ``src/modern_yolonas/
weights.py``: ``HF_REPO_ID`` and ``WEIGHT_FILES``). Its ``examples/parity_check.py`` loads these files straight into
super-gradients' ``models.get(name, num_classes=80)`` with no missing or unexpected key (921 tensors for yolo_nas_s,
as in super-gradients' state dict), so no key needs renaming here."""

YOLONAS_LICENSE = (
    "Deci's pretrained YOLO-NAS COCO weights, under Deci's YOLO-NAS License: no commercial use (production "
    "included) without Deci's agreement; https://github.com/Deci-AI/super-gradients/blob/master/LICENSE.YOLONAS.md"
)
"""Shown and recorded wherever the COCO weights are used: their licence is not the code's. super-gradients logs the
same link when it downloads them, and the safetensors mirror keeps that licence."""

SAFETENSORS_KEY = "safetensors"
"""``Weights.checkpoint_key`` of a safetensors file: its tensors are the state dict, with no checkpoint around."""


class WeightsError(ValueError):
    """The weights cannot be found, read, or do not fit the model; the message says what to do."""


@dataclass(frozen=True)
class Weights:
    """A model's parameters and what its checkpoint says about how it was trained."""

    state_dict: dict[str, torch.Tensor]
    sha256: str
    source: str
    """Where the bytes came from (a path, a URI or ``coco``), for the run manifest."""
    processing_params: dict[str, Any] | None = None
    checkpoint_key: str = "state_dict"
    """Which part of the file the parameters came from: ``ema_net``, ``net``, a bare ``state_dict`` or the
    tensors of a ``safetensors`` file."""
    class_names: tuple[str, ...] | None = field(default=None)
    license: str | None = None
    """A licence notice to show and record with the results: Deci's, for the COCO weights; ``None`` if unknown."""

    @property
    def num_classes(self) -> int:
        """Classes of the detection head, read from the first head's class predictor."""
        for key, tensor in self.state_dict.items():
            if key.endswith("cls_pred.weight"):
                return int(tensor.shape[0])
        raise WeightsError(f"{self.source}: no YOLO-NAS class head (cls_pred) in these weights")


def load_weights(
    spec: str,
    model_name: str,
    *,
    trust_checkpoint: bool = False,
    read_bytes: Callable[[str], bytes] | None = None,
) -> Weights:
    """Resolve ``--weights``: ``coco``, ``random``, or a file (path or URI) read by ``read_bytes``, else by fsspec.

    A file of the COCO mirror named by its ``hf://`` URI carries the same licence notice as ``coco``."""
    if spec == "coco":
        return coco_weights(model_name, trust_checkpoint=trust_checkpoint)
    if spec == "random":
        return random_weights(model_name)
    weights = read_weights(_read(spec, read_bytes or _read_with_fsspec), spec, trust_checkpoint=trust_checkpoint)
    return replace(weights, license=YOLONAS_LICENSE) if is_coco_mirror(spec) else weights


def coco_cache_path(model_name: str) -> Path:
    """torch hub's cache file for the COCO weights of ``model_name`` (where super-gradients keeps them)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / f"{model_name}_coco.pth"


def coco_mirror_cache_path(model_name: str) -> Path:
    """Where the mirror's COCO weights are kept once downloaded: next to super-gradients' file, as safetensors."""
    return coco_cache_path(model_name).with_suffix(".safetensors")


def cached_coco_weights(model_name: str) -> Path | None:
    """The COCO weights file already on this machine (super-gradients' own first), else ``None``."""
    candidates = (coco_cache_path(model_name), coco_mirror_cache_path(model_name))
    return next((path for path in candidates if path.is_file()), None)


def coco_mirror_uri(model_name: str) -> str:
    """The ``hf://`` URI of ``model_name``'s COCO weights on the Hugging Face mirror."""
    return f"hf://{HF_COCO_REPO}/{HF_COCO_FILES[model_name]}"


def is_coco_mirror(uri: str) -> bool:
    """Whether ``uri`` is a file of the COCO mirror (``hf://[models/]org/repo[@revision]/file``; the hub's
    repository names ignore case)."""
    if not uri.startswith("hf://"):
        return False
    from huggingface_hub import parse_hf_uri
    from huggingface_hub.errors import HfUriError

    try:
        parsed = parse_hf_uri(uri)
    except HfUriError:
        return False
    return parsed.type == "model" and parsed.id.lower() == HF_COCO_REPO.lower()


def coco_weights(model_name: str, *, trust_checkpoint: bool = False) -> Weights:
    """The COCO weights: a cached file, else the Hugging Face mirror's, kept in the cache once it has loaded.

    Deci's own host (``sghub.deci.ai``, super-gradients' download URL) is not tried: it no longer resolves, so it
    could only add a wait before the same failure on a machine that lacks the weights."""
    cached = cached_coco_weights(model_name)
    if cached is not None:
        weights = read_weights(cached.read_bytes(), "coco", trust_checkpoint=trust_checkpoint)
    else:
        data = _download_coco(model_name)
        weights = read_weights(data, "coco")
        _keep(coco_mirror_cache_path(model_name), data)
    return replace(weights, license=YOLONAS_LICENSE)


def _download_coco(model_name: str) -> bytes:
    """The mirror's file for ``model_name``; one ``WeightsError`` line naming what was tried and where a copy goes."""
    if model_name not in HF_COCO_FILES:
        raise WeightsError(f"no COCO weights are published for {model_name}; pass --weights PATH")
    uri = coco_mirror_uri(model_name)
    try:
        return _read(uri, _read_with_fsspec)
    except WeightsError as exc:
        raise WeightsError(
            f"COCO weights for {model_name} are not in torch hub's cache and the Hugging Face mirror failed ({exc}); "
            f"download https://huggingface.co/{HF_COCO_REPO}/resolve/main/{HF_COCO_FILES[model_name]} "
            f"to {coco_mirror_cache_path(model_name)} "
            f"(or super-gradients' {coco_cache_path(model_name).name} at {coco_cache_path(model_name)}), "
            "or pass --weights PATH"
        ) from None


def _keep(path: Path, data: bytes) -> None:
    """Cache downloaded weights whole or not at all; an unwritable cache only means downloading again next run."""
    try:
        write_atomic(path, data)
    except OSError:
        pass


def _read(uri: str, read_bytes: Callable[[str], bytes]) -> bytes:
    """``read_bytes(uri)``, any failure as one ``WeightsError`` line (no traceback, no storage options)."""
    try:
        return read_bytes(uri)
    except FileNotFoundError:
        hint = " (a private or gated Hugging Face repository needs a token: HF_TOKEN)" if uri.startswith("hf:") else ""
        raise WeightsError(f"weights file not found: {uri}{hint}") from None
    except Exception as exc:  # each fsspec backend raises its own types: httpx's for hf://, botocore's for s3://
        raise WeightsError(f"cannot read weights {uri}: {one_line(exc, keep='first')}") from None


def _read_with_fsspec(uri: str) -> bytes:
    """A local path or any fsspec URI (``hf://``, ``s3://``, ``https://``) with its default options."""
    fs, path = fsspec.core.url_to_fs(uri)
    return fs.cat_file(path)


def read_weights(data: bytes, source: str, *, trust_checkpoint: bool = False, map_location: str = "cpu") -> Weights:
    """Unpack weights bytes: a safetensors file, else a torch checkpoint (``ema_net`` preferred over ``net``) or a
    bare state dict."""
    header = _safetensors_header(data)
    if header is not None or source.lower().endswith(".safetensors"):
        state, key, params = _unpack_safetensors(data, source), SAFETENSORS_KEY, _metadata_params(header)
    else:
        state, key, params = _unpack_checkpoint(data, source, trust_checkpoint, map_location)
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise WeightsError(f"{source} contains no tensors")
    names = params.get("class_names") if params else None
    return Weights(
        state_dict=state,
        sha256=hashlib.sha256(data).hexdigest(),
        source=source,
        processing_params=params,
        checkpoint_key=key,
        class_names=tuple(str(n) for n in names) if names else None,
    )


def _unpack_checkpoint(
    data: bytes, source: str, trust_checkpoint: bool, map_location: str
) -> tuple[dict[str, Any], str, dict[str, Any] | None]:
    """A torch file's state dict, where in the file it was, and its checkpoint's ``processing_params``."""
    try:
        loaded = torch.load(io.BytesIO(data), map_location=map_location, weights_only=not trust_checkpoint)
    except Exception as exc:  # torch raises many types for a bad file; all mean "not loadable weights"
        hint = (
            "" if trust_checkpoint else " (if you trust this file and it holds Python objects, add --trust-checkpoint)"
        )
        raise WeightsError(f"cannot load weights from {source}: {one_line(exc, keep='first')}{hint}") from None
    if not isinstance(loaded, dict):
        raise WeightsError(f"{source} holds a {type(loaded).__name__}, not a checkpoint or state dict")
    key = next((k for k in ("ema_net", "net") if isinstance(loaded.get(k), dict)), None)
    if key is None:
        return loaded, "state_dict", None
    params = loaded.get("processing_params")
    return loaded[key], key, params if isinstance(params, dict) else None


def _safetensors_header(data: bytes) -> dict[str, Any] | None:
    """The JSON header of a safetensors file (an 8-byte little-endian length, then a JSON object), or ``None`` when
    ``data`` does not start like one; a torch file starts with a zip or pickle signature instead."""
    length = int.from_bytes(data[:8], "little")
    if len(data) < 10 or length > len(data) - 8 or data[8:9] != b"{":
        return None
    try:
        header = json.loads(data[8 : 8 + length])
    except ValueError:
        return None
    return header if isinstance(header, dict) else None


def _unpack_safetensors(data: bytes, source: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, any failure as one ``WeightsError`` line."""
    try:
        return safetensors.torch.load(data)
    except Exception as exc:  # safetensors' own error type for a damaged file, torch's for an unknown dtype
        raise WeightsError(f"cannot load weights from {source}: {one_line(exc, keep='first')}") from None


def _metadata_params(header: dict[str, Any] | None) -> dict[str, Any] | None:
    """super-gradients' ``processing_params`` (class names, preprocessing) when the file's metadata keeps them as a
    JSON object under that name, as a converted checkpoint may; anything else there is some other tool's business.
    The mirror's files carry none."""
    metadata = (header or {}).get("__metadata__")
    text = metadata.get("processing_params") if isinstance(metadata, dict) else None
    try:
        params = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return params if isinstance(params, dict) else None


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
