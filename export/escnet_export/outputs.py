"""Where a subcommand may write: never into what it reads, never over what it did not write.

Every ``escnet-export`` subcommand that writes checks its output here before any work:

- :func:`check_overlap`: the output is not a folder or file it reads, not inside one, and does
  not hold one (paths compared with symlinks resolved). No ``--overwrite`` lifts this: a
  command that replaced what it is reading would destroy its own input.
- :func:`check_owner`: an existing output that this command did not write (no manifest of its
  kind) is replaced only with ``--overwrite`` when it holds anything the command would write
  over; the user's other files in a folder are carried into the new one (``publish``).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from escnet_runtime.contract import (
    BAKED_FORMAT,
    BUILD_MANIFEST_FILE,
    ENGINE_SUFFIX,
    FORMAT,
    MANIFEST_FILE,
    VOCAB_FILE,
    VOCAB_FORMAT,
)

from escnet_export.errors import ExportError

MAX_VOCAB_HEADER = 100 << 20  # safetensors' own limit on the JSON header
OVERWRITE_HINT = "choose another --out, or give --overwrite to replace it"


def _resolved(path: Path) -> Path:
    return Path(path).expanduser().resolve()


def check_overlap(out: Path, reads: Mapping[str, Path | None], allowed: Iterable[Path] = ()) -> None:
    """ExportError when ``out`` is, lies inside, or holds a path in ``reads`` ({what it is: path}).

    ``allowed``: outputs inside a read folder that its format designates (an artifacts folder's
    ``trt/`` engine folder)."""
    target = _resolved(out)
    if target in {_resolved(p) for p in allowed}:
        return
    for what, path in reads.items():
        if path is None:
            continue
        source = _resolved(path)
        if target == source:
            relation = "is"
        elif target.is_relative_to(source):
            relation = "lies inside"
        elif source.is_relative_to(target):
            relation = "holds"
        else:
            continue
        raise ExportError(f"--out {out} {relation} the {what} {path} this command reads; write the output outside it")


def manifest_format(folder: Path) -> str | None:
    """The ``format`` of ``folder/manifest.json`` ("" when unreadable, None when there is none)."""
    path = folder / MANIFEST_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return ""
    return str(data.get("format", "")) if isinstance(data, dict) else ""


def is_artifacts_folder(folder: Path) -> bool:
    return manifest_format(folder) == FORMAT


def is_baked_folder(folder: Path) -> bool:
    return manifest_format(folder) == BAKED_FORMAT


def is_engine_folder(folder: Path) -> bool:
    return (folder / BUILD_MANIFEST_FILE).is_file()


def is_vocabulary_file(path: Path) -> bool:
    """Whether ``path`` starts as an escnet vocabulary file (a safetensors header naming its format)."""
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_VOCAB_HEADER:
                return False
            header = json.loads(f.read(n).decode("utf-8"))
        return header["__metadata__"]["format"] == VOCAB_FORMAT
    except (OSError, ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError):
        return False


def artifacts_clash(name: str) -> bool:
    """Names ``escnet-export onnx`` writes: the manifest, the vocabulary, graphs and their external data."""
    return name in (MANIFEST_FILE, VOCAB_FILE) or name.endswith((".onnx", ".onnx.data"))


def baked_clash(name: str) -> bool:
    """Names ``escnet-export bake`` writes: the manifest and the graph."""
    return name == MANIFEST_FILE or name.endswith((".onnx", ".onnx.data"))


def engine_clash(name: str) -> bool:
    """Names ``escnet-export trt`` writes: the build manifest and the engines."""
    return name in (MANIFEST_FILE, BUILD_MANIFEST_FILE) or name.endswith(ENGINE_SUFFIX)


def check_owner(
    out: Path,
    kind: str,
    ours: Callable[[Path], bool],
    clashes: Callable[[str], bool],
    overwrite: bool,
) -> None:
    """ExportError when the folder ``out`` exists, is not ``ours`` (``kind``, e.g. "a baked folder",
    as this command writes it) and holds a file the command would replace; ``overwrite`` allows it."""
    target = _resolved(out)
    if not target.exists() or overwrite:
        return
    if not target.is_dir():
        raise ExportError(f"--out {out} is a file; expected a folder")
    if ours(target):
        return
    clash = sorted(p.name for p in target.iterdir() if clashes(p.name))
    if clash:
        shown = ", ".join(clash[:3]) + (f" and {len(clash) - 3} more" if len(clash) > 3 else "")
        raise ExportError(f"--out {out} is not {kind} and holds {shown}, which would be replaced; {OVERWRITE_HINT}")


def check_file_owner(out: Path, kind: str, ours: Callable[[Path], bool], overwrite: bool) -> None:
    """ExportError when the file ``out`` exists and is not ``ours`` (a ``kind``); ``overwrite`` allows it."""
    target = _resolved(out)
    if target.is_dir():
        raise ExportError(f"--out {out} is a folder; expected the path of a file to write")
    if target.exists() and not overwrite and not ours(target):
        raise ExportError(f"--out {out} exists and is not {kind}; {OVERWRITE_HINT}")
