"""The artifacts manifest: the contract plus provenance, with the sha256 of every file.

``write_manifest`` is used by the exporter (last, after every file it lists is in place);
``load_manifest`` by the runtime: it validates the manifest (JSON Schema, then values), checks
that every path it names stays inside the folder and is a listed, regular file, and (``verify``)
the sha256 of each. ``read_verified`` is how every consumer reads a file of the folder: once,
confined to the folder, and checked against the manifest's sha256, so the bytes it hands to an
engine are the bytes that were hashed.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from escnet_runtime.contract import (
    FORMAT,
    FORMAT_MINOR,
    FORMAT_VERSION,
    LEGACY_TEXT_BATCH,
    MANIFEST_FILE,
    GraphSpec,
    Preprocess,
    Provenance,
    SlidingWindow,
    TokenizerSpec,
    legacy_sliding_window,
    provenance_from_sources,
)
from escnet_runtime.fileio import atomic_path
from escnet_runtime.manifest_checks import (
    ManifestFieldError,
    check_decoder_steps,
    check_relative,
    check_values,
    parse_json,
    validate_schema,
)

_CHUNK = 1 << 20
MAX_MANIFEST_BYTES = 64 << 20  # a manifest is a few hundred KiB; refuse to parse anything huge


class ManifestError(ValueError):
    """An artifacts folder that cannot be used: missing, tampered, or of another format."""


@dataclass(frozen=True)
class Manifest:
    preset: str
    graphs: dict[str, GraphSpec]
    preprocess: Preprocess
    tokenizer: TokenizerSpec
    templates: tuple[str, ...]
    opset: int
    files: dict[str, str]  # relative path -> sha256
    config: dict[str, Any] = field(default_factory=dict)  # the model config, for reference
    versions: dict[str, str] = field(default_factory=dict)  # torch, onnx, exporter, ...
    source_weights: dict[str, str] = field(default_factory=dict)  # role -> sha256 (or "random-init")
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the export parity table
    format_version: int = FORMAT_VERSION
    # The decoder's step graphs in run order (empty: only the all-classes decoder was exported),
    # and the classes per chunk the exporter recommends for them.
    decoder_steps: tuple[str, ...] = ()
    class_chunk: int | None = None
    provenance: Provenance | None = None  # the weights' origin in one line (None: exported before it was recorded)
    # Format 1.1: the sliding-window geometry and texts per text-encoder call (None: a 1.0 manifest).
    sliding_window: SlidingWindow | None = None
    text_batch: int | None = None
    # Format 1.2: the number format of the graphs' weights, one of WEIGHTS_PRECISIONS (None: older).
    precision: str | None = None

    @property
    def format_minor(self) -> int:
        """2 with the 1.1 fields and precision, 1 with the 1.1 fields only, 0 without them
        (see contract.FORMAT_MINOR)."""
        if self.sliding_window is None or self.text_batch is None:
            return 0
        return FORMAT_MINOR if self.precision is not None else 1

    def weights_precision(self) -> str:
        """The graphs' weights: the manifest's ``precision``, or for a manifest before 1.2 fp32."""
        return self.precision or "fp32"

    def sliding(self) -> SlidingWindow:
        """The sliding-window geometry: the manifest's, or for a 1.0 manifest the one it was used with."""
        return self.sliding_window or legacy_sliding_window(self.preprocess.image_size)

    def texts_per_call(self) -> int:
        """Texts per text-encoder call: the manifest's, or for a 1.0 manifest the old fixed value."""
        return self.text_batch or LEGACY_TEXT_BATCH

    def to_dict(self) -> dict[str, Any]:
        extra_1_1: dict[str, Any] = {}
        if self.format_minor >= 1:
            assert self.sliding_window is not None
            extra_1_1 = {"sliding_window": self.sliding_window.to_dict(), "text_batch": self.text_batch}
        if self.format_minor >= 2:
            extra_1_1["precision"] = self.precision
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "format_minor": self.format_minor,
            "preset": self.preset,
            "graphs": {name: g.to_dict() for name, g in self.graphs.items()},
            "preprocess": self.preprocess.to_dict(),
            "tokenizer": self.tokenizer.to_dict(),
            "templates": list(self.templates),
            "opset": self.opset,
            "config": self.config,
            "versions": self.versions,
            "source_weights": self.source_weights,
            "extra": self.extra,
            "decoder_steps": list(self.decoder_steps),
            "class_chunk": self.class_chunk,
            **extra_1_1,
            **({"provenance": self.provenance.to_dict()} if self.provenance is not None else {}),
            "files": dict(sorted(self.files.items())),
        }

    def weights_provenance(self) -> Provenance:
        """Where the weights came from: as recorded, or for an older manifest derived from ``source_weights``."""
        return self.provenance if self.provenance is not None else provenance_from_sources(self.source_weights)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Manifest:
        return Manifest(
            preset=d["preset"],
            graphs={name: GraphSpec.from_dict(name, g) for name, g in d["graphs"].items()},
            preprocess=Preprocess.from_dict(d["preprocess"]),
            tokenizer=TokenizerSpec.from_dict(d["tokenizer"]),
            templates=tuple(d["templates"]),
            opset=int(d["opset"]),
            files=dict(d["files"]),
            config=d.get("config", {}),
            versions=d.get("versions", {}),
            source_weights=d.get("source_weights", {}),
            extra=d.get("extra", {}),
            format_version=int(d["format_version"]),
            decoder_steps=tuple(d.get("decoder_steps", ())),
            class_chunk=None if d.get("class_chunk") is None else int(d["class_chunk"]),
            sliding_window=SlidingWindow.from_dict(d["sliding_window"]) if "sliding_window" in d else None,
            text_batch=int(d["text_batch"]) if "text_batch" in d else None,
            precision=d.get("precision"),
            provenance=Provenance.from_dict(d["provenance"]) if d.get("provenance") is not None else None,
        )


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (the listed files must already be in place)."""
    path = Path(folder) / MANIFEST_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def read_manifest_json(path: Path, form: str, kind: str, supported: int) -> dict[str, Any]:
    """The JSON object at ``path`` when its ``format`` is ``form`` and its ``format_version`` is at
    most ``supported``; ManifestError (one line) otherwise. ``kind`` names the format in messages
    ("an escnet artifacts manifest", "a baked-vocabulary manifest"). Artifacts and baked manifests
    are both read here."""
    try:
        if path.is_file() and path.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{path}: {path.stat().st_size} bytes is too large for a manifest")
        data = parse_json(path.read_text(encoding="utf-8"))
    except ManifestFieldError as e:
        raise ManifestError(f"{path}: {e}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict) or data.get("format") != form:
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ManifestError(f"{path}: not {kind} (format {got!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ManifestError(f"{path}: format_version: expected a whole number >= 1, got {version!r}")
    if version > supported:
        raise ManifestError(
            f"{path}: manifest format version {version} is newer than this runtime supports "
            f"({supported}); upgrade escnet_runtime"
        )
    return data


def _read_manifest_json(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST_FILE}; expected an artifacts folder written by escnet-export")
    return read_manifest_json(path, FORMAT, "an escnet artifacts manifest", FORMAT_VERSION)


def load_manifest(folder: str | Path, verify: bool = True) -> Manifest:
    """Read and check an artifacts folder's manifest.

    Refuses (ManifestError, one line naming the field): no manifest, unreadable JSON, another
    format, a newer format version, any field the schema or the value checks reject, a path
    outside the folder, a listed file that is missing or not a regular file, and with
    ``verify`` any file whose sha256 differs.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    data = _read_manifest_json(folder)
    try:
        validate_schema(data)
        check_values(data)
        manifest = Manifest.from_dict(data)
        check_decoder_steps(manifest.decoder_steps, manifest.graphs)
    except ManifestFieldError as e:
        raise ManifestError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:  # the schema should have caught it; still one line
        raise ManifestError(f"{path}: manifest is incomplete ({type(e).__name__}: {e})") from None
    for name in manifest.files:
        resolve_inside(folder, name)
    if verify:
        verify_files(folder, manifest)
    return manifest


