"""Which frames each model actor is running, so that an input that kills the model's process is found and
answered with an error row, instead of killing every actor it meets for ever.

A native crash (a segfault in a kernel, a decoder gone wrong) or an out-of-memory kill takes the actor's process
with it; Ray restarts the actor and redoes its batch, without limit, which is right for a lost node and endless
for a poison input. So each model actor tells ``begin`` the frames of a batch before running it. When Ray redoes
a batch, its frames are still marked as running under the process that died: ``begin`` counts that death against
each of them and tells the new actor, which then runs those frames one at a time. A frame whose process died
while running it alone ``POISON_DEATHS`` times is poison: the model stage gives it an error row and runs the rest.
A node lost mid-batch costs that batch one slower, frame-by-frame rerun.

The registry is a small actor on the driver's node (it lives as long as the job's driver); its state is a few
integers per frame in flight. Losing it (a restart) loses only the counts, never a frame.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections import Counter
from dataclasses import dataclass
from typing import cast

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

POISON_DEATHS = 2
"""Deaths of a process running one frame alone that make the frame poison: one could be the node's fault."""


@dataclass(frozen=True)
class Suspect:
    """A frame that was in flight when a model process died: how often, and how often it ran alone then."""

    deaths: int
    alone: int

    @property
    def poison(self) -> bool:
        return self.alone >= POISON_DEATHS


class InFlight:
    """The registry (a Ray actor made by ``start_registry``)."""

    def __init__(self) -> None:
        self._running: dict[str, list[int]] = {}
        self._owner: dict[int, str] = {}
        self._deaths: Counter[int] = Counter()
        self._alone: Counter[int] = Counter()

    def begin(self, process: str, frames: list[int]) -> dict[int, Suspect]:
        """``process`` starts running ``frames`` (and has ended its previous batch); returns those of them that
        were in flight in a process that died since."""
        self.end(process)
        dead = {owner for frame in frames if (owner := self._owner.get(frame)) not in (None, process)}
        for owner in dead:
            lost = self._running.pop(owner)
            for frame in lost:
                self._deaths[frame] += 1
                self._alone[frame] += len(lost) == 1
                if self._owner.get(frame) == owner:
                    del self._owner[frame]
        self._running[process] = frames
        self._owner.update(dict.fromkeys(frames, process))
        return {f: Suspect(self._deaths[f], self._alone[f]) for f in frames if self._deaths[f]}

    def end(self, process: str) -> None:
        for frame in self._running.pop(process, []):
            if self._owner.get(frame) == process:
                del self._owner[frame]


def start_registry() -> ray.actor.ActorHandle:
    """A fresh registry on this (the driver's) node, for one pipeline run."""
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
    options = {"num_cpus": 0, "max_restarts": -1, "max_task_retries": -1, "scheduling_strategy": here}
    return cast(ray.actor.ActorHandle, ray.remote(InFlight).options(**options).remote())


def process_name() -> str:
    """A name for this process, never reused by a restarted actor (which keeps its actor id)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
