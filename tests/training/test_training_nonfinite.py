"""A training run whose loss, gradients or weights go non-finite stops with one line and saves nothing bad."""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from escnet.data import SyntheticConfig, generate
from escnet.training.config import TrainConfig


@pytest.fixture(scope="module")
def syn_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn"), SyntheticConfig(num_train=4, num_val=0, size=96, seed=0))


def _cli(*args: str):
    from escnet.training.cli import app

    return CliRunner().invoke(app, list(args))


def _base(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--out", str(out), "--preset", "tiny", "--batch-size", "1", "--threads", "1",
        "--no-progress", "--log-every", "1", *extra,
    ]  # fmt: skip


def _error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "error" in line.lower()]


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_before_any_work(syn_data: Path, tmp_path: Path, value: str) -> None:
    out = tmp_path / "run"
    r = _cli(*_base(syn_data, out, "--iters", "2", "--lr", value))
    assert r.exit_code == 2, r.output
    assert _error_lines(r.output) == [f"error: lr must be a finite number, got {float(value)}"], r.output
    assert "Traceback" not in r.output and not out.exists()


def test_a_run_that_diverges_stops_and_writes_no_model(syn_data: Path, tmp_path: Path) -> None:
    """A real divergence (a learning rate of 1e30): the weights overflow, the next loss is NaN."""
    out = tmp_path / "run"
    r = _cli(*_base(syn_data, out, "--iters", "6", "--ckpt-every", "1", "--lr", "1e30"))
    assert r.exit_code == 2, r.output
    errors = _error_lines(r.output)
    assert len(errors) == 1 and "training diverged" in errors[0] and "Traceback" not in r.output, r.output
    assert "done" not in r.output
    assert not (out / "model.safetensors").exists()
    ckpt = out / "checkpoints" / "last.pt"
    if ckpt.exists():  # any checkpoint written holds finite weights only
        from escnet.training.state import load_state

        assert all(torch.isfinite(v).all() for v in load_state(ckpt)["model"].values() if v.is_floating_point())
        assert "the last good checkpoint" in errors[0]


def test_nan_loss_keeps_the_last_good_checkpoint(syn_data: Path, tmp_path: Path, monkeypatch) -> None:
    """Injected: the loss turns NaN at step 4; the checkpoint of step 2 stays, nothing else is saved."""
    import escnet.training.loop as loop
    from escnet.training.state import load_state

    real, calls = loop.segmentation_bce, []

    def nan_at_step_4(*args, **kwargs):
        calls.append(1)
        loss = real(*args, **kwargs)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setattr(loop, "segmentation_bce", nan_at_step_4)
    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(syn_data), out=str(out), preset="tiny", iters=6, batch_size=1, log_every=1, ckpt_every=2,
        val_every=0, threads=1, progress=False,
    )  # fmt: skip
    ckpt = out / "checkpoints" / "last.pt"
    with pytest.raises(loop.TrainingDiverged) as e:
        loop.train(cfg)
    assert str(e.value) == (
        f"loss is nan at step 4: training diverged (try a lower --lr); stopped without saving, "
        f"the last good checkpoint {ckpt} is kept"
    )
    state = load_state(ckpt)
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert not (out / "model.safetensors").exists()
    assert stat.S_IMODE(ckpt.stat().st_mode) == 0o666 & ~_umask()


def test_nan_weights_are_never_saved(syn_data: Path, tmp_path: Path, monkeypatch) -> None:
    """Injected: a step that leaves NaN weights (the loss itself was finite): no checkpoint is written."""
    import escnet.training.loop as loop

    real = loop.build_optimizer

    def poisoned(model, *args, **kwargs):
        optimizer, groups = real(model, *args, **kwargs)

        def poison(*_):
            with torch.no_grad():
                optimizer.param_groups[0]["params"][0].view(-1)[0] = math.nan

        optimizer.register_step_post_hook(poison)
        return optimizer, groups

    monkeypatch.setattr(loop, "build_optimizer", poisoned)
    out = tmp_path / "run"
    cfg = TrainConfig(
        data=str(syn_data), out=str(out), preset="tiny", iters=2, batch_size=1, log_every=1, ckpt_every=1,
        val_every=0, threads=1, progress=False,
    )  # fmt: skip
    with pytest.raises(loop.TrainingDiverged, match="weights hold NaN or Inf at step 1"):
        loop.train(cfg)
    assert not (out / "checkpoints").exists() and not (out / "model.safetensors").exists()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
