"""Untrusted checkpoints: malformed metadata, hostile configs, header shapes, pickles, NaN, file modes."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from escnet import CheckpointError, get_config, load_checkpoint, save_checkpoint
from escnet.config import config_to_dict
from escnet.config_check import config_from_dict
from escnet.errors import ConfigError

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _tiny_dict() -> dict:
    return config_to_dict(get_config("tiny"))


def _write(path: Path, config: object, tensors: dict | None = None, **meta: str) -> Path:
    """A safetensors file in the checkpoint layout with any metadata (tensors: a tiny default)."""
    metadata = {"format": "escnet", "format_version": "1", "config": json.dumps(config), **meta}
    save_file(tensors if tensors is not None else {"x": torch.zeros(1)}, str(path), metadata=metadata)
    return path


def _one_line(message: str) -> None:
    assert "\n" not in message and "Traceback" not in message, message


@pytest.mark.parametrize("version", ["abc", "", "-1", "0", "1.5", "1e3", "99999999999", " 1"])
def test_malformed_format_version_is_one_line(tmp_path: Path, version: str) -> None:
    path = _write(tmp_path / "m.safetensors", _tiny_dict(), format_version=version)
    with pytest.raises(CheckpointError, match="format_version") as e:
        load_checkpoint(path)
    _one_line(str(e.value))


@pytest.mark.parametrize(
    "config, fragment",
    [
        ("not json {", "config is unreadable"),
        ("[1, 2]", "JSON object"),
        ('{"preset": "tiny"}', "fields missing"),
        ('{"preset": "tiny", "clip": 5}', "config.clip must be an object"),
    ],
)
def test_malformed_config_text_is_one_line(tmp_path: Path, config: str, fragment: str) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"x": torch.zeros(1)}, str(path), metadata={"format": "escnet", "format_version": "1", "config": config})
    with pytest.raises(CheckpointError, match=fragment) as e:
        load_checkpoint(path)
    _one_line(str(e.value))


def _with(section: str | None, **changes: object) -> dict:
    data = _tiny_dict()
    (data if section is None else data[section]).update(changes)
    return data


@pytest.mark.parametrize(
    "data, fragment",
    [
        (_with("clip", vision_width=-5), "clip.vision_width = -5 is not in 1..16384"),
        (_with("clip", vision_width=0), "clip.vision_width = 0"),
        (_with("clip", vision_layers=10**9), "clip.vision_layers = 1000000000 is not in 1..256"),
        (_with("clip", vision_heads=3), "clip.vision_heads = 3 does not divide clip.vision_width = 64"),
        (_with("clip", vision_width="64"), "clip.vision_width = '64' is not int"),
        (_with("clip", vision_width=True), "clip.vision_width = True is not int"),
        (_with("sam", heads=5), "sam.heads = 5 does not divide sam.dim = 32"),
        (_with("fusion", shift=4), "fusion.shift = 4 is not in 0..window-1"),
        (_with("prompt", temperature=float("nan")), "prompt.temperature = nan is not a finite float"),
        (_with("prompt", alpha=1.5), "prompt.alpha = 1.5 is not in (0, 1)"),
        (_with(None, image_size=100), "clip.patch_size = 16 does not divide image_size = 100"),
        (_with(None, guidance_layers=[1, 9]), "guidance_layers (1, 9) must be CLIP blocks 0..3"),
        (_with(None, guidance_layers=[1]), "guidance_layers = (1,) is not tuple[int, int]"),
        (_with(None, templates=["no placeholder"]), "exactly one '{}'"),
        (_with(None, class_chunk=0), "class_chunk = 0"),
        (_with(None, corr_kernel=4), "corr_kernel = 4 must be odd"),
    ],
)
def test_bad_configs_are_refused_before_building(data: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as e:
        config_from_dict(data)
    assert fragment in str(e.value)
    _one_line(str(e.value))


def test_every_preset_config_passes_the_checks() -> None:
    for preset in ("tiny", "vit-b16", "vit-l14"):
        assert config_from_dict(config_to_dict(get_config(preset))) == get_config(preset)


def test_huge_claimed_model_fails_on_the_header_without_allocating(tmp_path: Path, monkeypatch) -> None:
    """A 140-byte file claiming a 4096-wide, 24-layer CLIP: refused from the header's shapes; the
    model is only ever built on the meta device (no memory for its tensors)."""
    import escnet.checkpoint as checkpoint

    data = _with("clip", vision_width=4096, vision_layers=24, vision_heads=32)
    path = _write(tmp_path / "huge.safetensors", data, {"clip.visual.proj": torch.zeros(2)})
    assert path.stat().st_size < 4096
    devices, real = [], checkpoint.ESCNet

    def spy(config):
        devices.append(torch.empty(0).device.type)  # the default device the model is built on
        return real(config)

    monkeypatch.setattr(checkpoint, "ESCNet", spy)
    with pytest.raises(CheckpointError, match="does not match the model") as e:
        load_checkpoint(path)
    assert devices == ["meta"]
    _one_line(str(e.value))
    assert "missing" in str(e.value) and "wrong shape" in str(e.value)


def test_header_shape_mismatch_and_extra_keys_are_reported(tmp_path: Path, tiny_model) -> None:
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(tiny_model, path)
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    key = next(k for k, v in state.items() if v.dim() == 2)
    state[key] = torch.zeros(3, 3)
    state["extra.weight"] = torch.zeros(1)
    meta = {"format": "escnet", "format_version": "1", "config": json.dumps(_tiny_dict())}
    bad = tmp_path / "bad.safetensors"
    save_file(state, str(bad), metadata=meta)
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(bad)
    assert f"{key}: file (3, 3)" in str(e.value) and "1 unexpected: extra.weight" in str(e.value)
    _one_line(str(e.value))
    load_checkpoint(path, preset="tiny")  # the good one still loads


def test_nan_weights_are_refused(tmp_path: Path, tiny_model) -> None:
    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    key = next(k for k, v in state.items() if v.is_floating_point())
    state[key].view(-1)[0] = float("nan")
    path = tmp_path / "nan.safetensors"
    save_file(
        state, str(path), metadata={"format": "escnet", "format_version": "1", "config": json.dumps(_tiny_dict())}
    )
    with pytest.raises(CheckpointError, match="hold NaN or Inf"):
        load_checkpoint(path)


def test_checkpoint_honours_the_umask(tmp_path: Path, tiny_model) -> None:
    old = os.umask(0o027)
    try:
        path = save_checkpoint(tiny_model, tmp_path / "a.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temporary file left


def test_pickle_with_code_is_refused_plainly(tmp_path: Path) -> None:
    """The refusal says the file holds code and was not loaded, never torch's weights_only advice."""
    from escnet.state_dict import read_state_dict

    path = tmp_path / "sam.pth"
    marker = tmp_path / "ran"
    # os.system would run at load time if this were unpickled without weights_only
    torch.save({"prompt_encoder.x": torch.zeros(1), "y": _Code(f"touch {marker}")}, path)
    with pytest.raises(CheckpointError) as e:
        read_state_dict(path)
    text = str(e.value)
    _one_line(text)
    assert "holds code" in text and "not loaded" in text and "posix.system" in text
    assert "weights_only" not in text and "Re-running" not in text
    assert not marker.exists()


