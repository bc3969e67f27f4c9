"""The training loop: one process, or one per device under torchrun with DistributedDataParallel."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch.nn.parallel import DistributedDataParallel

from ..builder import build_model
from ..checkpoint import save_checkpoint
from ..data.segmentation import SegmentationDataset
from ..data.transforms import AugmentConfig
from ..evaluation.loop import evaluate
from ..evaluation.predictor import TorchPredictor
from ..io_utils import atomic_path
from ..modeling.model import ESCNet
from ..state_dict import load_strict
from .config import TrainConfig, config_from_dict, resume_differences
from .distributed import DistInfo, all_mean, barrier, init_distributed, shutdown
from .logger import RunLog
from .loss import segmentation_bce
from .optim import build_optimizer, build_scheduler, cosine_factor
from .pipeline import training_loader, training_specs
from .state import TrainStateError, load_state, save_state, set_rng_states

log = logging.getLogger("escnet.train")


@dataclass(frozen=True)
class TrainResult:
    step: int
    loss: float  # last logged loss (mean over processes)
    val_miou: float | None  # last validation mIoU, when validation ran
    model_path: Path


class TrainingDiverged(ValueError):
    """The loss, the gradients or the weights went non-finite: the run stops, nothing of it is saved."""


def _diverged(what: str, step: int, ckpt: Path) -> TrainingDiverged:
    kept = f"the last good checkpoint {ckpt} is kept" if ckpt.exists() else "no checkpoint was written"
    return TrainingDiverged(
        f"{what} at step {step}: training diverged (try a lower --lr); stopped without saving, {kept}"
    )


def _weights_finite(model: torch.nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.is_floating_point())


def checkpoint_path(out: Path) -> Path:
    return out / "checkpoints" / "last.pt"


def _autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision on CUDA only: bfloat16 where supported, else float16."""
    if device.type != "cuda" or not enabled:
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _is_terminal() -> bool:
    return sys.stderr.isatty()


def _progress(enabled: bool) -> Progress:
    """rich's bar on a terminal; elsewhere (a CI log, a file) :func:`_plain_line` prints a line per log step."""
    return Progress(
        TextColumn("[bold]train"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not (enabled and _is_terminal()),
    )


def _plain_line(step: int, config: TrainConfig, loss: float, lr: float, ran: tuple[int, float]) -> str:
    """``train [elapsed s] step k/N loss x lr y, ETA ...``; ``ran``: (steps, seconds) of this invocation."""
    steps, seconds = ran
    eta = (config.iters - step) * seconds / max(1, steps)
    if config.time_limit is not None:
        eta = min(eta, max(0.0, config.time_limit - seconds))
    return f"train [{seconds:7.1f} s] step {step}/{config.iters} loss {loss:.4f} lr {lr:.3g}, ETA {_duration(eta)}"


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min"


def _announce(config: TrainConfig, start: int) -> None:
    """What this invocation will do, once, before the first step."""
    limit = f", at most {config.time_limit:.0f} s in this invocation" if config.time_limit is not None else ""
    resumed = f"; resuming at step {start}" if start else ""
    print(
        f"escnet-train: {config.preset}, up to {config.iters} steps of batch {config.batch_size}{limit}, "
        f"lr schedule {config.schedule}{resumed}",
        file=sys.stderr,
        flush=True,
    )


def _validate(model: ESCNet, val: SegmentationDataset, names: list[str], config: TrainConfig, device) -> dict:
    predictor = TorchPredictor(model, names, device=device)
    result = evaluate(val, predictor, val.num_classes, val.ignore_index, val.spec.merge_from, config.val_limit)
    model.train()
    return {"miou": result.metrics.miou, "pixel_accuracy": result.metrics.pixel_accuracy, "images": result.images}


def _resume_state(config: TrainConfig, ckpt: Path, resume: bool, info: DistInfo) -> dict | None:
    """The saved state to continue from (None: a fresh run), after checking the recipe matches."""
    if ckpt.exists() and not resume:
        raise ValueError(
            f"{ckpt.parent.parent} already holds a training run ({ckpt}); pass --resume or choose another --out"
        )
    if not resume:
        return None
    if not ckpt.exists():
        if info.is_main:
            log.warning("escnet-train: nothing to resume in %s, starting from step 0", ckpt.parent.parent)
        return None
    state = load_state(ckpt)
    diffs = resume_differences(config_from_dict(state["train_config"], str(ckpt)), config)
    if diffs:
        raise TrainStateError(f"{ckpt}: cannot resume with a different recipe ({'; '.join(diffs)})")
    return state


def _optimise(
    net: torch.nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor],
    names: list[str],
    ignore_index: int,
    parts: tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler, torch.amp.GradScaler],
    trainable: list[torch.nn.Parameter],
    config: TrainConfig,
    device: torch.device,
    info: DistInfo,
) -> tuple[float, float]:
    """One optimiser step on images (b, 3, S, S) and labels (b, S, S): (loss, gradient norm).

    Raises ``TrainingDiverged("loss is nan")`` (or the gradient norm) before the step when either is
    not finite, on every process alike; the weights are then those of the previous step.
    """
    optimizer, scheduler, scaler = parts
    images, labels = batch[0].to(device, non_blocking=True), batch[1].to(device, non_blocking=True)
    with _autocast(device, config.amp):
        logits = net(images, names)  # (b, T, S/4, S/4)
    loss = segmentation_bce(logits.float(), labels, ignore_index)
    mean_loss = all_mean(loss.item(), info)  # every process decides alike
    if not math.isfinite(mean_loss):
        raise TrainingDiverged(f"loss is {mean_loss}")
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable, config.grad_clip)
    if not scaler.is_enabled() and not math.isfinite(float(grad_norm)):  # fp16's scaler skips such steps itself
        raise TrainingDiverged(f"gradient norm is {float(grad_norm)}")
    scaler.step(optimizer)
    scaler.update()
    scheduler.step()
    return loss.item(), float(grad_norm)


