"""Checks of a vocabulary file's bytes (format in ``vocab_file.py``), before anything is built from it.

Every failure is one InputError line naming the field (``colours``, ``class_names``,
``data_offsets``, ...), the same fields the contract test vectors name for every runtime.
``parse_vocabulary`` checks the file alone; ``check_for_artifacts`` checks it against the
artifacts' manifest it is used with (text encoder, tokenizer, templates, the decoder's (P, D)).
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from escnet_runtime.cache import NORM_TOLERANCE, ModelIdentity, embedding_problem
from escnet_runtime.contract import CLASS_EMBEDDINGS, DECODER, TEXT_ENCODER, VOCAB_FORMAT, VOCAB_FORMAT_VERSION
from escnet_runtime.errors import InputError
from escnet_runtime.manifest import Manifest
from escnet_runtime.vocabulary import MAX_CLASSES, check_class_names

MAX_HEADER = 100 << 20  # safetensors' own limit on the JSON header
NAMES_HASH = "class_names_sha256"  # sha256 of the class_names metadata string's UTF-8 bytes


@dataclass(frozen=True)
class VocabularyFile:
    """class_names (T,), templates (P,), embeddings (T, P, D) float32, colours (T, 3), and the encoder's identity."""

    class_names: tuple[str, ...]
    templates: tuple[str, ...]
    embeddings: np.ndarray
    identity: ModelIdentity
    colours: tuple[tuple[int, int, int], ...] = ()


def _fail(field: str, what: str) -> InputError:
    return InputError(f"{field}: {what}")