def resolve_inside(folder: str | Path, name: str) -> Path:
    """``folder/name`` with symbolic links resolved, if it stays inside ``folder`` and is a regular
    file; else ManifestError. Errors never say anything about what lies outside the folder."""
    folder = Path(folder)
    try:
        check_relative(name, "path")
    except ManifestFieldError as e:
        raise ManifestError(f"{folder}: {e}") from None
    root = folder.resolve()
    target = (root / name).resolve()
    if not target.is_relative_to(root):
        raise ManifestError(f"{folder}: {name!r} leads outside the artifacts folder (a symbolic link); refused")
    if not target.is_file():
        what = "missing" if not target.exists() and not target.is_symlink() else "not a regular file"
        raise ManifestError(f"{folder}: {name} is listed in the manifest but {what}")
    return target


def _open_confined(folder: str | Path, name: str) -> BinaryIO:
    """``folder/name`` opened for reading: inside the folder, no link as its last part, a regular file."""
    target = resolve_inside(folder, name)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(target, flags)
    except OSError as e:
        raise ManifestError(f"{folder}: {name}: cannot read it ({e.strerror or e})") from None
    f = os.fdopen(fd, "rb")
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise ManifestError(f"{folder}: {name} is not a regular file")
    return f


def _check_digest(folder: str | Path, name: str, actual: str, expected: str, what: str) -> None:
    if actual != expected:
        raise ManifestError(
            f"{folder}: {name} does not match {what} (sha256 {actual[:12]}..., expected {expected[:12]}...)"
        )


def read_hashed(folder: str | Path, name: str, expected_sha256: str, what: str = "the manifest") -> bytes:
    """Read ``folder/name`` once (confined to ``folder``, a regular file) and check its sha256
    against ``expected_sha256``; returns exactly the bytes that were hashed."""
    with _open_confined(folder, name) as f:
        data = f.read()
    _check_digest(folder, name, hashlib.sha256(data).hexdigest(), expected_sha256, what)
    return data


def verify_hashed(folder: str | Path, name: str, expected_sha256: str, what: str = "the manifest") -> None:
    """As ``read_hashed``, streaming (for checks that keep no bytes)."""
    h = hashlib.sha256()
    with _open_confined(folder, name) as f:
        while block := f.read(_CHUNK):
            h.update(block)
    _check_digest(folder, name, h.hexdigest(), expected_sha256, what)


def read_verified(folder: Path, manifest: Manifest, name: str) -> bytes:
    """The bytes of a file the manifest lists, read once and checked against its sha256.

    ``name`` must be listed in ``manifest.files``; the file must resolve inside ``folder`` and be
    a regular file. Hand the returned bytes to the engine: they are the bytes that were hashed.
    """
    expected = manifest.files.get(name)
    if expected is None:
        raise ManifestError(f"{folder}: {name!r} is not listed in the manifest's files (it has no sha256); refused")
    return read_hashed(folder, name, expected)


def verify_files(folder: str | Path, manifest: Manifest) -> None:
    """Every listed file: inside the folder, a regular file, and its sha256 as listed."""
    for name, expected in manifest.files.items():
        verify_hashed(folder, name, expected)