def train(config: TrainConfig, resume: bool = False) -> TrainResult:
    """Train per ``config``; with ``resume``, continue the run saved in ``config.out``.

    Raises ValueError subclasses (one line) on bad input: data, config, or a run folder that
    already holds a run and no ``resume``.
    """
    config.check()
    threads = torch.get_num_threads()  # config.threads holds for this run only, not the caller's process
    info = init_distributed()
    try:
        return _train(config, resume, info)
    finally:
        shutdown(info)
        torch.set_num_threads(threads)


def _train(config: TrainConfig, resume: bool, info: DistInfo) -> TrainResult:
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.batch_size % info.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {info.world_size} processes")
    out, data_root = Path(config.out), Path(config.data)
    ckpt = checkpoint_path(out)
    state = _resume_state(config, ckpt, resume, info)

    spec, val_spec = training_specs(data_root, config.dataset)
    train_set = SegmentationDataset(data_root, spec)
    val_set = SegmentationDataset(data_root, val_spec) if val_spec is not None and config.val_every else None
    names = train_set.prompt_names

    torch.manual_seed(config.seed)
    model = build_model(config.preset, config.clip_weights, config.sam_weights)
    if state is not None:
        load_strict(model, state["model"], f"training checkpoint {ckpt}")
    model.to(info.device).train()
    optimizer, _ = build_optimizer(model, config.lr, config.backbone_multiplier, config.weight_decay)
    scheduler = build_scheduler(optimizer, config.iters, config.warmup_iters)
    start, elapsed0, start_factor = 0, 0.0, 1.0
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_states(state["rng"])
        start, elapsed0 = int(state["step"]), float(state["elapsed"])
        group = optimizer.param_groups[0]
        start_factor = min(1.0, max(0.0, group["lr"] / group["initial_lr"]))  # where the time schedule stopped
    net: torch.nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(
        "cuda", enabled=info.device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    )
    trainable = [p for g in optimizer.param_groups for p in g["params"]]

    augment_config = AugmentConfig(config.crop or model.config.image_size, config.scale_min, config.scale_max)
    loader = training_loader(
        train_set, augment_config, config.batch_size, config.seed, start, config.iters,
        info.rank, info.world_size, config.num_workers,
    )  # fmt: skip
    runlog = RunLog(out, resume_step=start) if info.is_main else None
    if info.is_main:
        with atomic_path(out / "train_config.json") as tmp:
            tmp.write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    t_start = time.perf_counter()  # this invocation: --time-limit counts from here
    t0 = t_start - elapsed0  # the whole run (resumed ones included): the log's elapsed_s
    step, last_loss, val_miou, window = start, float("nan"), None, []
    plain = config.progress and info.is_main and not _is_terminal()
    if config.progress and info.is_main:
        _announce(config, start)
    with _progress(config.progress and info.is_main) as bar:
        task = bar.add_task("train", total=config.iters, completed=start, loss=float("nan"))
        for batch in loader:
            parts = (optimizer, scheduler, scaler)
            try:
                loss, grad_norm = _optimise(
                    net, batch, names, train_set.ignore_index, parts, trainable, config, info.device, info
                )
            except TrainingDiverged as e:
                raise _diverged(str(e), step + 1, ckpt) from None
            step += 1
            if config.schedule == "time" and step >= config.warmup_iters:
                ran_ms = int(1000 * (time.perf_counter() - t_start))
                factor = start_factor * cosine_factor(ran_ms, int(1000 * config.time_limit))
                for group in optimizer.param_groups:
                    group["lr"] = group["initial_lr"] * factor
            window.append(loss)
            out_of_time = config.time_limit is not None and (
                all_mean(float(time.perf_counter() - t_start >= config.time_limit), info) > 0
            )  # every process stops at the same step
            if step % config.log_every == 0 or step == config.iters or out_of_time:
                last_loss = all_mean(window[-1], info)
                mean_loss = all_mean(sum(window) / len(window), info)
                window = []
                if runlog is not None:
                    lrs = {f"lr_{g['name']}": g["lr"] for g in optimizer.param_groups}
                    runlog.add(
                        {
                            "kind": "train", "step": step, "loss": last_loss, "loss_mean": mean_loss,
                            "grad_norm": grad_norm, **lrs, "elapsed_s": time.perf_counter() - t0,
                        }
                    )  # fmt: skip
                bar.update(task, completed=step, loss=last_loss)
                if plain:
                    ran = (step - start, time.perf_counter() - t_start)
                    print(_plain_line(step, config, last_loss, optimizer.param_groups[0]["lr"], ran), file=sys.stderr)
            if val_set is not None and (step % config.val_every == 0 or step == config.iters or out_of_time):
                if info.is_main:
                    metrics = _validate(model, val_set, names, config, info.device)
                    val_miou = metrics["miou"]
                    runlog.add({"kind": "val", "step": step, **metrics, "elapsed_s": time.perf_counter() - t0})
                barrier(info)
            if step % config.ckpt_every == 0 or step == config.iters or out_of_time:
                if not _weights_finite(model):  # e.g. a step with a NaN learning rate
                    raise _diverged("weights hold NaN or Inf", step, ckpt)
                if info.is_main:
                    save_state(ckpt, model, optimizer, scheduler, step, config.to_dict(), time.perf_counter() - t0)
                    runlog.flush()
                barrier(info)
            elif runlog is not None and step % config.log_every == 0:
                runlog.flush()
            if out_of_time:
                if info.is_main:
                    log.warning(
                        "escnet-train: time limit %.0f s of this invocation reached at step %d (--resume goes on)",
                        config.time_limit,
                        step,
                    )
                break
    model_path = out / "model.safetensors"
    if not _weights_finite(model):
        raise _diverged("weights hold NaN or Inf", step, ckpt)
    if info.is_main:
        save_checkpoint(model, model_path)
        if runlog is not None:
            runlog.flush()
    barrier(info)
    return TrainResult(step, last_loss, val_miou, model_path)
