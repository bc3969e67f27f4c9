"""The artifacts manifest: the contract plus provenance, with the sha256 of every file.

``write_manifest`` is used by the exporter (last, after every file it lists is in place);
``load_manifest`` by the runtime, which refuses a folder whose files do not match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .contract import (
    FORMAT,
    FORMAT_VERSION,
    MANIFEST_FILE,
    GraphSpec,
    Preprocess,
    Provenance,
    TokenizerSpec,
    provenance_from_sources,
)
from .fileio import atomic_path, sha256_file


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
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
            class_chunk=d.get("class_chunk"),
            provenance=Provenance.from_dict(d["provenance"]) if d.get("provenance") is not None else None,
        )


def write_manifest(folder: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (the listed files must already be in place)."""
    path = Path(folder) / MANIFEST_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")
    return path


def load_manifest(folder: str | Path, verify: bool = True) -> Manifest:
    """Read and check an artifacts folder's manifest.

    Refuses (ManifestError, one line): no manifest, unreadable JSON, another format, a newer
    format version, and with ``verify`` any listed file that is missing or whose sha256 differs.
    """
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    if not path.is_file():
        raise ManifestError(f"{folder}: no {MANIFEST_FILE}; expected an artifacts folder written by escnet-export")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: unreadable manifest ({e})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestError(f"{path}: not an escnet artifacts manifest (format {data.get('format')!r})")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ManifestError(
            f"{path}: manifest format version {version} is newer than this runtime supports "
            f"({FORMAT_VERSION}); upgrade escnet_runtime"
        )
    try:
        manifest = Manifest.from_dict(data)
    except (KeyError, TypeError, ValueError) as e:
        raise ManifestError(f"{path}: manifest is incomplete ({type(e).__name__}: {e})") from None
    missing = [g for g in manifest.decoder_steps if g not in manifest.graphs]
    if missing:
        raise ManifestError(f"{path}: decoder steps {missing} are not among its graphs")
    if manifest.class_chunk is not None and (not isinstance(manifest.class_chunk, int) or manifest.class_chunk < 1):
        raise ManifestError(f"{path}: class_chunk {manifest.class_chunk!r} is not a positive whole number")
    if verify:
        verify_files(folder, manifest)
    return manifest


def verify_files(folder: str | Path, manifest: Manifest) -> None:
    folder = Path(folder)
    for name, expected in manifest.files.items():
        file = folder / name
        if not file.is_file():
            raise ManifestError(f"{folder}: {name} is listed in the manifest but missing")
        actual = sha256_file(file)
        if actual != expected:
            raise ManifestError(
                f"{folder}: {name} does not match the manifest (sha256 {actual[:12]}..., expected {expected[:12]}...)"
            )
