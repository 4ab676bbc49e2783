"""The driver's side of the Ray Data pipeline (``jobs/pipeline/dataset.py``), on the suite's real Ray."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from jobs.pipeline.dataset import run_pipeline, work_blocks

WAIT_S = 20


class _SecondBatchWaitsForTheDriver:
    """A model stage whose second batch waits until the driver has seen the first batch's result."""

    def __init__(self, flag: str) -> None:
        self.flag = Path(flag)
        self.calls = 0

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        self.calls += 1
        if self.calls == 2:
            deadline = time.monotonic() + WAIT_S
            while not self.flag.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return pa.table(
            {"call": [self.calls] * len(batch["id"]), "driver_had_first": [self.flag.exists()] * len(batch["id"])}
        )


class _FlaggingConsumer:
    def __init__(self, flag: Path) -> None:
        self.flag = flag
        self.tables: list[pa.Table] = []

    def add(self, results: pa.Table) -> None:
        self.flag.touch()
        self.tables.append(results)

    def finish(self) -> None:
        """Nothing is being published here."""


def test_each_result_reaches_the_driver_as_soon_as_its_batch_is_done(ray_cluster, tmp_path: Path) -> None:
    """The first result, and each shard's commit, must not wait for the next model batch: with Ray Data's
    default prefetching the driver's iterator held every block back until the one after it had arrived."""
    flag = tmp_path / "driver-has-a-result"
    dataset = ray_cluster.data.from_blocks(
        [pa.table({"id": np.arange(i * 4, i * 4 + 4)}) for i in range(3)]
    ).map_batches(
        _SecondBatchWaitsForTheDriver,
        batch_size=4,
        batch_format="numpy",
        compute=ray_cluster.data.ActorPoolStrategy(size=1),
        fn_constructor_kwargs={"flag": str(flag)},
        num_cpus=0,
    )
    consumer = _FlaggingConsumer(flag)
    run_pipeline(dataset, consumer)
    results = pa.concat_tables(consumer.tables)
    assert sorted(results.column("call").to_pylist()) == [1] * 4 + [2] * 4 + [3] * 4
    second = results.filter(pa.compute.equal(results.column("call"), 2))
    assert all(second.column("driver_had_first").to_pylist()), "the first batch's result reached the driver late"


def test_photos_go_to_decode_tasks_in_blocks_and_each_video_range_alone() -> None:
    kinds = ["image"] * 5 + ["video"] * 2 + ["image"] * 2 + ["video"]
    pending = pa.table({"item": list(range(len(kinds))), "kind": kinds})

    blocks = work_blocks(pending, photos=2)

    assert [block.column("item").to_pylist() for block in blocks] == [[0, 1], [2, 3], [4], [5], [6], [7, 8], [9]]
    assert work_blocks(pending.slice(0, 0), photos=2) == []
