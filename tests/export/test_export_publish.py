"""Publishing artifacts all-or-nothing: injected failures, kill -9 at staged points, stale runs, a full disk.

One real tiny export (module fixture) is the "old" folder; the "new" one is the same graphs with a
manifest marked ``extra.marker = "new"``, published with the real publishing code. Each case checks
that OUT then loads (every listed file's sha256) as exactly one of the two, with the user's own files,
and that nothing is left beside it.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from escnet_export import publish as pub
from escnet_export.errors import ExportError
from escnet_runtime.manifest import load_manifest, write_manifest
from typer.testing import CliRunner

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
STAGED = Path(__file__).parents[1] / "support" / "publish_child.py"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from escnet_export.onnx.pipeline import ExportOptions, run_export

    out = tmp_path_factory.mktemp("export") / "artifacts"
    result = run_export(ExportOptions(preset="tiny", out=out, simplify=False))
    assert result.published
    return out


@pytest.fixture()
def old(exported: Path, tmp_path: Path) -> Path:
    """A valid artifacts folder with the user's own files in it (a note, an engine folder)."""
    out = tmp_path / "parent" / "artifacts"
    shutil.copytree(exported, out)
    (out / "notes.txt").write_text("mine")
    (out / "trt").mkdir()
    (out / "trt" / "image_encoder.plan").write_bytes(b"engine")
    return out


def _marker(out: Path) -> str | None:
    return load_manifest(out, verify=True).extra.get("marker")  # verify: every listed file's sha256


def _assert_clean(out: Path, marker: str | None) -> None:
    """OUT loads as the expected version with the user's files; nothing else beside it."""
    assert _marker(out) == marker
    assert (out / "notes.txt").read_text() == "mine" and (out / "trt" / "image_encoder.plan").read_bytes() == b"engine"
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]
    assert not list(out.glob(".escnet-export-*"))


def _publish_new(out: Path, source: Path) -> None:
    manifest = load_manifest(source)
    new = dataclasses.replace(manifest, extra={**manifest.extra, "marker": "new"})
    with pub.staged_export(out) as run:
        for name in manifest.files:
            shutil.copyfile(source / name, run.staging / name)
        pub.publish(run, list(manifest.files), lambda folder: write_manifest(folder, new))


def test_publish_swaps_in_the_new_folder_keeping_user_files_and_modes(old: Path, exported: Path) -> None:
    os.chmod(old, 0o750)
    prior = os.umask(0o027)
    try:
        _publish_new(old, exported)
    finally:
        os.umask(prior)
    _assert_clean(old, "new")
    assert stat.S_IMODE(old.stat().st_mode) == 0o750  # the folder keeps its mode
    assert {stat.S_IMODE((old / n).stat().st_mode) for n in load_manifest(old).files} == {0o640}


def test_publish_falls_back_to_two_renames(old: Path, exported: Path, monkeypatch) -> None:
    monkeypatch.setattr(pub, "_exchange", lambda a, b: False)
    _publish_new(old, exported)
    _assert_clean(old, "new")


def _fail(*_args, **_kwargs):
    raise OSError(errno.EIO, "injected failure")


@pytest.mark.parametrize("point", ["carry_over", "manifest", "exchange", "second_rename"])
def test_injected_failure_leaves_the_old_folder(old: Path, exported: Path, monkeypatch, point: str) -> None:
    if point == "carry_over":
        monkeypatch.setattr(pub, "carry_over", _fail)
    elif point == "manifest":
        monkeypatch.setattr(pub, "_sync_tree", _fail)  # after the manifest was written into staging
    elif point == "exchange":
        monkeypatch.setattr(pub, "_exchange", _fail)
    else:  # the two-rename fallback, failing after OUT was moved aside
        real, calls = pub._rename, []

        def second_fails(a, b):
            calls.append(a)
            if len(calls) == 2:
                _fail()
            real(a, b)

        monkeypatch.setattr(pub, "_exchange", lambda a, b: False)
        monkeypatch.setattr(pub, "_rename", second_fails)
    with pytest.raises(ExportError, match=r"\(injected failure\); .* left as it was$"):
        _publish_new(old, exported)
    _assert_clean(old, None)


