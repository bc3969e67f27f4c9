"""Fuzzing the safetensors header path of ``load_checkpoint`` (hypothesis, bounded to ~20 s).

Random files, a valid checkpoint file with its header bytes mutated, well-formed framing around
random header JSON, and valid files whose model config has random values: every one gives a
one-line CheckpointError, never another exception.
"""

from __future__ import annotations

import json
import struct
import tempfile
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save

from escnet import CheckpointError, get_config, load_checkpoint
from escnet.config import config_to_dict

CONFIG = json.dumps(config_to_dict(get_config("tiny")))
META = {"format": "escnet", "format_version": "1", "config": CONFIG}
VALID = save({"x": torch.zeros(2, 3), "y": torch.ones(4, dtype=torch.int64)}, metadata=META)
HEADER_END = 8 + struct.unpack("<Q", VALID[:8])[0]
FUZZ = settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _refused_in_one_line(data: bytes) -> str:
    """``data`` as a checkpoint file: loading it fails with a one-line CheckpointError and nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.safetensors"
        path.write_bytes(data)
        try:
            load_checkpoint(path)
        except CheckpointError as e:
            assert "\n" not in str(e) and str(path) in str(e), str(e)
            return str(e)
    raise AssertionError("a fuzzed file loaded")  # none of these holds the tiny model's tensors


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes(data: bytes) -> None:
    _refused_in_one_line(data)


@st.composite
def _mutated(draw: st.DrawFn) -> bytes:
    """The valid file with a few bytes of its length prefix or JSON header replaced, inserted or cut."""
    data = bytearray(VALID)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, HEADER_END - 1))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "flip"]))
        if kind == "replace":
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 8))]
        else:
            data[at] ^= 1 << draw(st.integers(0, 7))
    return bytes(data)


@FUZZ
@given(_mutated())
def test_mutated_header_bytes(data: bytes) -> None:
    _refused_in_one_line(data)


_BIG = st.integers(-(2**65), 2**65)
_TENSOR = st.fixed_dictionaries(
    {
        "dtype": st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "BOOL", "F64", "XX", ""]),
        "shape": st.lists(st.one_of(st.integers(-2, 8), _BIG), max_size=4),
        "data_offsets": st.lists(st.one_of(st.integers(-1, 64), _BIG), max_size=3),
    }
)
_META_VALUES = st.one_of(
    st.sampled_from(["escnet", "1", "0", "99", CONFIG, CONFIG[:-1], "{}", "[]", "null", '{"preset": "tiny"}']),
    st.text(max_size=16),
    st.integers(),
    st.none(),
)
_METADATA = st.dictionaries(st.sampled_from(["format", "format_version", "config", "provenance", "x"]), _META_VALUES)
_HEADER = st.dictionaries(
    st.one_of(st.just("__metadata__"), st.sampled_from(["x", "y", "clip.visual.proj"]), st.text(max_size=6)),
    st.one_of(_TENSOR, _METADATA, st.integers(), st.text(max_size=8), st.none()),
    max_size=4,
)


@FUZZ
@given(_HEADER, st.one_of(st.none(), st.integers(0, 2**64 - 1)), st.binary(max_size=64))
def test_random_header_json(header: dict, length: int | None, body: bytes) -> None:
    """A JSON header of random tensors and metadata; the length prefix true or random."""
    text = json.dumps(header).encode()
    prefix = struct.pack("<Q", len(text) if length is None else length)
    _refused_in_one_line(prefix + text + body)


def _paths(tree: dict, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every field of a config dict, nested ones as (section, field)."""
    out = []
    for key, value in tree.items():
        out += _paths(value, (*prefix, key)) if isinstance(value, dict) else [(*prefix, key)]
    return out


_CONFIG = config_to_dict(get_config("tiny"))
_FIELDS = _paths(_CONFIG) + [("clip",), ("prompt",), ("unknown",), ("sam", "unknown")]
_VALUES = st.one_of(
    st.integers(-3, 70),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.one_of(st.integers(-2, 300), st.text(max_size=3)), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.just("delete"),
)


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(_FIELDS), _VALUES), min_size=1, max_size=3))
def test_random_config_values(changes: list) -> None:
    """A well-formed file whose config has one to three fields set to random values (or removed)."""
    config = json.loads(json.dumps(_CONFIG))
    for path, value in changes:
        parent = config
        for key in path[:-1]:
            if not isinstance(parent.get(key), dict):
                parent[key] = {}
            parent = parent[key]
        if value == "delete":
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = value
    meta = {**META, "config": json.dumps(config)}
    message = _refused_in_one_line(save({"x": torch.zeros(2, 3)}, metadata=meta))
    assert "does not build a model" not in message  # the config checks, not a module, refused it