def _header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header (an object) and where the tensor bytes start."""
    if len(data) < 8:
        raise _fail("header", f"the file has {len(data)} bytes, fewer than the 8 of its header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER or 8 + n > len(data):
        raise _fail("header", f"a header length of {n} bytes does not fit the file ({len(data)} bytes)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _fail("header", f"not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict):
        raise _fail("header", "expected a JSON object")
    return header, 8 + n


def _no_constant(word: str) -> Any:
    raise ValueError(f"non-finite number {word}")


def _metadata(header: dict[str, Any]) -> dict[str, str]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _fail("__metadata__", "expected an object of strings")
    if meta.get("format") != VOCAB_FORMAT:
        raise _fail("format", f"expected {VOCAB_FORMAT!r} (not an escnet vocabulary file), got {meta.get('format')!r}")
    version = meta.get("format_version", "")
    if not version.isascii() or not version.isdigit() or len(version) > 6:
        raise _fail("format_version", f"expected a whole number, got {version[:20]!r}")
    if int(version) > VOCAB_FORMAT_VERSION:
        raise _fail("format_version", f"{int(version)} is newer than this runtime supports ({VOCAB_FORMAT_VERSION})")
    return meta


def _json_field(meta: dict[str, str], key: str) -> Any:
    if key not in meta:
        raise _fail(key, "missing from the metadata")
    try:
        return json.loads(meta[key], parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise _fail(key, "not JSON") from None


def _shape(spec: Any) -> tuple[int, int, int]:
    if not isinstance(spec, dict) or spec.get("dtype") != "F32":
        raise _fail(CLASS_EMBEDDINGS, "expected a float32 (F32) tensor (T, P, D)")
    shape = spec.get("shape")
    ok = isinstance(shape, list) and len(shape) == 3
    if not ok or not all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= 1 << 20 for s in shape):
        raise _fail(CLASS_EMBEDDINGS, f"expected a shape (T, P, D) of 3 sizes >= 1, got {str(shape)[:40]}")
    if shape[0] > MAX_CLASSES:
        raise _fail(CLASS_EMBEDDINGS, f"{shape[0]} classes; at most {MAX_CLASSES} are supported")
    return shape[0], shape[1], shape[2]


def _tensor(header: dict[str, Any], data: bytes, start: int) -> np.ndarray:
    """The (T, P, D) float32 embeddings, their offsets checked against the file before any read."""
    spec = header.get(CLASS_EMBEDDINGS)
    t, p, d = _shape(spec)
    offsets = spec.get("data_offsets")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(o) is int for o in offsets)):
        raise _fail("data_offsets", "expected [begin, end]")
    begin, end, room = offsets[0], offsets[1], len(data) - start
    if not 0 <= begin <= end <= room or end - begin != 4 * t * p * d:
        raise _fail("data_offsets", f"[{begin}, {end}] is not {4 * t * p * d} bytes within the {room} after the header")
    return np.frombuffer(data, dtype="<f4", count=t * p * d, offset=start + begin).reshape(t, p, d)


def _colours(meta: dict[str, str], t: int) -> tuple[tuple[int, int, int], ...]:
    colours = _json_field(meta, "colours")
    ok = isinstance(colours, list) and len(colours) == t
    ok = ok and all(isinstance(c, list) and len(c) == 3 and all(_channel(v) for v in c) for c in colours)
    if not ok:
        raise _fail("colours", f"expected {t} colours [r, g, b] of whole numbers 0..255")
    return tuple((c[0], c[1], c[2]) for c in colours)


def _channel(value: object) -> bool:
    return type(value) is int and 0 <= value <= 255


def _names(meta: dict[str, str], t: int) -> tuple[str, ...]:
    names = _json_field(meta, "class_names")
    if not isinstance(names, list) or len(names) != t:
        raise _fail("class_names", f"expected a JSON list of {t} names (one per embedding)")
    try:
        check_class_names(names)
    except InputError as e:
        raise _fail("class_names", str(e)) from None
    digest = meta.get(NAMES_HASH)
    if digest is not None and hashlib.sha256(meta["class_names"].encode("utf-8")).hexdigest() != digest:
        raise _fail("class_names", f"do not match {NAMES_HASH} (a damaged vocabulary file)")
    return tuple(names)


def _identity(meta: dict[str, str]) -> ModelIdentity:
    for key in ("text_encoder_sha256", "tokenizer_sha256"):
        value = meta.get(key, "")
        if len(value) != 64 or not all(ch in "0123456789abcdef" for ch in value):
            raise _fail(key, "expected a sha256 (64 lower-case hex digits)")
    length = meta.get("context_length", "")
    if not length.isascii() or not length.isdigit() or not 2 <= int(length[:9]) <= 1 << 16:
        raise _fail("context_length", f"expected a whole number >= 2, got {length[:20]!r}")
    return ModelIdentity(meta["text_encoder_sha256"], meta["tokenizer_sha256"], int(length), meta.get("precision", ""))


def _embeddings(meta: dict[str, str], emb: np.ndarray) -> np.ndarray:
    if hashlib.sha256(emb.tobytes()).hexdigest() != meta.get("embeddings_sha256"):
        raise _fail("embeddings_sha256", "the embeddings do not match it (a damaged vocabulary file)")
    wide = emb.astype(np.float64)
    norms = np.sqrt((wide * wide).sum(axis=-1))  # (T, P); NaN or inf where a value is
    bad = ~(np.abs(norms - 1.0) <= NORM_TOLERANCE)
    if bad.any():
        t, p = (int(i) for i in np.argwhere(bad)[0])
        problem = embedding_problem(emb[t, p], 1.0)
        raise _fail(CLASS_EMBEDDINGS, f"class {t}, template {p}: {problem} (not a text embedding)")
    return emb.astype(np.float32)


def parse_vocabulary(data: bytes) -> VocabularyFile:
    """A vocabulary file's bytes -> VocabularyFile, or InputError (``field: what is wrong``)."""
    header, start = _header(data)
    meta = _metadata(header)
    emb = _tensor(header, data, start)
    t, p, _ = emb.shape
    names, colours = _names(meta, t), _colours(meta, t)
    templates = _json_field(meta, "templates")
    if not isinstance(templates, list) or len(templates) != p or not all(isinstance(x, str) for x in templates):
        raise _fail("templates", f"expected a JSON list of {p} templates (one per embedding)")
    return VocabularyFile(names, tuple(templates), _embeddings(meta, emb), _identity(meta), colours)


def check_for_artifacts(vocab: VocabularyFile, manifest: Manifest) -> None:
    """InputError unless ``vocab`` was written for these artifacts: their text encoder, tokenizer,
    templates, and the (P, D) the decoder's class embeddings input takes."""
    ident = vocab.identity
    if ident.text_encoder_sha256 != manifest.files.get(manifest.graphs[TEXT_ENCODER].file):
        raise _fail("text_encoder_sha256", "written by another text encoder than these artifacts'")
    if ident.tokenizer_sha256 != manifest.tokenizer.vocab_sha256:
        raise _fail("tokenizer_sha256", "written with another tokenizer than these artifacts'")
    if ident.context_length != manifest.tokenizer.context_length:
        want = manifest.tokenizer.context_length
        raise _fail("context_length", f"{ident.context_length}, these artifacts' is {want}")
    if vocab.templates != manifest.templates:
        raise _fail("templates", "written for other templates than these artifacts'")
    spec = next(t for t in manifest.graphs[DECODER].inputs if t.name == CLASS_EMBEDDINGS)
    want, got = tuple(spec.shape[1:]), vocab.embeddings.shape[1:]
    if want != got:
        raise _fail(CLASS_EMBEDDINGS, f"embeddings of (P, D) = {got}, the decoder takes {want}")
