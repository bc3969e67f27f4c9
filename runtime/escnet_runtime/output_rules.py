"""Where ``escnet-segment`` may write, decided before any work starts.

Rules (each refusal is one line, exit 2, nothing written):
- no output replaces an existing file this command did not write unless ``--overwrite`` is given
  (the photo's folder may hold the user's ``photo.json``). Its own: an image's three outputs when
  their JSON is the record a previous run wrote for that label PNG; a vocabulary file (its header
  says so). An existing folder in an output's place is left to fail at writing;
- nothing is written into the artifacts folder being read unless ``--overwrite`` is given, and
  even then never over its manifest or a file the manifest lists;
- no output is one of the input images (it would be replaced before it is read), whatever the flags.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from pathlib import Path

from escnet_runtime.contract import MANIFEST_FILE, VOCAB_FORMAT
from escnet_runtime.errors import InputError

OVERWRITE_HINT = "give --overwrite to replace it, or another output path"
MAX_RECORD_BYTES = 64 << 20  # a record (or vocabulary header) read to tell whether it is ours


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop
        raise InputError(f"{path}: cannot resolve this path (a symbolic-link loop?)") from None


def _inside(path: Path, folder: Path) -> bool:
    return _resolved(path).is_relative_to(_resolved(folder))


def _protected(artifacts: Path) -> set[Path]:
    """The artifacts' manifest and every file it lists (resolved); never written over."""
    from escnet_runtime.manifest import ManifestError, load_manifest

    names = {MANIFEST_FILE}
    try:
        names |= set(load_manifest(artifacts, verify=False).files)
    except ManifestError:
        pass  # an unusable folder is refused with its own line when it is loaded
    return {_resolved(artifacts / n) for n in names}


class WriteRules:
    """The rules above for one command: the artifacts folder read, the inputs, ``--overwrite``."""

    def __init__(self, artifacts: Path, inputs: Sequence[Path], overwrite: bool) -> None:
        self.artifacts = artifacts
        self.overwrite = overwrite
        self.inputs = {_resolved(p) for p in inputs}
        self._protected_files: set[Path] | None = None

    def check_folder(self, folder: Path, option: str) -> None:
        """An output folder: not inside the artifacts folder (without ``--overwrite``)."""
        if _inside(folder, self.artifacts) and not self.overwrite:
            raise InputError(
                f"{option} {folder} is inside the artifacts folder {self.artifacts} that this command reads; "
                "give another folder (or --overwrite to write there anyway)"
            )

    def check_file(self, target: Path, option: str, ours: bool = False) -> None:
        """One output file, against every rule; ``ours``: an existing ``target`` was written by this
        command before (it may be replaced without ``--overwrite``)."""
        resolved = _resolved(target)
        if resolved in self.inputs:
            raise InputError(f"{option}: {target} is also an input image; it would be replaced before it is read")
        if _inside(target, self.artifacts):
            if self._protected_files is None:
                self._protected_files = _protected(self.artifacts)
            if resolved in self._protected_files:
                raise InputError(f"{option}: {target} is part of the artifacts folder {self.artifacts}; refused")
            self.check_folder(target.parent, option)
        if target.is_dir():
            if option != "--out":  # a folder in an image output's place fails at writing, for that image only
                raise InputError(f"{option}: {target} is a folder; give a file name")
            return
        if (target.exists() or target.is_symlink()) and not (self.overwrite or ours):
            raise InputError(f"{option}: {target} already exists and this command did not write it; {OVERWRITE_HINT}")

    def check_outputs(self, labels: Path, overlay: Path, shares: Path) -> None:
        """One image's three outputs: replaced together only when the JSON is this command's record
        naming that label PNG (a previous run's), or with ``--overwrite``."""
        ours = is_own_record(shares, labels.name)
        for target in (labels, overlay, shares):
            self.check_file(target, "--out", ours=ours)


def is_own_record(shares: Path, labels_name: str) -> bool:
    """Whether ``shares`` is the JSON record ``escnet-segment`` writes for the label PNG ``labels_name``."""
    try:
        if not shares.is_file() or shares.is_symlink() or shares.stat().st_size > MAX_RECORD_BYTES:
            return False
        record = json.loads(shares.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return False
    if not isinstance(record, dict):
        return False
    return record.get("label_png") == labels_name and isinstance(record.get("shares"), dict)


def is_own_vocabulary(path: Path) -> bool:
    """Whether ``path`` is a vocabulary file (its header says so): one a command of ours wrote."""
    try:
        if not path.is_file() or path.is_symlink():
            return False
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            header = json.loads(f.read(min(n, MAX_RECORD_BYTES)).decode("utf-8"))
    except (OSError, struct.error, UnicodeDecodeError, ValueError, RecursionError):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and meta.get("format") == VOCAB_FORMAT
