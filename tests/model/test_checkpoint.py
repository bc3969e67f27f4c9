import json

import pytest
import torch
from safetensors.torch import save_file

from escnet import CheckpointError, build_model, load_checkpoint, save_checkpoint


def test_round_trip(tmp_path, tiny_images):
    torch.manual_seed(3)
    model = build_model("tiny")
    path = save_checkpoint(model, tmp_path / "m.safetensors")
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temp file left
    loaded = load_checkpoint(path, preset="tiny")
    assert loaded.config == model.config
    with torch.no_grad():
        torch.testing.assert_close(loaded(tiny_images, ["a", "b"]), model(tiny_images, ["a", "b"]), rtol=0, atol=0)


def test_wrong_preset(tmp_path):
    path = save_checkpoint(build_model("tiny"), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match="is for preset 'tiny', expected 'vit-b16'"):
        load_checkpoint(path, preset="vit-b16")


def test_truncated(tmp_path):
    path = save_checkpoint(build_model("tiny"), tmp_path / "m.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_not_a_checkpoint_and_missing(tmp_path):
    other = tmp_path / "x.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(CheckpointError, match="not an ESC-Net checkpoint"):
        load_checkpoint(other)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        load_checkpoint(tmp_path / "missing.safetensors")


def test_newer_format_and_wrong_keys(tmp_path):
    model = build_model("tiny")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    from escnet.config import config_to_dict

    meta = {"format": "escnet", "format_version": "99", "config": json.dumps(config_to_dict(model.config))}
    newer = tmp_path / "newer.safetensors"
    save_file(state, str(newer), metadata=meta)
    with pytest.raises(CheckpointError, match="newer"):
        load_checkpoint(newer)
    meta["format_version"] = "1"
    state.pop("decoder.head.weight")
    partial = tmp_path / "partial.safetensors"
    save_file(state, str(partial), metadata=meta)
    with pytest.raises(CheckpointError, match="1 missing: decoder.head.weight"):
        load_checkpoint(partial)
