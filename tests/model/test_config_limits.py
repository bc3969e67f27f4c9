"""Configs that cost work without weights (k-means regions and iterations, the grid, templates) are
bounded by that cost before anything is built; escnet-info bounds its class count and its forwards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from escnet import CheckpointError, get_config, load_checkpoint
from escnet.config import config_to_dict
from escnet.config_check import config_from_dict
from escnet.config_limits import MAX_KMEANS_ITERS, MAX_PROMPT_WORK, MAX_REGIONS, prompt_work
from escnet.errors import ConfigError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _tiny(**sections: dict) -> dict:
    """The tiny preset's config dict with ``sections`` merged in ("top": top-level fields)."""
    data = config_to_dict(get_config("tiny"))
    for section, changes in sections.items():
        (data if section == "top" else data[section]).update(changes)
    return data


def _write(path: Path, config: dict) -> Path:
    metadata = {"format": "escnet", "format_version": "1", "config": json.dumps(config)}
    save_file({"x": torch.zeros(1)}, str(path), metadata=metadata)
    return path


HOSTILE = [
    (_tiny(prompt={"num_regions": 10**6}), f"prompt.num_regions = 1000000 is not in 1..{MAX_REGIONS}"),
    (_tiny(prompt={"kmeans_iters": 10**6}), f"prompt.kmeans_iters = 1000000 is not in 1..{MAX_KMEANS_ITERS}"),
    (_tiny(prompt={"num_regions": MAX_REGIONS + 1}), f"is not in 1..{MAX_REGIONS}"),
    (_tiny(prompt={"kmeans_iters": MAX_KMEANS_ITERS + 1}), f"is not in 1..{MAX_KMEANS_ITERS}"),
    (_tiny(top={"templates": ["a {}"] * 257}), "templates (count) = 257 is not in 1..256"),
    (_tiny(top={"image_size": 8192}), "a 512x512 grid, over the 64x64 limit"),
    (_tiny(top={"image_size": 64}, prompt={"num_regions": 40}), "prompt.num_regions = 40 is more than the 4x4"),
    (_tiny(fusion={"window": 16, "shift": 2}), "fusion.window = 16 does not divide the grid (image_size / clip"),
    (_tiny(fusion={"window": 3, "shift": 1}), "fusion.window = 3 does not divide the grid (image_size / clip"),
    (
        _tiny(top={"image_size": 1024}, prompt={"num_regions": 64, "kmeans_iters": 100}),
        f"= 4096 * 64 * 164 = 42991616 is over the limit {MAX_PROMPT_WORK}",
    ),
    (_tiny(clip={"vision_heads": 0}), "clip.vision_heads = 0 is not in 1..16384"),
    (_tiny(clip={"patch_size": 0}), "clip.patch_size = 0 is not in 1..8192"),
    (_tiny(sam={"heads": 0}), "sam.heads = 0 is not in 1..16384"),
    (_tiny(sam={"num_mask_tokens": -1}), "sam.num_mask_tokens = -1 is not in 1..64"),
    (_tiny(sam={"num_mask_tokens": 10**6}), "sam.num_mask_tokens = 1000000 is not in 1..64"),
    (_tiny(top={"corr_dim": 2}), "corr_dim = 2 must be larger than decoder_guidance_dims[0] = 8"),
    (_tiny(top={"decoder_dims": [4, 8]}), "decoder_dims[0] = 4 must be larger than decoder_guidance_dims[1] = 4"),
    (_tiny(prompt={"mask_prob_eps": 0.0}), "prompt.mask_prob_eps = 0.0 is not in (0, 0.5)"),
    (_tiny(prompt={"mask_prob_eps": 0.5}), "prompt.mask_prob_eps = 0.5 is not in (0, 0.5)"),
]


