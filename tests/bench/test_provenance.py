"""Honesty about the weights: provenance recorded at export, carried by checkpoints, shown by the
bench summary; unreliable bench cells marked; ``escnet-export check --json``."""

from __future__ import annotations

import dataclasses
import json

import pytest
from escnet_runtime.contract import Provenance, provenance_from_sources, random_init_provenance
from escnet_runtime.fileio import sha256_file
from escnet_runtime.manifest import Manifest, load_manifest
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner


def test_provenance_from_source_weights():
    assert provenance_from_sources({"clip": "random-init", "sam": "random-init", "seed": "4"}) == Provenance(
        "random init, seed 4", True
    )
    mixed = provenance_from_sources({"clip": "ab" * 32, "sam": "random-init", "seed": "0"})
    assert mixed.random_init and mixed.weights == f"clip sha256 {'ab' * 32}; sam random init (seed 0)"
    assert provenance_from_sources({"checkpoint": "cd" * 32}) == Provenance(f"checkpoint sha256 {'cd' * 32}", False)
    assert not provenance_from_sources({}).random_init


def test_notice_only_for_random_weights():
    assert "noise" in random_init_provenance(1).notice() and "random init, seed 1" in random_init_provenance(1).notice()
    assert Provenance("checkpoint sha256 00", False).notice() is None


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def test_manifest_round_trip_and_older_manifests(artifacts):
    manifest = load_manifest(artifacts)
    with_field = dataclasses.replace(manifest, provenance=random_init_provenance(2))
    assert Manifest.from_dict(json.loads(json.dumps(with_field.to_dict()))).provenance == random_init_provenance(2)
    older = manifest.to_dict()
    older.pop("provenance", None)
    older["source_weights"] = {"clip": "random-init", "sam": "random-init", "seed": "9"}
    assert Manifest.from_dict(older).provenance is None
    assert Manifest.from_dict(older).weights_provenance() == random_init_provenance(9)


def test_checkpoint_carries_provenance_into_the_export_record(tmp_path):
    import torch
    from escnet_export.onnx.manifest_build import weights_provenance

    from escnet import build_model, save_checkpoint
    from escnet.checkpoint import checkpoint_provenance

    torch.manual_seed(5)
    model = build_model("tiny")
    plain = save_checkpoint(model, tmp_path / "plain.safetensors")
    marked = save_checkpoint(
        model, tmp_path / "marked.safetensors", provenance={"weights": "random init, seed 5", "random_init": True}
    )
    assert checkpoint_provenance(plain) is None
    sha = sha256_file(marked)
    got = weights_provenance(marked, {"checkpoint": sha})
    assert got == Provenance(f"random init, seed 5 (checkpoint sha256 {sha})", True)
    assert weights_provenance(plain, {"checkpoint": "x"}) == Provenance("checkpoint sha256 x", False)


def test_bench_summary_marks_unreliable_cells():
    from escnet_bench.report import _other, _util, _weights

    assert _other(-3.2) == "unreliable (<0)" and _other(4.0) == "4.0" and _other(None) == "-"
    assert _util(130.0) == "unreliable (>100)" and _util(55.5) == "55.5"
    assert "noise" in _weights({"weights": {"weights": "random init, seed 0", "random_init": True}})[0]
    assert _weights({"weights": {"weights": "checkpoint sha256 ab", "random_init": False}}) == [
        "- Weights: checkpoint sha256 ab."
    ]


def test_export_check_json(artifacts):
    from escnet_export.cli import app

    result = CliRunner().invoke(app, ["check", str(artifacts), "--json", "--no-fp16"])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.stdout)
    assert report["ready"] is (result.exit_code == 0)
    assert {g["name"] for g in report["graphs"]} >= {"image_encoder", "text_encoder", "decoder"}
    assert all({"nodes", "opset", "bytes", "errors", "warnings", "findings"} <= set(g) for g in report["graphs"])
