"""The graphs as Triton models for GPU servers: ``onnxruntime_onnx``, or ``tensorrt_plan`` where
``escnet-export trt`` built an engine (its profile gives the input shapes).

Each graph ``g`` becomes the model ``escnet_<g>`` with one version holding ``model.onnx`` (and its
external-data file, under the name the graph refers to) or ``model.plan``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escnet_runtime.contract import BUILD_MANIFEST_FILE
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import Manifest

from escnet_export.errors import ExportError
from escnet_export.triton.config import CONFIG_FILE, PIPELINE_MODEL, config_text, onnx_graph_config, trt_graph_config


@dataclass(frozen=True)
class Engines:
    """``escnet-export trt``'s folder: build.json (precision, per-graph file, sha256, profile)."""

    folder: Path
    precision: str
    records: dict[str, dict[str, Any]]

    @staticmethod
    def load(folder: Path, manifest: Manifest) -> Engines:
        path = folder / BUILD_MANIFEST_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            records, precision = data["engines"], str(data.get("precision", "fp32"))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ExportError(f"{path}: not a TensorRT build manifest from escnet-export trt ({e})") from None
        for graph, rec in records.items():
            if graph not in manifest.graphs:
                raise ExportError(f"{path}: engine for {graph!r}, which these artifacts do not have")
            if rec.get("onnx_sha256") != manifest.files.get(manifest.graphs[graph].file):
                raise ExportError(f"{path}: the {graph} engine was built from another ONNX graph; rebuild it")
            engine = folder / rec["file"]
            if Path(rec["file"]).name != rec["file"] or not engine.is_file() or sha256_file(engine) != rec["sha256"]:
                raise ExportError(f"{engine}: engine missing or does not match {BUILD_MANIFEST_FILE} (sha256)")
        return Engines(folder, precision, records)


def graph_model_name(graph: str) -> str:
    return f"{PIPELINE_MODEL}_{graph}"


def _write(folder: Path, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CONFIG_FILE).write_text(text, encoding="utf-8")


def write_graph_models(
    repo: Path, artifacts: Path, manifest: Manifest, engines: Engines | None, instances: int
) -> dict[str, dict[str, str]]:
    """One model per graph under ``repo``; returns the ``bls_models`` table the Python model reads."""
    table: dict[str, dict[str, str]] = {}
    for graph, spec in manifest.graphs.items():
        name = graph_model_name(graph)
        version = repo / name / "1"
        version.mkdir(parents=True)
        record = engines.records.get(graph) if engines else None
        if record is not None and engines is not None:
            shutil.copyfile(engines.folder / record["file"], version / "model.plan")
            _write(repo / name, config_text(trt_graph_config(name, spec, record["profile"], instances)))
            table[graph] = {"model": name, "file": "model.plan", "sha256": record["sha256"]}
            table[graph]["precision"] = engines.precision
            continue
        shutil.copyfile(artifacts / spec.file, version / "model.onnx")
        for extra in manifest.files:  # external data, under the name the graph refers to
            if extra.startswith(f"{spec.file}."):
                shutil.copyfile(artifacts / extra, version / extra)
        _write(repo / name, config_text(onnx_graph_config(name, spec, instances)))
        table[graph] = {"model": name, "file": "model.onnx", "sha256": manifest.files[spec.file], "precision": "fp32"}
    return table
