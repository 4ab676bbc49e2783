"""The probe's kept fit (``tests/data/probe/``) is the one its code makes, and is applied only where it reproduces
the fitted model: otherwise the suite fits afresh rather than test against other weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support import probe_weights


def test_the_kept_fit_is_current_with_the_fitting_code() -> None:
    stored = torch.load(probe_weights.kept_fit("yolo_nas_s", 0), weights_only=True)
    assert stored["fit_digest"] == probe_weights.fit_digest(), (
        "tests/support/probe_fit.py changed: run `python -m tests.support.probe_weights` and commit tests/data/probe/"
    )


def _keep(path: Path, changed: dict[str, torch.Tensor], fitted: dict[str, torch.Tensor]) -> None:
    digests = {"fit_digest": probe_weights.fit_digest(), "state_digest": probe_weights._state_digest(fitted)}
    torch.save({**digests, "changed": changed}, path)


def test_a_kept_fit_is_applied_only_where_it_gives_the_fitted_model(tmp_path: Path) -> None:
    seeded = {"conv.weight": torch.zeros(2, 2), "norm.running_var": torch.ones(2)}
    changed = {"norm.running_var": torch.tensor([0.5, 2.0])}
    kept = tmp_path / "fit.pt"
    _keep(kept, changed, {**seeded, **changed})
    state = probe_weights._with_kept_fit(seeded, kept)
    assert state is not None and torch.equal(state["norm.running_var"], changed["norm.running_var"])

    other_start = {**seeded, "conv.weight": torch.ones(2, 2)}  # another library's seeded model
    with pytest.warns(UserWarning, match="does not reproduce the fitted model"):
        assert probe_weights._with_kept_fit(other_start, kept) is None
    assert probe_weights._with_kept_fit(seeded, tmp_path / "missing.pt") is None
