"""What a pickle that torch's safe loader refused holds, read with ``pickletools`` (nothing runs).

Used only to word the refusal: whether the file names code (a global beyond torch's tensor
rebuilders) or is merely pickled with a protocol the safe loader does not read. Loading is
decided by ``torch.load(weights_only=True)`` alone.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MAX_SCAN_BYTES = 64 << 20  # of pickle opcodes read at most (tensor data lies outside the pickle)
_DATA_MODULES = ("torch.", "collections.")  # tensor rebuilders, storages, OrderedDict
# Globals that build plain data (protocols 0 and 1 pickle bytes through _codecs.encode).
_DATA_GLOBALS = {"_codecs.encode", "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.complex"}
_STRINGS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}


@dataclass(frozen=True)
class PickleFacts:
    protocol: int | None  # the highest PROTO seen (None: no PROTO opcode, protocol 0 or 1)
    code: str | None  # the first global beyond torch's, collections' and plain data's, "module.name"


def scan(path: Path) -> PickleFacts:
    """The facts of ``path``'s pickle: a torch zip's ``data.pkl``, else the file itself (the
    legacy format's leading pickles). Damage ends the scan; what was read so far counts."""
    protocol, code = None, None
    with _pickle_stream(path) as stream:
        for op, arg in _ops(stream):
            if op == "PROTO":
                protocol = max(protocol or 0, int(arg))
            elif op == "GLOBAL_NAME" and code is None and not _is_data(str(arg)):
                code = str(arg)
    return PickleFacts(protocol, code)


def _is_data(name: str) -> bool:
    return name.startswith(_DATA_MODULES) or name in _DATA_GLOBALS


def _pickle_stream(path: Path) -> IO[bytes]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if n.endswith("data.pkl")]
            if names:
                with zf.open(names[0]) as member:
                    return io.BytesIO(member.read(MAX_SCAN_BYTES))
        return io.BytesIO(b"")
    with open(path, "rb") as f:
        return io.BytesIO(f.read(MAX_SCAN_BYTES))


def _ops(stream: IO[bytes]) -> Iterator[tuple[str, object]]:
    """Opcodes of the pickles in ``stream`` one after another; a global's name resolved for both
    GLOBAL ("module name") and STACK_GLOBAL (the two strings pushed before it, memoised or not)."""
    recent: list[object] = []  # the last values pushed, strings kept (None for anything else)
    memo: dict[int, object] = {}
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    while stream.tell() < size:
        try:
            for op, arg, _ in pickletools.genops(stream):
                name = op.name
                if name == "GLOBAL":
                    yield "GLOBAL_NAME", str(arg).replace(" ", ".")
                elif name == "STACK_GLOBAL" and len(recent) >= 2:
                    yield "GLOBAL_NAME", f"{recent[-2]}.{recent[-1]}"
                elif name == "MEMOIZE" and recent:
                    memo[len(memo)] = recent[-1]
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and recent:
                    memo[int(arg)] = recent[-1]
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    recent.append(memo.get(int(arg)))
                elif name in _STRINGS:
                    recent.append(arg if isinstance(arg, str) else None)
                yield name, arg
                del recent[:-2]
        except Exception:  # damage, or the end of the leading pickles: what was read counts
            return
