"""Builds the damaged inputs the contract vectors describe (format in this folder's README.md).

``load_vectors()`` reads every vector; ``apply_vector(vector, source, work)`` writes a damaged copy
of ``source`` (an artifacts folder, a baked folder or a vocabulary file, by the vector's kind)
under ``work`` and returns its path. Shared by the Python and the C++ runtime's tests.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).parent
KINDS = ("manifest", "baked_manifest", "vocabulary")
VOCAB_CLASSES = ("sky", "grass")  # the base vocabulary file's classes


def load_vectors() -> list[dict[str, Any]]:
    """Every vector, sorted by name; each checked to have the documented keys."""
    vectors = []
    for path in sorted(HERE.glob("*.json")):
        v = json.loads(path.read_text(encoding="utf-8"))
        assert v["name"] == path.stem, f"{path.name}: name {v['name']!r} differs from the file name"
        assert v["kind"] in KINDS, f"{path.name}: kind {v['kind']!r}"
        assert isinstance(v["patch"], dict) and isinstance(v["error"], str) and v["error"], path.name
        vectors.append(v)
    return vectors


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON Merge Patch: objects merge key by key, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def _patched_folder(vector: dict[str, Any], folder: Path, work: Path) -> Path:
    copy = work / vector["name"]
    shutil.copytree(folder, copy)
    manifest = copy / "manifest.json"
    data = merge_patch(json.loads(manifest.read_text(encoding="utf-8")), vector["patch"])
    manifest.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return copy


def _patched_vocabulary(vector: dict[str, Any], file: Path, work: Path) -> Path:
    raw = file.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    body = bytearray(raw[8 + n :])
    edit = vector.get("embeddings")
    if edit is not None:
        spec = header["class_embeddings"]
        emb = np.frombuffer(bytes(body), dtype="<f4").reshape(spec["shape"]).copy()  # (T, P, D)
        fill = float(edit["fill"])  # "nan" and "inf" included
        emb[slice(None) if edit.get("class") is None else int(edit["class"])] = fill
        body = bytearray(emb.tobytes())
    if vector.get("rehash", False):
        header["__metadata__"]["embeddings_sha256"] = hashlib.sha256(bytes(body)).hexdigest()
    header = merge_patch(header, vector["patch"])
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    out = work / f"{vector['name']}.escvocab"
    out.write_bytes(struct.pack("<Q", len(text)) + text + bytes(body))
    return out


def apply_vector(vector: dict[str, Any], source: Path, work: Path) -> Path:
    """The damaged copy of ``source`` under ``work``: a folder (manifest kinds) or a vocabulary file."""
    work.mkdir(parents=True, exist_ok=True)
    if vector["kind"] == "vocabulary":
        return _patched_vocabulary(vector, source, work)
    return _patched_folder(vector, source, work)
