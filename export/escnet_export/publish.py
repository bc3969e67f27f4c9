"""Publishing a folder all-or-nothing: build the new folder beside it, swap by rename.

Every target of the exporter publishes through here: ``onnx`` (artifacts), ``bake`` (a baked
folder), ``trt`` (an engine folder), ``triton`` (a model repository), ``quantize``. Files are
given the umask's mode; a failure at any point is one ExportError and leaves OUT as it was.

While ``PARENT/OUT`` is exported, one run ``R = PARENT/.OUT.escnet-export-<pid>-<random>`` has:

- ``R.lock``: a file the exporting process holds an exclusive ``flock`` on for its whole life;
  the kernel drops it when the process dies, however it dies (kill -9 included);
- ``R/``: the new folder, built complete (graphs, vocabulary, manifest, the user's own files
  from OUT as hard links) before OUT is touched;
- ``R.old/``: only in the two-rename fallback, the previous OUT between the two renames.

The swap is one ``renameat2(RENAME_EXCHANGE)`` of ``R`` and ``OUT`` where the kernel and file
system allow it: OUT is at every instant either the old or the new complete folder. Elsewhere
it is ``OUT -> R.old`` then ``R -> OUT``. After the swap the old folder is removed.

The next export first recovers every run whose lock is free (its process is gone): OUT missing
and ``R.old`` present means a kill between the two renames, and ``R.old`` (the old, valid
folder) is renamed back to OUT; then ``R``, ``R.old`` and ``R.lock`` are removed. A run whose
lock is held is a live export and is never touched. Folders ``.escnet-export-*`` inside OUT,
left by versions that staged there, carry no lock: they are removed once unchanged for
:data:`LEGACY_STALE_S`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from escnet_runtime.contract import MANIFEST_FILE
from escnet_runtime.fileio import current_umask, file_mode

from escnet_export.errors import ExportError

RUN_TAG = ".escnet-export-"  # in run names: .OUT.escnet-export-<pid>-<random>
LEGACY_STALE_S = 3600.0  # in-folder staging of older versions: stale after an hour unchanged
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
Note = Callable[[str], None]


@dataclass(frozen=True)
class Run:
    """The sibling paths of one export of ``out``."""

    out: Path
    base: Path  # PARENT/.OUT.escnet-export-<pid>-<random>

    @property
    def staging(self) -> Path:
        return self.base

    @property
    def old(self) -> Path:
        return self.base.with_name(self.base.name + ".old")

    @property
    def lock(self) -> Path:
        return self.base.with_name(self.base.name + ".lock")


def run_prefix(out: Path) -> str:
    return f".{out.name}{RUN_TAG}"


@contextlib.contextmanager
def staged_export(out: Path, note: Note = lambda _m: None) -> Iterator[Run]:
    """Recover and clean stale runs of ``out``, then yield a new locked run with an empty staging
    folder; whatever happens, remove the run's folders and lock on exit (after :func:`publish`,
    only the old folder is left to remove)."""
    out = resolve_out(out)
    created = _make_parent(out.parent)
    recover(out, note)
    run, fd = _new_run(out)
    try:
        yield run
    finally:
        _remove_run(run, note)
        os.close(fd)
        for folder in created:  # parents this run created, when nothing was published into them
            with contextlib.suppress(OSError):
                folder.rmdir()


def resolve_out(out: Path) -> Path:
    """``out`` as an absolute path; a symlink is followed, so the swap replaces the folder it names."""
    out = Path(os.path.abspath(out))
    if out.is_symlink():
        out = out.resolve()
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out}: exists and is not a folder")
    if Path.cwd().resolve().is_relative_to(out.resolve()):
        raise ExportError(f"{out}: is the current folder or holds it; export into a folder of its own")
    if out.exists() and os.path.ismount(out):
        raise ExportError(f"{out}: is a mount point, which cannot be swapped atomically; export into a folder in it")
    return out


def _make_parent(parent: Path) -> list[Path]:
    """Create ``parent``; the folders created, deepest first."""
    missing = [p for p in (parent, *parent.parents) if not p.exists()]
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"cannot write to output folder {parent}: {e.strerror or e}") from None
    return missing


def _new_run(out: Path) -> tuple[Run, int]:
    """Create and lock ``R.lock``, then make ``R``; retried if a cleaner removed the lock in between."""
    for _ in range(5):
        run = Run(out, out.parent / f"{run_prefix(out)}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(run.lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as e:
            raise ExportError(_unwritable(out, e)) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        if os.path.exists(run.lock) and os.stat(run.lock).st_ino == os.fstat(fd).st_ino:
            try:
                os.mkdir(run.staging, 0o700)
            except OSError as e:
                os.close(fd)
                with contextlib.suppress(OSError):
                    run.lock.unlink()
                raise ExportError(_unwritable(out, e)) from None
            return run, fd
        os.close(fd)
    raise ExportError(f"cannot lock an export run in {out.parent}")


def _unwritable(out: Path, error: OSError) -> str:
    return (
        f"cannot write to output folder {out}: the new folder is built beside it, in {out.parent}, "
        f"which must be writable ({error.strerror or error})"
    )


def recover(out: Path, note: Note = lambda _m: None) -> None:
    """Undo what killed exports of ``out`` left: restore OUT when a kill fell between the two
    renames, remove dead runs' folders and locks, and legacy in-folder staging folders."""
    names = {p.name for p in out.parent.iterdir() if p.name.startswith(run_prefix(out))}
    bases = {n.removesuffix(".lock").removesuffix(".old") for n in names}
    for base in sorted(bases):
        run = Run(out, out.parent / base)
        with _owned(run.lock) as owned:
            if not owned:
                continue  # a live export
            _remove_run(run, note)
            note(f"removed the leftovers of a killed export ({run.base.name})")
    for legacy in _legacy_staging(out):
        shutil.rmtree(legacy, ignore_errors=True)
        note(f"removed a stale staging folder {legacy}")