@pytest.mark.parametrize("data, fragment", HOSTILE, ids=[f for _, f in HOSTILE])
def test_costly_configs_are_refused_naming_the_field_and_the_limit(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict(data)
    assert fragment in str(e.value) and "\n" not in str(e.value), str(e.value)


@pytest.mark.parametrize("data, fragment", HOSTILE[:2] + HOSTILE[5:6], ids=["regions", "iters", "grid"])
def test_a_checkpoint_with_a_costly_config_builds_nothing(data: dict, fragment: str, tmp_path: Path, monkeypatch):
    import escnet.checkpoint as checkpoint

    built = []
    monkeypatch.setattr(checkpoint, "ESCNet", lambda config: built.append(config))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(_write(tmp_path / "c.safetensors", data))
    assert fragment in str(e.value) and "\n" not in str(e.value)
    assert built == []  # not even on the meta device


def test_the_limits_themselves_are_accepted_and_run() -> None:
    """Every limit is reachable: the tiny model at 64 regions (its 8x8 grid's every pixel) and 100
    iterations builds and segments."""
    from escnet.modeling.model import ESCNet

    data = _tiny(prompt={"num_regions": MAX_REGIONS, "kmeans_iters": MAX_KMEANS_ITERS})
    config = config_from_dict(data)
    assert prompt_work(config) <= MAX_PROMPT_WORK
    torch.manual_seed(0)
    model = ESCNet(config).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 128, 128), ["cat", "sky", "road"])
    assert logits.shape[:2] == (1, 3) and bool(torch.isfinite(logits).all())
    for preset in ("tiny", "vit-b16", "vit-l14"):
        assert prompt_work(get_config(preset)) * 100 < MAX_PROMPT_WORK  # the presets are far inside


def test_export_cli_refuses_a_costly_checkpoint_in_one_line(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from escnet_export.cli import main\n"
        "sys.argv = ['escnet-export', 'onnx', '--preset', 'tiny', '--checkpoint', sys.argv[1], '--out', sys.argv[2]]\n"
        "main()\n"
    )
    for name, (data, fragment) in (("regions", HOSTILE[0]), ("iters", HOSTILE[1])):
        ckpt, out = _write(tmp_path / f"{name}.safetensors", data), tmp_path / f"out_{name}"
        r = subprocess.run(
            [sys.executable, "-c", script, str(ckpt), str(out)], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 2, r.stderr
        errors = [line for line in r.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in r.stderr, r.stderr
        assert "checkpoint invalid model config" in errors[0]
        assert not out.exists()


def test_info_refuses_a_huge_class_count_in_one_line() -> None:
    r = subprocess.run(
        [sys.executable, "-c", "from escnet.cli import main; main()", "--classes", "100000000", "--no-forward"],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "'--classes'" in lines[0] and "4096" in lines[0], r.stderr


def test_info_refuses_costly_forwards_before_counting(monkeypatch) -> None:
    """The forwards' work is estimated first (from 1 and 2 classes); over the limit nothing else runs."""
    import escnet.cli as cli
    import escnet.flops as flops
    from escnet.modeling.model import ESCNet

    counted, real = [], flops.graph_costs

    def spy(model, num_classes, batch=1):
        counted.append(num_classes)
        return real(model, num_classes, batch)

    monkeypatch.setattr(flops, "graph_costs", spy)
    estimate = flops.forward_gflops_estimate(ESCNet(get_config("tiny")), 300, 2) / 1000
    monkeypatch.setattr(cli, "MAX_FORWARD_TFLOPS", estimate / 2)  # the tiny model's forwards, made too costly
    counted.clear()
    r = CliRunner().invoke(cli.app, ["--preset", "tiny", "--classes", "300", "--rounds", "2"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "TFLOPs limit; pass --no-forward" in lines[0], r.output
    assert counted == [1, 2]
    r = CliRunner().invoke(cli.app, ["--preset", "tiny", "--classes", "300", "--rounds", "2", "--no-forward"])
    assert r.exit_code == 0 and "GFLOPs per image" in r.output


def test_forward_estimate_is_close_to_the_count() -> None:
    from escnet.flops import catseg_costs, forward_gflops_estimate, graph_costs
    from escnet.modeling.model import ESCNet

    model = ESCNet(get_config("tiny"))
    for classes in (1, 40, 150):
        costs = graph_costs(model, classes)
        by = {c.graph: c.gflops for c in costs}
        cat = catseg_costs(model, costs, classes)[-1].gflops
        exact = by["text_encoder"] + 3 * (2 * by["image_encoder"] + by["decoder"] + cat)
        assert forward_gflops_estimate(model, classes, 2) == pytest.approx(exact, rel=0.03)
