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
| class_names_sha256 | sha256 of the class_names string's UTF-8 bytes (a renamed class is refused; not in older files) |
| colours | JSON list of T [r, g, b] label colours, whole numbers 0..255 (the runtime's palette) |

A consumer refuses (``vocab_checks.py``; the contract test vectors in
``tests/support/contract_vectors`` hold the cases every runtime must refuse) a file whose format
version is newer, whose header does not fit the file, whose names are not T distinct non-blank
names, whose colours are not T colours 0..255, whose embeddings are not finite unit vectors or
differ from their sha256, whose text encoder, tokenizer or templates differ from its artifacts'
manifest, or whose (P, D) differs from the decoder's class_embeddings input.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from escnet_runtime.contract import CLASS_EMBEDDINGS, VOCAB_FORMAT, VOCAB_FORMAT_VERSION
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import atomic_path
from escnet_runtime.manifest import Manifest
from escnet_runtime.render import palette
from escnet_runtime.vocab_checks import MAX_HEADER, NAMES_HASH, VocabularyFile, check_for_artifacts, parse_vocabulary

if TYPE_CHECKING:
    from escnet_runtime.segmenter import Segmenter

__all__ = ["MAX_HEADER", "VocabularyFile", "read_vocabulary", "vocabulary_of", "write_vocabulary"]


def write_vocabulary(path: str | Path, vocab: VocabularyFile) -> Path:
    """Write ``vocab`` as a safetensors file, atomically."""
    emb = np.ascontiguousarray(vocab.embeddings, dtype="<f4")
    t, p, _ = emb.shape  # (T, P, D)
    if t != len(vocab.class_names) or p != len(vocab.templates):
        raise InputError(f"embeddings {emb.shape} do not match {t} class names and {p} templates")
    ident = vocab.identity
    names = json.dumps(list(vocab.class_names), ensure_ascii=False)
    meta = {
        "format": VOCAB_FORMAT,
        "format_version": str(VOCAB_FORMAT_VERSION),
        "class_names": names,
        NAMES_HASH: hashlib.sha256(names.encode("utf-8")).hexdigest(),
        "templates": json.dumps(list(vocab.templates), ensure_ascii=False),
        "text_encoder_sha256": ident.text_encoder_sha256,
        "tokenizer_sha256": ident.tokenizer_sha256,
        "context_length": str(ident.context_length),
        "precision": ident.precision,
        "embeddings_sha256": hashlib.sha256(emb.tobytes()).hexdigest(),
        "colours": json.dumps([list(c) for c in vocab.colours] if vocab.colours else palette(t).tolist()),
    }
    tensor = {"dtype": "F32", "shape": list(emb.shape), "data_offsets": [0, emb.nbytes]}
    header = json.dumps({"__metadata__": meta, CLASS_EMBEDDINGS: tensor}, ensure_ascii=False).encode("utf-8")
    header += b" " * (-len(header) % 8)  # the data starts 8-byte aligned
    target = Path(path)
    try:
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(header)))
            f.write(header)
            f.write(emb.tobytes())  # atomic_path gave the file the umask's permissions
    except OSError as e:
        raise InputError(f"{target}: cannot write the vocabulary file ({e.strerror or e})") from None
    return target


def read_vocabulary(path: str | Path, manifest: Manifest | None = None) -> VocabularyFile:
    """Read a vocabulary file; a one-line InputError (``PATH: field: what is wrong``) for anything
    that is not a usable one. With ``manifest``: also refused unless written for those artifacts."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read the vocabulary file ({e.strerror or e})") from None
    try:
        vocab = parse_vocabulary(data)
        if manifest is not None:
            check_for_artifacts(vocab, manifest)
    except InputError as e:
        raise InputError(f"{path}: {e}") from None
    return vocab


def vocabulary_of(segmenter: Segmenter, names: Sequence[str]) -> VocabularyFile:
    """The vocabulary file's contents for ``names`` from a ``Segmenter`` (its text encoder and cache)."""
    emb = segmenter.encode_vocabulary(names)
    return VocabularyFile(tuple(names), segmenter.templates, emb, segmenter.text.identity)