def _remove_run(run: Run, note: Note) -> None:
    """Put the old folder back if the run stopped between the two renames; remove the rest."""
    if not os.path.lexists(run.out) and run.old.is_dir():
        _rename(run.old, run.out)
        note(f"restored {run.out}: its export stopped while swapping folders")
    shutil.rmtree(run.staging, ignore_errors=True)
    shutil.rmtree(run.old, ignore_errors=True)
    with contextlib.suppress(OSError):
        run.lock.unlink()


@contextlib.contextmanager
def _owned(lock: Path) -> Iterator[bool]:
    """Whether this process could take the run's lock (its owner is gone); held for the block."""
    try:
        fd = os.open(lock, os.O_RDWR)
    except FileNotFoundError:
        yield True  # no lock file: its owner finished removing it, or never got to make its folder
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


def _legacy_staging(out: Path) -> list[Path]:
    if not out.is_dir():
        return []
    now, stale = time.time(), []
    for folder in out.glob(f"{RUN_TAG}*"):
        if folder.is_dir() and not folder.is_symlink():
            newest = max([folder.lstat().st_mtime] + [p.lstat().st_mtime for p in folder.rglob("*")])
            if now - newest > LEGACY_STALE_S:
                stale.append(folder)
    return stale


def publish(
    run: Run,
    files: list[str],
    write_manifest: Callable[[Path], Path] | None = None,
    keep_user_files: bool = True,
) -> None:
    """Complete the staging folder and swap it with OUT; one ExportError, OUT untouched, on failure.

    ``files``: the names written into the staging folder (given the umask's mode);
    ``write_manifest(staging)``: writes the folder's manifest, last, and returns its path;
    ``keep_user_files``: the user's other files in OUT are carried into the new folder (an
    artifacts or engine folder), or not (a folder the command owns whole: a Triton repository).
    Every target publishes through here: onnx, bake, trt, triton.
    """
    out = run.out
    try:
        _complete(run, files, write_manifest, keep_user_files)
    except OSError as e:
        why = e.strerror or e
        raise ExportError(f"cannot write the new {out.name} beside {out} ({why}); {out} left as it was") from e
    try:
        swap(run)
    except OSError as e:  # e.g. an immutable old folder: staged_export puts back whatever moved
        raise ExportError(f"cannot replace {out} ({e.strerror or e}); {out} left as it was") from e
    with contextlib.suppress(OSError):
        _sync_dir(out.parent)


def _complete(run: Run, files: list[str], write_manifest: Callable[[Path], Path] | None, keep: bool) -> None:
    """Modes, the manifest last, the user's other files from OUT (``keep``), everything synced."""
    staging, out = run.staging, run.out
    mode = file_mode()
    for name in files:
        os.chmod(staging / name, mode)
    written = {MANIFEST_FILE}
    if write_manifest is not None:
        manifest = write_manifest(staging)
        os.chmod(manifest, mode)
        written.add(manifest.name)
    if out.is_dir() and keep:
        carry_over(out, staging, set(files) | written | _old_contract(out))
    os.chmod(staging, stat.S_IMODE(out.stat().st_mode) if out.is_dir() else 0o777 & ~current_umask())
    _sync_tree(staging)


def _old_contract(out: Path) -> set[str]:
    """Names the previous manifest lists (they belong to the old export, not to the user)."""
    try:
        files = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return set()
    return {name.split("/")[0] for name in files if isinstance(name, str)} if isinstance(files, dict) else set()


def carry_over(out: Path, staging: Path, skip: set[str]) -> None:
    """Hard-link (copy where links fail) every entry of ``out`` not in ``skip`` into ``staging``:
    the user's own files (a TensorRT engine folder, notes) stay in the published folder."""
    for entry in out.iterdir():
        if entry.name in skip:
            continue
        target = staging / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True, copy_function=_link_or_copy)
        elif entry.is_symlink():
            os.symlink(os.readlink(entry), target)
        else:
            _link_or_copy(entry, target)


def _link_or_copy(src: str | Path, dst: str | Path) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def swap(run: Run) -> None:
    """Put the staging folder in OUT's place: one atomic exchange, else two renames."""
    if not run.out.exists():
        _rename(run.staging, run.out)
        return
    if _exchange(run.staging, run.out):
        return  # the old folder now has the staging name; staged_export removes it
    _rename(run.out, run.old)
    _rename(run.staging, run.out)  # if this fails, staged_export renames the old folder back


_rename = os.rename  # one name for the swap's renames (a test stops a process between two)


def _exchange(a: Path, b: Path) -> bool:
    """renameat2(RENAME_EXCHANGE); False where the kernel, libc or file system lacks it."""
    renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _sync_tree(folder: Path) -> None:
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and not path.is_symlink():
            _fsync(path, os.O_RDONLY)
        elif path.is_dir() and not path.is_symlink():
            _sync_dir(path)
    _sync_dir(folder)


def _sync_dir(folder: Path) -> None:
    _fsync(folder, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
