"""The vocabulary file: class embeddings computed once, for consumers without a text encoder (C++).

Format (``VOCAB_FORMAT``, version ``VOCAB_FORMAT_VERSION``): a safetensors file
(https://huggingface.co/docs/safetensors): 8 bytes little-endian header length N, N bytes of
JSON header, then the raw tensor bytes. One tensor, ``class_embeddings``: float32 (T, P, D),
little-endian, C order (T classes, P templates, D embedding width), L2-normalised per template,
exactly what the runtime's text encoder returns. ``__metadata__`` (string values, as safetensors
requires; lists are JSON-encoded):

| key | value |
|---|---|
| format, format_version | "escnet-vocabulary", "1" |
| class_names | JSON list of the T names, in label order |
| templates | JSON list of the P templates |
| text_encoder_sha256 | sha256 of the text_encoder.onnx that ran (a consumer compares it with its manifest's) |
| tokenizer_sha256, context_length, precision | the rest of the text encoder's identity |
| embeddings_sha256 | sha256 of the tensor's bytes (a damaged file is refused) |
| colours | JSON list of T [r, g, b] label colours (the runtime's palette) |

A consumer refuses a file whose format version is newer, whose text encoder or tokenizer differs
from its artifacts' manifest, or whose (P, D) differs from the decoder's class_embeddings input.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from escnet_runtime.cache import ModelIdentity
from escnet_runtime.contract import CLASS_EMBEDDINGS, VOCAB_FORMAT, VOCAB_FORMAT_VERSION
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import atomic_path
from escnet_runtime.render import palette

if TYPE_CHECKING:
    from escnet_runtime.segmenter import Segmenter

MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header


@dataclass(frozen=True)
class VocabularyFile:
    """class_names (T,), templates (P,), embeddings (T, P, D) float32, and the encoder's identity."""

    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    embeddings: np.ndarray
    identity: ModelIdentity


def write_vocabulary(path: str | Path, vocab: VocabularyFile) -> Path:
    """Write ``vocab`` as a safetensors file, atomically."""
    emb = np.ascontiguousarray(vocab.embeddings, dtype="<f4")
    t, p, _ = emb.shape  # (T, P, D)
    if t != len(vocab.class_names) or p != len(vocab.templates):
        raise InputError(f"embeddings {emb.shape} do not match {t} class names and {p} templates")
    ident = vocab.identity
    meta = {
        "format": VOCAB_FORMAT,
        "format_version": str(VOCAB_FORMAT_VERSION),
        "class_names": json.dumps(list(vocab.class_names), ensure_ascii=False),
        "templates": json.dumps(list(vocab.templates), ensure_ascii=False),
        "text_encoder_sha256": ident.text_encoder_sha256,
        "tokenizer_sha256": ident.tokenizer_sha256,
        "context_length": str(ident.context_length),
        "precision": ident.precision,
        "embeddings_sha256": hashlib.sha256(emb.tobytes()).hexdigest(),
        "colours": json.dumps(palette(t).tolist()),
    }
    tensor = {"dtype": "F32", "shape": list(emb.shape), "data_offsets": [0, emb.nbytes]}
    header = json.dumps({"__metadata__": meta, CLASS_EMBEDDINGS: tensor}, ensure_ascii=False).encode("utf-8")
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
    target = Path(path)
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            f.write(emb.tobytes())
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates it private; the file follows the umask
    except OSError as e:
        raise InputError(f"{target}: cannot write the vocabulary file ({e.strerror or e})") from None
    return target


def read_vocabulary(path: str | Path) -> VocabularyFile:
    """Read a vocabulary file; a one-line InputError for anything that is not one (or is newer)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the vocabulary file ({e.strerror or e})") from None
    try:
        (n,) = struct.unpack("<Q", data[:8])
        if n > MAX_HEADER or 8 + n > len(data):
            raise ValueError("header length out of range")
        header = json.loads(data[8 : 8 + n].decode("utf-8"))
        meta = header["__metadata__"]
        if meta.get("format") != VOCAB_FORMAT:
            raise ValueError(f"format {meta.get('format')!r}")
    except (ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as e:
        raise InputError(f"{path}: not an escnet vocabulary file ({e})") from None
    version = int(meta.get("format_version", "0"))
    if version > VOCAB_FORMAT_VERSION:
        raise InputError(f"{path}: vocabulary format version {version} is newer than {VOCAB_FORMAT_VERSION}")
    spec = header[CLASS_EMBEDDINGS]
    begin, end = spec["data_offsets"]
    shape = tuple(int(s) for s in spec["shape"])
    if spec["dtype"] != "F32" or len(shape) != 3 or end - begin != 4 * int(np.prod(shape)):
        raise InputError(f"{path}: class_embeddings must be float32 (T, P, D), got {spec['dtype']} {shape}")
    emb = np.frombuffer(data, dtype="<f4", count=(end - begin) // 4, offset=8 + n + begin).reshape(shape)
    if "embeddings_sha256" in meta and hashlib.sha256(emb.tobytes()).hexdigest() != meta["embeddings_sha256"]:
        raise InputError(f"{path}: the embeddings do not match their sha256 (a damaged vocabulary file)")
    identity = ModelIdentity(
        meta["text_encoder_sha256"], meta["tokenizer_sha256"], int(meta["context_length"]), meta["precision"]
    )
    names, templates = tuple(json.loads(meta["class_names"])), tuple(json.loads(meta["templates"]))
    return VocabularyFile(names, templates, emb.astype(np.float32), identity)


def vocabulary_of(segmenter: Segmenter, names: Sequence[str]) -> VocabularyFile:
    """The vocabulary file's contents for ``names`` from a ``Segmenter`` (its text encoder and cache)."""
    emb = segmenter.encode_vocabulary(names)
    return VocabularyFile(tuple(names), segmenter.templates, emb, segmenter.text.identity)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
