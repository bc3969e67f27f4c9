"""Training: the loss, what trains at which rate, a short run, resume after SIGKILL, two-process DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from escnet import build_model
from escnet.data import SyntheticConfig, generate
from escnet.training.config import TrainConfig
from escnet.training.loss import segmentation_bce
from escnet.training.optim import build_optimizer, build_scheduler, cosine_factor

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


@pytest.fixture(scope="module")
def syn_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn"), SyntheticConfig(num_train=16, num_val=4, size=96, seed=0))


def _records(out: Path, kind: str = "train") -> list[dict]:
    lines = (out / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


# -- loss -------------------------------------------------------------------------------------


def test_loss_ignores_255() -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (2, 8, 8), generator=g)
    labels[0, :3] = 255
    labels[1, :, :2] = 255
    loss = segmentation_bce(logits, labels)
    loss.backward()
    ignored = labels == 255  # (B, H, W)
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[ignored] == 0)
    assert torch.all(logits.grad.permute(0, 2, 3, 1)[~ignored] != 0)
    # changing the logits of ignored pixels changes nothing
    other = logits.detach().clone()
    other.permute(0, 2, 3, 1)[ignored] = 50.0
    assert segmentation_bce(other, labels).item() == pytest.approx(loss.item(), abs=1e-7)
    # by hand: mean over valid pixels and all classes
    target = torch.nn.functional.one_hot(labels.clamp(max=3), 4).permute(0, 3, 1, 2).float()
    per = torch.nn.functional.binary_cross_entropy_with_logits(logits.detach(), target, reduction="none")
    manual = per.permute(0, 2, 3, 1)[~ignored].mean()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-6)


def test_loss_resizes_logits_and_rejects_bad_labels() -> None:
    logits = torch.zeros(1, 3, 4, 4)
    assert segmentation_bce(logits, torch.zeros(1, 16, 16, dtype=torch.long)).item() == pytest.approx(0.6931, 1e-3)
    with pytest.raises(ValueError, match="outside 0..2"):
        segmentation_bce(logits, torch.full((1, 16, 16), 3))
    all_ignored = segmentation_bce(logits.requires_grad_(), torch.full((1, 16, 16), 255))
    assert all_ignored.item() == 0.0 and all_ignored.requires_grad


# -- optimiser ------------------------------------------------------------------------------


def test_learning_rate_groups() -> None:
    model = build_model("tiny")
    opt, _ = build_optimizer(model, lr=2e-4, backbone_multiplier=0.01, weight_decay=1e-4)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["head"]["lr"] == pytest.approx(2e-4)
    assert groups["clip"]["lr"] == pytest.approx(2e-6) and groups["sam"]["lr"] == pytest.approx(2e-6)
    assert all(g["weight_decay"] == 1e-4 for g in opt.param_groups)
    names = {id(p): n for n, p in model.named_parameters()}
    in_group = {g["name"]: {names[id(p)] for p in g["params"]} for g in opt.param_groups}
    clip = in_group["clip"]
    assert clip and all(".attn.in_proj_" in n for n in clip)
    n_blocks = model.config.clip.vision_layers + model.config.clip.text_layers
    assert len(clip) == 2 * n_blocks  # weight and bias of every attention, both towers
    assert all(".sam." in n for n in in_group["sam"])
    assert not any(n.startswith("clip.") or ".sam." in n for n in in_group["head"])
    grouped = set().union(*in_group.values())
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert grouped == trainable
    assert "clip.logit_scale" not in grouped
    assert not any(".final_attn_token_to_image." in n for n in grouped)  # frozen by the model, still frozen


def test_only_q_and_v_of_clip_train() -> None:
    torch.manual_seed(0)
    model = build_model("tiny").train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt, _ = build_optimizer(model, lr=1e-2, backbone_multiplier=1.0, weight_decay=0.1)
    images = torch.randn(2, 3, 128, 128)
    labels = torch.randint(0, 3, (2, 128, 128))
    for _ in range(2):
        loss = segmentation_bce(model(images, ["a", "b", "c"]), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    params = dict(model.named_parameters())
    for name in (
        "clip.visual.transformer.resblocks.0.attn.in_proj_weight",
        "clip.transformer.resblocks.0.attn.in_proj_weight",
    ):
        w = params[name].shape[0] // 3
        old, new = before[name], params[name].detach()
        assert torch.equal(old[w : 2 * w], new[w : 2 * w]), f"{name}: k changed"
        assert not torch.equal(old[:w], new[:w]) and not torch.equal(old[2 * w :], new[2 * w :])
        bias = name.replace("weight", "bias")
        assert torch.equal(before[bias][w : 2 * w], params[bias].detach()[w : 2 * w])
    for name in ("clip.visual.conv1.weight", "clip.transformer.resblocks.0.mlp.c_fc.weight", "clip.logit_scale"):
        assert torch.equal(before[name], params[name].detach()), name
    assert not torch.equal(before["decoder.head.weight"], params["decoder.head.weight"].detach())


def test_cosine_schedule() -> None:
    assert cosine_factor(0, 100) == 1.0
    assert cosine_factor(50, 100) == pytest.approx(0.5)
    assert cosine_factor(100, 100) == pytest.approx(0.0)
    assert cosine_factor(0, 100, warmup=10) == pytest.approx(0.1)
    assert cosine_factor(10, 100, warmup=10) == 1.0
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    sched = build_scheduler(opt, 4)
    lrs = []
    for _ in range(4):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([2e-4, 2e-4 * (0.5 + 0.5 * 2**-0.5), 1e-4, 2e-4 * (0.5 - 0.5 * 2**-0.5)])


# -- runs -----------------------------------------------------------------------------------


def test_short_run_lowers_the_loss(syn_data: Path, tmp_path: Path) -> None:
    from escnet import load_checkpoint
    from escnet.training.loop import train

    cfg = TrainConfig(
        data=str(syn_data), out=str(tmp_path / "run"), preset="tiny", iters=24, batch_size=2, log_every=6,
        ckpt_every=12, val_every=24, val_limit=2, threads=1, progress=False,
    )  # fmt: skip
    result = train(cfg)
    losses = [r["loss_mean"] for r in _records(tmp_path / "run")]
    assert len(losses) == 4 and losses[-1] < 0.9 * losses[0], losses
    assert result.step == 24 and result.val_miou is not None
    assert (tmp_path / "run" / "train.csv").read_text().startswith("step,loss,")
    assert len(_records(tmp_path / "run", "val")) == 1
    load_checkpoint(result.model_path, preset="tiny")
    from escnet.training.plot import plot_run

    png = plot_run(tmp_path / "run")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "escnet.training.cli", "--data", str(data), "--out", str(out), "--preset", "tiny",
        "--iters", "10", "--batch-size", "2", "--log-every", "1", "--ckpt-every", "2", "--threads", "1",
        "--no-progress", *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_resume_after_sigkill_matches_uninterrupted(syn_data: Path, tmp_path: Path) -> None:
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(_train_cmd(syn_data, full), env=ENV, check=True, capture_output=True, timeout=600)

    proc = subprocess.Popen(_train_cmd(syn_data, killed), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        log = killed / "log.jsonl"
        if log.is_file() and any(r["step"] >= 4 for r in map(json.loads, log.read_text().splitlines())):
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run ended before it could be killed"
    steps_before = [r["step"] for r in _records(killed)]
    assert 4 <= max(steps_before) < 10

    r = subprocess.run(_train_cmd(syn_data, killed, "--resume"), env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    a, b = _records(full), _records(killed)
    assert [x["step"] for x in b] == list(range(1, 11))  # records after the checkpoint were dropped, then redone
    assert b[-1]["step"] == a[-1]["step"] == 10
    for x, y in zip(a, b, strict=True):
        assert abs(x["loss"] - y["loss"]) <= 1e-6, (x, y)


@pytest.mark.slow
def test_two_process_ddp_on_cpu_matches_one_process(syn_data: Path, tmp_path: Path) -> None:
    common = ["--scale-min", "1.0", "--scale-max", "1.2", "--iters", "4", "--batch-size", "4", "--ckpt-every", "4"]
    one = _train_cmd(syn_data, tmp_path / "one") + common
    subprocess.run(one, env=ENV, check=True, capture_output=True, timeout=600)
    ddp = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    two = ddp + _train_cmd(syn_data, tmp_path / "two")[1:] + common
    r = subprocess.run(two, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "done: step 4" in r.stdout
    a, b = _records(tmp_path / "one"), _records(tmp_path / "two")
    assert [x["step"] for x in b] == [1, 2, 3, 4]
    # the same global batch split over two processes: the same losses (up to float summation order)
    for x, y in zip(a, b, strict=True):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-3, abs=1e-5), (x, y)


# -- CLI ------------------------------------------------------------------------------------


def _cli(*args: str):
    from typer.testing import CliRunner

    from escnet.training.cli import app

    return CliRunner().invoke(app, list(args))


def test_cli_bad_input(syn_data: Path, tmp_path: Path) -> None:
    cases = [
        (["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], "data root not found"),
        (["--data", str(tmp_path), "--out", str(tmp_path / "o")], "neither a COCO-Stuff"),
        (["--out", str(tmp_path / "o")], "--data is required"),
        (["--data", str(syn_data), "--out", str(tmp_path / "o"), "--preset", "huge"], "unknown preset"),
        (["--data", str(syn_data), "--out", str(tmp_path / "o"), "--iters", "0"], "iters must be >= 1"),
        (["--data", str(syn_data), "--out", str(tmp_path / "o"), "--batch-size", "0"], "batch_size must be"),
        (["--data", str(syn_data), "--out", str(tmp_path / "o"), "--config", str(tmp_path / "none.json")], "not found"),
    ]
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"lr": 0.1, "learning_rate": 3}')
    cases.append((["--data", str(syn_data), "--out", str(tmp_path / "o"), "--config", str(bad_json)], "learning_rate"))
    bad_type = tmp_path / "bad_type.json"
    bad_type.write_text('{"lr": "high"}')
    cases.append((["--data", str(syn_data), "--out", str(tmp_path / "o"), "--config", str(bad_type)], "expected float"))
    for args, message in cases:
        r = _cli(*args, "--no-progress")
        assert r.exit_code == 2, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    assert not (tmp_path / "o").exists()


def test_cli_refuses_to_overwrite_and_checks_the_resumed_recipe(syn_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ["--data", str(syn_data), "--out", str(out), "--preset", "tiny", "--iters", "2", "--batch-size", "1"]
    base += ["--threads", "1", "--no-progress"]
    assert _cli(*base).exit_code == 0
    r = _cli(*base)
    assert r.exit_code == 2 and "already holds a training run" in r.output
    r = _cli(*base, "--resume", "--lr", "0.1")
    assert r.exit_code == 2 and "different recipe" in r.output and "lr" in r.output
    r = _cli(*base, "--resume", "--iters", "3")
    assert r.exit_code == 0 and "done: step 3" in r.output


def test_time_limit_stops_and_saves(syn_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--data", str(syn_data), "--out", str(out), "--preset", "tiny", "--iters", "50", "--batch-size", "1"]
    args += ["--threads", "1", "--no-progress", "--log-every", "10", "--ckpt-every", "10"]
    r = _cli(*args, "--lr-schedule", "time")
    assert r.exit_code == 2 and "needs a time_limit" in r.output
    r = _cli(*args, "--lr-schedule", "time", "--time-limit", "0.001")
    assert r.exit_code == 0 and "done: step 1," in r.output, r.output
    assert [x["step"] for x in _records(out)] == [1] and (out / "model.safetensors").is_file()


def test_trains_on_the_coco_stuff_layout(tmp_path: Path) -> None:
    """The COCO-Stuff prepared layout is found and trained on with all 171 class names."""
    import numpy as np
    from PIL import Image

    from escnet.training.loop import train

    base = tmp_path / "data" / "coco-stuff"
    (base / "images/train2017").mkdir(parents=True)
    (base / "annotations_detectron2/train2017").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(base / f"images/train2017/{i}.jpg")
        label = rng.integers(0, 171, (48, 64)).astype(np.uint8)
        label[:8] = 255
        Image.fromarray(label).save(base / f"annotations_detectron2/train2017/{i}.png")
    cfg = TrainConfig(
        data=str(tmp_path / "data"), out=str(tmp_path / "run"), preset="tiny", iters=1, batch_size=1, threads=1,
        progress=False, log_every=1,
    )  # fmt: skip
    result = train(cfg)
    assert result.step == 1 and 0 < result.loss < 1


def test_console_script_bad_input_is_one_line(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "escnet.training.cli", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
        env=ENV, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"error: {tmp_path / 'none'}: data root not found (expected a folder)"]


def test_worker_errors_are_reported_in_one_line(syn_data: Path, tmp_path: Path) -> None:
    import shutil

    data = tmp_path / "data"
    shutil.copytree(syn_data, data)
    next((data / "annotations_detectron2" / "train").iterdir()).write_bytes(b"broken")
    args = ["--data", str(data), "--out", str(tmp_path / "o"), "--preset", "tiny", "--iters", "20", "--batch-size", "4"]
    r = _cli(*args, "--num-workers", "1", "--threads", "1", "--no-progress")
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: /") and "unreadable label map" in lines[0], r.output
