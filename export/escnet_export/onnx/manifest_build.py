"""The manifest of an ONNX export: the contract from escnet_runtime plus provenance."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import onnx
import onnxruntime
import onnxscript
import torch
from escnet_runtime.contract import (
    RANDOM_INIT,
    VOCAB_FILE,
    GraphSpec,
    Preprocess,
    Provenance,
    SlidingWindow,
    TokenizerSpec,
    provenance_from_sources,
)
from escnet_runtime.fileio import atomic_path, sha256_file
from escnet_runtime.manifest import Manifest

from escnet import CLIP_MEAN, CLIP_STD, ESCNet
from escnet.checkpoint import checkpoint_provenance
from escnet.config import config_to_dict
from escnet.inference import sliding_geometry
from escnet.modeling.model import TEXT_BATCH
from escnet_export.onnx.simplify import Simplifier

EXPORTER = "torch.onnx.export(dynamo=True)"


def vocab_source() -> Path:
    """open_clip's BPE vocabulary, the one ``model.tokenizer`` reads."""
    import open_clip.tokenizer

    return Path(open_clip.tokenizer.default_bpe())


def copy_vocab(folder: Path) -> Path:
    """Copy the tokenizer vocabulary beside the graphs (the folder is then self-contained)."""
    target = folder / VOCAB_FILE
    with atomic_path(target) as tmp:
        shutil.copyfile(vocab_source(), tmp)
    return target


def tool_versions(simplifier: Simplifier) -> dict[str, str]:
    versions = {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxscript": onnxscript.__version__,
        "onnxruntime": onnxruntime.__version__,
        "exporter": EXPORTER,
    }
    if simplifier.name != "none":
        versions[simplifier.name] = simplifier.version
    return versions


def source_weight_hashes(
    checkpoint: Path | None, clip_weights: str | None, sam_weights: str | None, seed: int = 0
) -> dict[str, str]:
    """role -> sha256 of the file the weights came from, or "random-init" (with the torch ``seed``)."""
    if checkpoint is not None:
        return {"checkpoint": sha256_file(checkpoint)}

    def one(source: str | None) -> str:
        if source is None:
            return RANDOM_INIT
        path = Path(source)
        return sha256_file(path) if path.is_file() else f"open_clip-pretrained-tag:{source}"

    hashes = {"clip": one(clip_weights), "sam": one(sam_weights)}
    if RANDOM_INIT in hashes.values():
        hashes["seed"] = str(seed)
    return hashes


def weights_provenance(checkpoint: Path | None, source_weights: dict[str, str]) -> Provenance:
    """One line on where the weights came from; a checkpoint saved from a random init (escnet-bench's) says so."""
    if checkpoint is None:
        return provenance_from_sources(source_weights)
    sha = source_weights["checkpoint"]
    origin = checkpoint_provenance(checkpoint)
    if origin is None:
        return Provenance(f"checkpoint sha256 {sha}", random_init=False)
    return Provenance(f"{origin['weights']} (checkpoint sha256 {sha})", random_init=bool(origin["random_init"]))


def build_manifest(
    model: ESCNet,
    graphs: dict[str, GraphSpec],
    folder: Path,
    files: list[str],
    opset: int,
    versions: dict[str, str],
    source_weights: dict[str, str],
    extra: dict[str, Any],
    decoder_steps: tuple[str, ...] = (),
    class_chunk: int | None = None,
    provenance: Provenance | None = None,
) -> Manifest:
    """The manifest for ``files`` already in ``folder`` (hashed here)."""
    c = model.config
    vocab_sha = sha256_file(folder / VOCAB_FILE)
    return Manifest(
        preset=c.preset,
        graphs=graphs,
        preprocess=Preprocess(image_size=c.image_size, mean=tuple(CLIP_MEAN), std=tuple(CLIP_STD)),
        tokenizer=TokenizerSpec(vocab_file=VOCAB_FILE, vocab_sha256=vocab_sha, context_length=c.clip.context_length),
        templates=tuple(c.templates),
        opset=opset,
        files={name: sha256_file(folder / name) for name in sorted(files)},
        config=config_to_dict(c),
        versions=versions,
        source_weights=source_weights,
        extra=extra,
        decoder_steps=decoder_steps,
        class_chunk=class_chunk,
        sliding_window=sliding_window(c.image_size),
        text_batch=TEXT_BATCH,
        precision="fp32",
        provenance=provenance if provenance is not None else provenance_from_sources(source_weights),
    )


def sliding_window(image_size: int) -> SlidingWindow:
    """The reference's sliding-window geometry (escnet.inference), written for the runtime."""
    canvas, stride = sliding_geometry(image_size)
    return SlidingWindow(canvas=canvas, window=image_size, stride=stride)