class _Code:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_cli_refusals_are_one_line(tmp_path: Path) -> None:
    """Through a console script: format_version 'abc', vision_width -5 and a pickle, exit 2, one line."""
    bad_version = _write(tmp_path / "v.safetensors", _tiny_dict(), format_version="abc")
    bad_width = _write(tmp_path / "w.safetensors", _with("clip", vision_width=-5))
    evil = tmp_path / "evil.pt"
    torch.save({"x": _Code("true")}, evil)
    script = (
        "import sys\n"
        "from escnet_export.cli import main\n"
        "sys.argv = ['escnet-export', 'onnx', '--preset', 'tiny', '--checkpoint', sys.argv[1], '--out', sys.argv[2]]\n"
        "main()\n"
    )
    for ckpt, fragment in ((bad_version, "format_version 'abc'"), (bad_width, "clip.vision_width = -5")):
        out = tmp_path / "out"
        r = subprocess.run(
            [sys.executable, "-c", script, str(ckpt), str(out)], env=ENV, capture_output=True, text=True, timeout=300
        )
        assert r.returncode == 2, r.stderr
        errors = [line for line in r.stderr.splitlines() if "error" in line]
        assert len(errors) == 1 and fragment in errors[0] and "Traceback" not in r.stderr, r.stderr
        assert not out.exists()
    from escnet.training.state import TrainStateError, load_state

    with pytest.raises(TrainStateError, match="holds code") as e:
        load_state(evil)
    _one_line(str(e.value))
