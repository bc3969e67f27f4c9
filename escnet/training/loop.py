"""The training loop: one process, or one per device under torchrun with DistributedDataParallel."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
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
from .progress import announce, is_terminal, plain_line, progress_bar
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


@dataclass
class _Run:
    """The parts one invocation trains with, built by :func:`_prepare`."""

    config: TrainConfig
    info: DistInfo
    ckpt: Path  # the resumable state, checkpoint_path(out)
    model: ESCNet
    net: torch.nn.Module  # the model, wrapped in DistributedDataParallel under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    trainable: list[torch.nn.Parameter]
    train_set: SegmentationDataset
    val_set: SegmentationDataset | None
    start: int  # steps finished before this invocation
    elapsed0: float  # seconds the run trained before this invocation
    start_factor: float  # learning-rate factor where a time schedule stopped
    runlog: RunLog | None = None  # the main process's log
    t_start: float = 0.0  # this invocation's start: --time-limit counts from here

    @property
    def t0(self) -> float:
        """The whole run's start (resumed ones included): the log's elapsed_s counts from here."""
        return self.t_start - self.elapsed0


@dataclass
class _Tally:
    """What the loop has done so far."""

    step: int
    last_loss: float = float("nan")
    val_miou: float | None = None
    grad_norm: float = float("nan")
    window: list[float] = field(default_factory=list)  # losses since the last log line


def _train(config: TrainConfig, resume: bool, info: DistInfo) -> TrainResult:
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    if config.batch_size % info.world_size:
        raise ValueError(f"batch_size {config.batch_size} is not divisible by the {info.world_size} processes")
    run = _prepare(config, resume, info)
    augment_config = AugmentConfig(config.crop or run.model.config.image_size, config.scale_min, config.scale_max)
    loader = training_loader(
        run.train_set, augment_config, config.batch_size, config.seed, run.start, config.iters,
        info.rank, info.world_size, config.num_workers,
    )  # fmt: skip
    out = Path(config.out)
    if info.is_main:
        run.runlog = RunLog(out, resume_step=run.start)
        with atomic_path(out / "train_config.json") as tmp:
            tmp.write_text(json.dumps(config.to_dict(), indent=2), encoding="utf-8")
    tally = _loop(run, loader)
    model_path = out / "model.safetensors"
    if not _weights_finite(run.model):
        raise _diverged("weights hold NaN or Inf", tally.step, run.ckpt)
    if info.is_main:
        save_checkpoint(run.model, model_path)
        if run.runlog is not None:
            run.runlog.flush()
    barrier(info)
    return TrainResult(tally.step, tally.last_loss, tally.val_miou, model_path)


def _prepare(config: TrainConfig, resume: bool, info: DistInfo) -> _Run:
    """The data, the model and its optimiser, restored from the saved state when resuming."""
    data_root = Path(config.data)
    ckpt = checkpoint_path(Path(config.out))
    state = _resume_state(config, ckpt, resume, info)
    spec, val_spec = training_specs(data_root, config.dataset)
    train_set = SegmentationDataset(data_root, spec)
    val_set = SegmentationDataset(data_root, val_spec) if val_spec is not None and config.val_every else None
    torch.manual_seed(config.seed)
    model = build_model(config.preset, config.clip_weights, config.sam_weights)
    if state is not None:
        load_strict(model, state["model"], f"training checkpoint {ckpt}")
    model.to(info.device).train()
    optimizer, _ = build_optimizer(model, config.lr, config.backbone_multiplier, config.weight_decay)
    scheduler = build_scheduler(optimizer, config.iters, config.warmup_iters)
    start, elapsed0, start_factor = _restore(state, optimizer, scheduler)
    net: torch.nn.Module = model
    if info.enabled:
        net = DistributedDataParallel(model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    scaler = torch.amp.GradScaler(
        "cuda", enabled=info.device.type == "cuda" and config.amp and not torch.cuda.is_bf16_supported()
    )
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    return _Run(
        config, info, ckpt, model, net, optimizer, scheduler, scaler, trainable, train_set, val_set,
        start, elapsed0, start_factor,
    )  # fmt: skip


def _restore(
    state: dict | None, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
) -> tuple[int, float, float]:
    """Load the optimiser, schedule and RNG states: (start step, elapsed seconds, start factor)."""
    if state is None:
        return 0, 0.0, 1.0
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_states(state["rng"])
    group = optimizer.param_groups[0]
    start_factor = min(1.0, max(0.0, group["lr"] / group["initial_lr"]))  # where the time schedule stopped
    return int(state["step"]), float(state["elapsed"]), start_factor


def _loop(run: _Run, loader) -> _Tally:
    """Optimise until the last step or the time limit, logging, validating and saving on the way."""
    config, info = run.config, run.info
    tally = _Tally(run.start)
    plain = config.progress and info.is_main and not is_terminal()
    run.t_start = time.perf_counter()
    if config.progress and info.is_main:
        announce(config, run.start)
    with progress_bar(config.progress and info.is_main) as bar:
        task = bar.add_task("train", total=config.iters, completed=run.start, loss=float("nan"))
        for batch in loader:
            parts = (run.optimizer, run.scheduler, run.scaler)
            try:
                loss, tally.grad_norm = _optimise(
                    run.net, batch, run.train_set.prompt_names, run.train_set.ignore_index, parts,
                    run.trainable, config, info.device, info,
                )  # fmt: skip
            except TrainingDiverged as e:
                raise _diverged(str(e), tally.step + 1, run.ckpt) from None
            tally.step += 1
            _follow_time_schedule(run, tally.step)
            tally.window.append(loss)
            out_of_time = config.time_limit is not None and (
                all_mean(float(time.perf_counter() - run.t_start >= config.time_limit), info) > 0
            )  # every process stops at the same step
            if tally.step % config.log_every == 0 or tally.step == config.iters or out_of_time:
                _log_step(run, tally, plain)
                bar.update(task, completed=tally.step, loss=tally.last_loss)
            _validate_and_save(run, tally, out_of_time)
            if out_of_time:
                if info.is_main:
                    log.warning(
                        "escnet-train: time limit %.0f s of this invocation reached at step %d (--resume goes on)",
                        config.time_limit,
                        tally.step,
                    )
                break
    return tally


def _follow_time_schedule(run: _Run, step: int) -> None:
    """Under the time schedule, past the warm-up: the cosine factor of the seconds spent."""
    config = run.config
    if config.schedule == "time" and step >= config.warmup_iters:
        ran_ms = int(1000 * (time.perf_counter() - run.t_start))
        factor = run.start_factor * cosine_factor(ran_ms, int(1000 * config.time_limit))
        for group in run.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


def _log_step(run: _Run, tally: _Tally, plain: bool) -> None:
    """The losses since the last log line (mean over processes) into the log, and a plain line."""
    tally.last_loss = all_mean(tally.window[-1], run.info)
    mean_loss = all_mean(sum(tally.window) / len(tally.window), run.info)
    tally.window = []
    if run.runlog is not None:
        lrs = {f"lr_{g['name']}": g["lr"] for g in run.optimizer.param_groups}
        run.runlog.add(
            {
                "kind": "train", "step": tally.step, "loss": tally.last_loss, "loss_mean": mean_loss,
                "grad_norm": tally.grad_norm, **lrs, "elapsed_s": time.perf_counter() - run.t0,
            }
        )  # fmt: skip
    if plain:
        ran = (tally.step - run.start, time.perf_counter() - run.t_start)
        lr = run.optimizer.param_groups[0]["lr"]
        print(plain_line(tally.step, run.config, tally.last_loss, lr, ran), file=sys.stderr)


def _validate_and_save(run: _Run, tally: _Tally, out_of_time: bool) -> None:
    """Validation and the resumable state when due (every process waits for the main one)."""
    config, info, step = run.config, run.info, tally.step
    last = step == config.iters or out_of_time
    if run.val_set is not None and (step % config.val_every == 0 or last):
        if info.is_main:
            metrics = _validate(run.model, run.val_set, run.train_set.prompt_names, config, info.device)
            tally.val_miou = metrics["miou"]
            run.runlog.add({"kind": "val", "step": step, **metrics, "elapsed_s": time.perf_counter() - run.t0})
        barrier(info)
    if step % config.ckpt_every == 0 or last:
        if not _weights_finite(run.model):  # e.g. a step with a NaN learning rate
            raise _diverged("weights hold NaN or Inf", step, run.ckpt)
        if info.is_main:
            elapsed = time.perf_counter() - run.t0
            save_state(run.ckpt, run.model, run.optimizer, run.scheduler, step, config.to_dict(), elapsed)
            run.runlog.flush()
        barrier(info)
    elif run.runlog is not None and step % config.log_every == 0:
        run.runlog.flush()
