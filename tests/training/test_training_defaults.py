"""escnet-train's defaults do not surprise: a time budget drives the schedule, a resumed run gets
its --time-limit afresh, validation is on by default, every option has help, and a log or CI
file gets a plain line per log step."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from escnet.data import SyntheticConfig, generate
from escnet.training.cli import app
from escnet.training.config import TrainConfig


@pytest.fixture(scope="module")
def syn_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn"), SyntheticConfig(num_train=8, num_val=2, size=64, seed=0))


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _train(data: Path, out: Path, *args: str):
    base = ["--data", str(data), "--out", str(out), "--preset", "tiny", "--batch-size", "1", "--threads", "1"]
    return CliRunner().invoke(app, [*base, "--log-every", "1", *args])


def test_schedule_follows_the_time_budget_when_one_is_given():
    assert TrainConfig(data="d", out="o").schedule == "steps"
    assert TrainConfig(data="d", out="o", time_limit=60.0).schedule == "time"
    assert TrainConfig(data="d", out="o", time_limit=60.0, lr_schedule="steps").schedule == "steps"
    defaults = TrainConfig(data="d", out="o")
    assert defaults.val_every > 0 and defaults.val_limit <= 50  # validation on, on a small held-out split


def test_a_spent_time_budget_has_decayed_the_rate_to_zero(syn_data, tmp_path):
    # With --time-limit the cosine runs over the time budget (auto schedule), not over --iters: once the
    # budget is spent (after the first step here) the rate is 0, where the step schedule would still be
    # at 85% of it (step 1 of 4).
    out = tmp_path / "run"
    r = _train(syn_data, out, "--iters", "4", "--lr", "1e-3", "--val-every", "0", "--time-limit", "1e-3")
    assert r.exit_code == 0 and "done: step 1," in r.output, r.output
    assert _records(out)[0]["lr_head"] == pytest.approx(0.0, abs=1e-12)
    assert "lr schedule time" in r.stderr


def test_plain_progress_lines_and_validation_by_default(syn_data, tmp_path):
    out = tmp_path / "run"
    r = _train(syn_data, out, "--iters", "2", "--val-limit", "2")
    assert r.exit_code == 0, r.output
    lines = [line for line in r.stderr.splitlines() if line.startswith("train [")]
    assert len(lines) == 2 and re.match(r"train \[ *\d+\.\d s\] step 2/2 loss \d\.\d{4} lr \S+, ETA", lines[-1])
    assert "lr schedule steps" in r.stderr
    assert [x["step"] for x in _records(out) if x["kind"] == "val"] == [2]  # validated at the end by default


def test_resume_with_a_time_limit_counts_only_this_invocation(syn_data, tmp_path):
    out = tmp_path / "run"
    # A time-budget run (its schedule decays over --time-limit), stopped by --iters after 6 steps.
    assert _train(syn_data, out, "--iters", "6", "--val-every", "0", "--time-limit", "3600").exit_code == 0
    spent = max(x["elapsed_s"] for x in _records(out))
    # The run has spent `spent` s on 6 steps (with the warm-up). A limit of 0.9 x that, counted over the
    # whole run, is spent already: it would stop right after step 7. Counted over this invocation it
    # leaves time for about 5 steps (its own warm-up included); 2 of them are enough to tell.
    limit = f"{0.9 * spent:.3f}"
    r = _train(syn_data, out, "--iters", "12", "--val-every", "0", "--resume", "--time-limit", limit)
    assert r.exit_code == 0, r.output
    assert "resuming at step 6" in r.stderr
    assert int(re.search(r"done: step (\d+),", r.output)[1]) >= 8, r.output


def test_every_option_has_help():
    import click
    import typer.main

    command = typer.main.get_command(app)
    missing = [p.name for p in command.params if isinstance(p, click.Option) and not (p.help or "").strip()]
    assert missing == []
    for name in ("data", "out"):
        assert next(p for p in command.params if p.name == name).help.startswith("Required.")


def test_resume_compares_the_schedule_in_force():
    from escnet.training.config import resume_differences

    old = TrainConfig(data="d", out="o", lr_schedule="steps")  # saved before "auto" existed
    assert resume_differences(old, TrainConfig(data="d", out="o")) == []
    timed = TrainConfig(data="d", out="o", time_limit=60.0)
    assert resume_differences(timed, TrainConfig(data="d", out="o", time_limit=30.0)) == []
    (diff,) = resume_differences(timed, TrainConfig(data="d", out="o"))
    assert "time -> steps" in diff and "--time-limit" in diff