def _immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i (root on a file system with attributes); False where it cannot be set."""
    r = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True)
    return r.returncode == 0


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "two_renames"])
def test_an_immutable_old_folder_is_one_line_and_left_as_it_was(
    old: Path, exported: Path, monkeypatch, exchange: bool
) -> None:
    if not exchange:
        monkeypatch.setattr(pub, "_exchange", lambda a, b: False)
    if shutil.which("chattr") is None or not _immutable(old, True):
        pytest.skip("cannot make a folder immutable here (chattr +i needs root and file attributes)")
    try:
        with pytest.raises(ExportError, match=r"^cannot replace .*\(Operation not permitted\); .* left as it was$"):
            _publish_new(old, exported)
    finally:
        _immutable(old, False)
    _assert_clean(old, None)


def _start(point: str, old: Path, exported: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """A publishing child process that stops (sleeps) at ``point``; returns once it got there."""
    ready = tmp_path / f"ready-{point}"
    child = subprocess.Popen(
        [sys.executable, str(STAGED), str(exported), str(old), point, str(ready)],
        env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline, "the child never reached its point"
        time.sleep(0.05)
    return child, ready


def _kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


@pytest.mark.parametrize(
    "point, visible, after",
    [
        ("building", None, None),  # staging half written: OUT is the old folder
        ("between_renames", "missing", None),  # OUT moved aside, the new one not yet in: old restored
        ("after_renames", "new", "new"),  # both renames done, the old folder not yet removed
        ("after_exchange", "new", "new"),  # one atomic exchange done, the old folder not yet removed
    ],
)
def test_kill_9_at_each_point_is_recovered_by_the_next_run(
    old: Path, exported: Path, tmp_path: Path, point: str, visible: str | None, after: str | None
) -> None:
    child, _ = _start(point, old, exported, tmp_path)
    _kill(child)
    if visible == "missing":
        assert not old.exists()
    else:
        assert _marker(old) == visible  # OUT is at every moment a complete folder, old or new
    assert len(list(old.parent.iterdir())) > 1  # the killed run's leftovers
    notes: list[str] = []
    pub.recover(old, notes.append)  # what the next export does first
    _assert_clean(old, after)
    assert any("killed export" in n for n in notes)
    _publish_new(old, exported)  # and the next export then works
    _assert_clean(old, "new")


def test_a_live_export_is_never_cleaned(old: Path, exported: Path, tmp_path: Path) -> None:
    child, _ = _start("building", old, exported, tmp_path)
    try:
        leftovers = sorted(p.name for p in old.parent.iterdir())
        pub.recover(old)
        assert sorted(p.name for p in old.parent.iterdir()) == leftovers  # its lock is held: left alone
        _publish_new(old, exported)  # a concurrent export still publishes
        assert _marker(old) == "new"
        assert len(list(old.parent.iterdir())) == len(leftovers)  # the live run's staging and lock are still there
    finally:
        _kill(child)
    pub.recover(old)
    _assert_clean(old, "new")


def test_legacy_in_folder_staging_is_removed_only_when_stale(old: Path) -> None:
    stale, fresh = old / ".escnet-export-abc123", old / ".escnet-export-def456"
    for folder in (stale, fresh):
        folder.mkdir()
        (folder / "image_encoder.onnx").write_bytes(b"half")
    hours_ago = time.time() - 2 * pub.LEGACY_STALE_S
    for path in (stale / "image_encoder.onnx", stale):
        os.utime(path, (hours_ago, hours_ago))
    pub.recover(old)
    assert not stale.exists() and fresh.is_dir()
    assert _marker(old) is None


def test_export_failing_half_way_leaves_the_old_folder(old: Path, monkeypatch) -> None:
    """The real pipeline, failing at its first graph: the old artifacts stay as they were."""
    import escnet_export.onnx.pipeline as pipeline
    from escnet_export.cli import app

    def fail(*_args, **_kwargs):
        raise ExportError("injected failure while exporting")

    monkeypatch.setattr(pipeline, "export_graph", fail)
    result = CliRunner().invoke(app, ["onnx", "--preset", "tiny", "--out", str(old), "--no-simplify"])
    assert result.exit_code == 2
    assert _errors(result.stderr) == ["escnet-export: error: injected failure while exporting"]
    _assert_clean(old, None)


@pytest.fixture()
def small_disk(tmp_path: Path, exported: Path):
    """A tmpfs holding the old artifacts with 512 KiB to spare (root may mount one; else skip)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    size = sum(p.stat().st_size for p in exported.rglob("*") if p.is_file()) + (1 << 20)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True)
    if r.returncode != 0:  # test_file_size_limit_is_one_line covers the same path without root
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode().strip()})")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_full_disk_is_one_line_and_leaves_the_old_folder(small_disk: Path, exported: Path) -> None:
    from escnet_export.cli import app

    out = small_disk / "artifacts"
    shutil.copytree(exported, out)
    (out / "notes.txt").write_text("mine")
    (out / "trt").mkdir()
    (out / "trt" / "image_encoder.plan").write_bytes(b"engine")
    free = shutil.disk_usage(small_disk).free
    result = CliRunner().invoke(app, ["onnx", "--preset", "tiny", "--out", str(out), "--no-simplify"])
    assert result.exit_code == 2, result.output
    lines = _errors(result.stderr)
    assert len(lines) == 1 and "No space left on device" in lines[0] and "left as it was" in lines[0], result.stderr
    assert "Traceback" not in result.output
    _assert_clean(out, None)
    assert shutil.disk_usage(small_disk).free == free  # nothing half-written left


def test_a_mount_point_is_refused_before_any_work(small_disk: Path) -> None:
    with pytest.raises(ExportError, match="is a mount point, which cannot be swapped atomically"):
        with pub.staged_export(small_disk):
            pass
    assert list(small_disk.iterdir()) == []


def test_the_current_folder_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    for out in (Path("."), tmp_path, tmp_path.parent):
        with pytest.raises(ExportError, match="is the current folder or holds it"):
            with pub.staged_export(out):
                pass
    assert list(tmp_path.iterdir()) == []


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(_can_mount(), reason="the small-tmpfs test covers a full disk here")
def test_file_size_limit_is_one_line_and_leaves_the_old_folder(old: Path) -> None:
    """Without root: RLIMIT_FSIZE (SIGXFSZ ignored) makes the first graph's write fail with EFBIG."""
    script = (
        "import resource, signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))\n"
        "from escnet_export.cli import main\n"
        "sys.argv = ['escnet-export', 'onnx', '--preset', 'tiny', '--no-simplify', '--out', sys.argv[1]]\n"
        "main()\n"
    )
    r = subprocess.run([sys.executable, "-c", script, str(old)], env=ENV, capture_output=True, text=True, timeout=900)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "File too large" in errors[0] and "left as it was" in errors[0], r.stderr
    assert "Traceback" not in r.stderr
    _assert_clean(old, None)


def _errors(stderr: str) -> list[str]:
    """stderr without the plain progress lines the export prints off a terminal."""
    return [ln for ln in stderr.strip().splitlines() if not re.match(r"escnet-export \w+ \[ *[0-9.]+ s\]", ln)]
