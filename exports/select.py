"""What an export keeps and where each frame goes: ``--classes``, ``--split``, and how the CLI spells them.

Pure functions of the options and the model's class names, applied by the reader in one place, so every format
sees the same selection and no format re-implements it. ``--min-score`` is a plain comparison the reader does in
SQL.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from common.errors import UsageError
from exports.records import Categories

SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
"""A split names folders (``images/<split>``, ``instances_<split>.json``), so it is a plain word."""
RESERVED_SPLIT_NAMES = frozenset({"path", "names", "nc", "download"})
"""Keys of Ultralytics' ``data.yaml`` that are not splits: a split of that name would overwrite one."""
SHARE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ClassMap:
    """The output's categories and, per model class id, the category its boxes get (None: dropped)."""

    categories: Categories
    category_of: tuple[int | None, ...]

    @property
    def kept_class_ids(self) -> list[int]:
        """Model class ids whose boxes are exported (what the reader's query keeps)."""
        return [class_id for class_id, category in enumerate(self.category_of) if category is not None]


def class_map(model_names: Sequence[str], classes: dict[str, str | None] | None) -> ClassMap:
    """Keep, rename or merge the model's classes as ``--classes`` says (None: keep all, as the model names them).

    Output categories are numbered in the order ``classes`` first names them, so ``person,car=vehicle,
    truck=vehicle`` gives ``person`` 0 and ``vehicle`` 1. A name the model does not have is a usage error,
    never a silently empty category."""
    if classes is None:
        return ClassMap(Categories(tuple(model_names)), tuple(range(len(model_names))))
    unknown = [name for name in classes if name not in model_names]
    if unknown:
        examples = ", ".join(model_names[:5]) + (", …" if len(model_names) > 5 else "")
        raise UsageError(
            f"--classes: {', '.join(repr(n) for n in unknown)} not among the model's {len(model_names)} classes "
            f"({examples})"
        )
    outputs: list[str] = []
    category_of: list[int | None] = [None] * len(model_names)
    for name, renamed in classes.items():
        output = renamed or name
        if output not in outputs:
            outputs.append(output)
        for class_id, model_name in enumerate(model_names):
            if model_name == name:
                category_of[class_id] = outputs.index(output)
    return ClassMap(Categories(tuple(outputs)), tuple(category_of))


class Splitter:
    """``--split``: each source URI to a split, by a hash of the URI alone.

    The same URI always lands in the same split, whatever else the export holds or in which order, so a later
    export of a grown output keeps earlier frames where they were; every frame of a video shares its URI, so a
    video never straddles train and val (near-identical neighbouring frames would leak between them)."""

    def __init__(self, shares: dict[str, float] | None) -> None:
        self.names: tuple[str, ...] = tuple(check_split(shares)) if shares else ()
        self._bounds: list[float] = []
        total = 0.0
        for name in self.names:
            total += shares[name] if shares else 0.0
            self._bounds.append(total)
        self._last: tuple[str, str | None] = ("", None)

    def __call__(self, uri: str) -> str | None:
        if not self.names:
            return None
        if self._last[0] == uri:  # the frames of a video come in a row
            return self._last[1]
        point = uniform_hash(uri)
        split = next((n for n, bound in zip(self.names, self._bounds) if point < bound), self.names[-1])
        self._last = (uri, split)
        return split


def uniform_hash(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (SHA-1's first 8 bytes): stable across processes and versions,
    unlike Python's ``hash``."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big") / 2**64


def check_split(shares: dict[str, float]) -> dict[str, float]:
    """``shares`` if they can split an export: plain names, positive shares summing to 1."""
    for name, share in shares.items():
        if not SPLIT_NAME.fullmatch(name) or name in RESERVED_SPLIT_NAMES:
            raise UsageError(f"--split: {name!r} cannot name a split (use letters, digits, '_', '-'; no data.yaml key)")
        if not share > 0:
            raise UsageError(f"--split: the share of {name!r} must be above 0, not {share}")
    if abs(sum(shares.values()) - 1) > SHARE_TOLERANCE:
        raise UsageError(f"--split: shares must sum to 1, not {sum(shares.values()):g}")
    return shares


def parse_split(text: str) -> dict[str, float]:
    """``train=0.8,val=0.2`` as a dict in the order given (the order the shares are laid out in [0, 1))."""
    shares: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        try:
            share = float(value)
        except ValueError:
            share = float("nan")
        if not sep or share != share or name in shares:
            raise UsageError(f"--split: expected NAME=SHARE,… with each name once (train=0.8,val=0.2), got {text!r}")
        shares[name] = share
    return check_split(shares)


def parse_classes(text: str, read: Callable[[str], bytes] | None = None) -> dict[str, str | None]:
    """``--classes``: ``person,car=vehicle,truck=vehicle`` (keep, rename, merge), or a ``.json`` file holding a
    list of names to keep or an object ``{"car": "vehicle", "person": null}`` (null keeps the name).

    ``read(path) -> bytes`` reads the file (the CLI passes the project's storage, so it may be in S3 too)."""
    if text.endswith(".json"):
        try:
            data = json.loads(read(text) if read else Path(text).read_bytes())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--classes: cannot read {text}: {exc}") from None
        if isinstance(data, list) and all(isinstance(n, str) for n in data):
            return dict.fromkeys(data)
        if isinstance(data, dict) and all(isinstance(v, (str, type(None))) for v in data.values()):
            return {str(k): v for k, v in data.items()}
        raise UsageError(f"--classes: {text} must hold a list of class names or an object of name: new name")
    mapping: dict[str, str | None] = {}
    for part in text.split(","):
        name, sep, renamed = (s.strip() for s in part.partition("="))
        if not name or (sep and not renamed):
            raise UsageError(f"--classes: expected NAME or NAME=NEW,… (person,car=vehicle), got {text!r}")
        mapping[name] = renamed or None
    return mapping
