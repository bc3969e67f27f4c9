"""Where ``escnet-segment`` may write, decided before any work starts.

Rules (each refusal is one line, exit 2, nothing written):
- no output replaces an existing file unless ``--overwrite`` is given (the photo's folder may hold
  the user's ``photo.json``); an existing folder in an output's place is left to fail at writing;
- nothing is written into the artifacts folder being read unless ``--overwrite`` is given, and
  even then never over its manifest or a file the manifest lists;
- no output is one of the input images (it would be replaced before it is read), whatever the flags.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from escnet_runtime.contract import MANIFEST_FILE
from escnet_runtime.errors import InputError

OVERWRITE_HINT = "give --overwrite to replace it, or another output path"


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

    def check_file(self, target: Path, option: str) -> None:
        """One output file, against every rule."""
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
        if (target.exists() or target.is_symlink()) and not self.overwrite:
            raise InputError(f"{option}: {target} already exists; {OVERWRITE_HINT}")
