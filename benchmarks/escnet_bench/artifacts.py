"""The reference model and the artifacts folder, kept consistent with each other.

Parity is only meaningful when PyTorch and the exported graphs hold the same weights. The
reference model is therefore either ``--checkpoint F`` or, without one, the preset randomly
initialised with ``--seed`` (no weights are downloaded). When the runtime backends need an
artifacts folder that does not exist yet, the benchmark saves that model as
``SOURCE_CHECKPOINT`` inside the folder and exports from it with ``escnet-export``'s own
pipeline; the manifest then records the checkpoint's sha256, which later runs verify: a folder
exported from other weights is refused with a one-line error instead of reporting nonsense
parity figures.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from escnet_runtime.contract import MANIFEST_FILE
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import ManifestError, load_manifest

from escnet import CheckpointError, ESCNet, build_model, load_checkpoint, save_checkpoint
from escnet.checkpoint import checkpoint_provenance
from escnet_bench.options import BenchOptions

SOURCE_CHECKPOINT = "escnet-bench-source.safetensors"


class ArtifactsError(ValueError):
    """Artifacts that cannot be benchmarked against the reference; the message is one line."""


def reference_model(opts: BenchOptions) -> ESCNet:
    """The PyTorch fp32 reference: ``opts.checkpoint``, the artifacts' own source checkpoint, or a seeded preset."""
    source = weights_source(opts)
    if source is not None:
        try:
            return load_checkpoint(source, preset=opts.preset).eval()
        except CheckpointError as e:
            raise ArtifactsError(str(e)) from None
    torch.manual_seed(opts.seed)
    return build_model(opts.preset).eval()


def weights_source(opts: BenchOptions) -> Path | None:
    """The checkpoint the reference model comes from (None: the preset seeded with ``opts.seed``)."""
    if opts.checkpoint is not None:
        return opts.checkpoint
    bundled = opts.artifacts / SOURCE_CHECKPOINT
    return bundled if bundled.is_file() else None


def reference_provenance(opts: BenchOptions) -> dict[str, object]:
    """Where the reference weights came from: ``{"weights": one line, "random_init": bool}``."""
    source = weights_source(opts)
    if source is None:
        return {"weights": f"random init, seed {opts.seed}", "random_init": True}
    origin = checkpoint_provenance(source)
    sha = sha256_file(source)
    if origin is None:
        return {"weights": f"checkpoint sha256 {sha}", "random_init": False}
    return {"weights": f"{origin['weights']} (checkpoint sha256 {sha})", "random_init": bool(origin["random_init"])}


def seeded_random_init(source_weights: dict[str, str]) -> int | None:
    """The torch seed of an export whose every part was randomly initialised, else None."""
    parts = {k: v for k, v in source_weights.items() if k != "seed"}
    if parts and all(v == "random-init" for v in parts.values()) and source_weights.get("seed", "").isdigit():
        return int(source_weights["seed"])
    return None


def check_artifacts(opts: BenchOptions) -> None:
    """Refuse an artifacts folder of another preset or exported from other weights than the reference's
    (a folder without a manifest passes: it is exported into)."""
    if not (opts.artifacts / MANIFEST_FILE).is_file():
        return
    try:
        manifest = load_manifest(opts.artifacts, verify=False)  # the runtime verifies every sha256 when it opens
    except ManifestError as e:
        raise ArtifactsError(str(e)) from None
    if manifest.preset != opts.preset:
        raise ArtifactsError(
            f"{opts.artifacts} holds preset {manifest.preset!r}, not {opts.preset!r}; pass --preset {manifest.preset} "
            "or another --artifacts folder"
        )
    source = weights_source(opts)
    recorded = manifest.source_weights.get("checkpoint")
    if source is None and seeded_random_init(manifest.source_weights) == opts.seed:
        return  # exported by escnet-export with random init from the reference's own seed
    if source is None or recorded is None or sha256_file(source) != recorded:
        raise ArtifactsError(
            f"{opts.artifacts} was exported from weights the benchmark cannot match (manifest source weights: "
            f"{manifest.source_weights}); pass --checkpoint F with the checkpoint given to escnet-export, "
            "or an empty --artifacts folder to export one"
        )


def ensure_artifacts(opts: BenchOptions, model: ESCNet, step: Callable[[str], None] = lambda _s: None) -> Any:
    """Export ``model`` into ``opts.artifacts`` when the folder has no manifest (and export is allowed).

    Returns the export's result (its parity table, for the CLI to print), or None when nothing was exported.
    """
    if (opts.artifacts / MANIFEST_FILE).is_file():
        check_artifacts(opts)
        return None
    if not opts.export_missing:
        raise ArtifactsError(f"{opts.artifacts}: no {MANIFEST_FILE}; run escnet-export onnx or drop --no-export")
    try:
        from escnet_export.onnx.pipeline import ExportOptions, run_export
    except ImportError as e:
        raise ArtifactsError(f"cannot export {opts.artifacts}: escnet_export is not available ({e})") from None
    from escnet_export.errors import ExportError

    source = opts.checkpoint
    if source is None:
        source = opts.artifacts / SOURCE_CHECKPOINT
        opts.artifacts.mkdir(parents=True, exist_ok=True)
        provenance = {"weights": f"random init, seed {opts.seed}", "random_init": True}
        save_checkpoint(model, source, provenance=provenance)  # atomic itself
    try:
        result = run_export(ExportOptions(preset=opts.preset, out=opts.artifacts, checkpoint=source), step=step)
    except ExportError as e:
        raise ArtifactsError(f"export into {opts.artifacts} failed: {e}") from None
    if not result.published:
        from escnet_export.checks.parity import save_parity_report
        from escnet_export.cli import parity_report_path

        failed = [r for r in result.parity if not r.passed]
        report = save_parity_report(result.parity, parity_report_path(opts.artifacts))
        raise ArtifactsError(
            f"export into {opts.artifacts} failed its parity gate ({len(failed)} of {len(result.parity)} checks, "
            f"first {failed[0].graph}/{failed[0].tensor}: {'; '.join(failed[0].failures)}); full table in {report}"
        )
    return result
