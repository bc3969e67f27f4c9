"""The manifest of a baked-vocabulary folder (``escnet-export bake``): one graph, its classes.

The folder holds ``segmenter.onnx`` (``contract.baked_graph_spec``) and ``manifest.json``:
format ``escnet-baked``, the graph's tensors, the class names in label order with their
colours, what ``scores`` holds, the preprocessing done inside the graph (for reference), the
source artifacts' manifest sha256 and file hashes, and the sha256 of every file in the folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escnet_runtime.baked_graph import check_baked_graph
from escnet_runtime.contract import (
    BAKED_FORMAT,
    BAKED_FORMAT_VERSION,
    CLASS_SCORES,
    MANIFEST_FILE,
    SEGMENTER,
    GraphSpec,
    Preprocess,
    baked_graph_spec,
)
from escnet_runtime.errors import InputError
from escnet_runtime.fileio import atomic_path
from escnet_runtime.manifest import ManifestError, read_manifest_json, resolve_inside, verify_files
from escnet_runtime.manifest_checks import (
    BAKED_SCHEMA_FILE,
    ManifestFieldError,
    check_preprocess,
    check_relative,
    validate_schema,
)
from escnet_runtime.vocabulary import check_class_names

SCORES_DOC = (
    "sigmoid of the decoder logits at the decoder's resolution (4g x 4g = S/4 x S/4), one map per class; "
    "labels are the arg-max over classes of the logits upsampled to S x S (bilinear), sigmoid, upsampled to H x W"
)


@dataclass(frozen=True)
class BakedManifest:
    graph: GraphSpec
    class_names: tuple[str, ...]
    colours: tuple[tuple[int, int, int], ...]
    preprocess: Preprocess
    source: dict[str, Any]  # preset, source weights, the artifacts' manifest sha256 and files
    files: dict[str, str]  # relative path -> sha256
    class_chunk: int
    post_chunk: int
    opset: int
    versions: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the parity table
    format_version: int = BAKED_FORMAT_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": BAKED_FORMAT,
            "format_version": self.format_version,
            "graphs": {SEGMENTER: self.graph.to_dict()},
            "classes": [
                {"index": i, "name": n, "colour": list(c)}
                for i, (n, c) in enumerate(zip(self.class_names, self.colours, strict=True))
            ],
            "scores": SCORES_DOC,
            "preprocess": self.preprocess.to_dict(),
            "class_chunk": self.class_chunk,
            "post_chunk": self.post_chunk,
            "opset": self.opset,
            "source": self.source,
            "versions": self.versions,
            "extra": self.extra,
            "files": dict(sorted(self.files.items())),
        }

    @staticmethod
    def from_dict(d: dict[str, Any]) -> BakedManifest:
        classes = sorted(d["classes"], key=lambda c: int(c["index"]))
        if [int(c["index"]) for c in classes] != list(range(len(classes))):
            raise ValueError("class indices are not 0..T-1")
        return BakedManifest(
            graph=GraphSpec.from_dict(SEGMENTER, d["graphs"][SEGMENTER]),
            class_names=tuple(str(c["name"]) for c in classes),
            colours=tuple((int(c["colour"][0]), int(c["colour"][1]), int(c["colour"][2])) for c in classes),
            preprocess=Preprocess.from_dict(d["preprocess"]),
            source=dict(d["source"]),
            files=dict(d["files"]),
            class_chunk=int(d["class_chunk"]),
            post_chunk=int(d["post_chunk"]),
            opset=int(d["opset"]),
            versions=d.get("versions", {}),
            extra=d.get("extra", {}),
            format_version=int(d["format_version"]),
        )


def is_baked(folder: str | Path) -> bool:
    """Whether ``folder``'s manifest is a baked-vocabulary manifest (False when unreadable)."""
    try:
        return json.loads((Path(folder) / MANIFEST_FILE).read_text()).get("format") == BAKED_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def write_baked_manifest(folder: str | Path, manifest: BakedManifest) -> Path:
    path = Path(folder) / MANIFEST_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def check_baked(data: dict[str, Any]) -> None:
    """A baked manifest's fields (its schema, then what a schema cannot say): preprocessing as for
    artifacts, relative listed files, classes 0..T-1 with distinct names, and the graph's tensors
    exactly ``contract.baked_graph_spec`` for its T classes. ManifestFieldError names the field."""
    validate_schema(data, BAKED_SCHEMA_FILE)
    check_preprocess(data["preprocess"])
    for name in data["files"]:
        check_relative(name, "files")
    graph = data["graphs"][SEGMENTER]
    file = f"{SEGMENTER}.onnx"
    if graph.get("file", file) != file:
        raise ManifestFieldError(f"graphs.{SEGMENTER}.file: expected {file!r}")
    if file not in data["files"]:
        raise ManifestFieldError(f"files: the graph file {file!r} is not listed (every graph must be hashed)")
    classes = data["classes"]
    if sorted(c["index"] for c in classes) != list(range(len(classes))):
        raise ManifestFieldError(f"classes: expected the indices 0..{len(classes) - 1}, each once")
    try:
        check_class_names([c["name"] for c in classes])
    except InputError as e:
        raise ManifestFieldError(f"classes: {e}") from None
    scores = [t for t in graph["outputs"] if t.get("name") == CLASS_SCORES]
    side = scores[0]["shape"][-1] if scores and scores[0]["shape"] else 0
    want = baked_graph_spec(side if isinstance(side, int) else 0, len(classes)).to_dict()
    for kind in ("inputs", "outputs"):
        if graph[kind] != want[kind]:
            raise ManifestFieldError(
                f"graphs.{SEGMENTER}.{kind}: expected {want[kind]} for {len(classes)} classes, got {graph[kind]}"
            )


def load_baked_manifest(folder: str | Path, verify: bool = True, check_graph: bool = False) -> BakedManifest:
    """Read a baked folder's manifest; ManifestError (one line) when missing, foreign, newer, tampered
    or wrong in a field. ``check_graph``: also compare ``segmenter.onnx``'s tensors with the manifest."""
    folder = Path(folder)
    path = folder / MANIFEST_FILE
    data = read_manifest_json(path, BAKED_FORMAT, "a baked-vocabulary manifest", BAKED_FORMAT_VERSION)
    try:
        check_baked(data)
        manifest = BakedManifest.from_dict(data)
    except ManifestFieldError as e:
        raise ManifestError(f"{path}: {e}") from None
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise ManifestError(f"{path}: manifest is incomplete ({type(e).__name__}: {e})") from None
    for name in manifest.files:
        resolve_inside(folder, name)
    if verify:
        verify_files(folder, manifest)  # type: ignore[arg-type]  (only .files is read)
    if check_graph:
        check_baked_graph(folder, manifest.graph, manifest.files)
    return manifest
