"""escnet keeps its own copies of four runtime helpers (the two packages may not import each other):
each pair behaves the same on the same inputs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from escnet_runtime import chunked_decoder, fileio, vocabulary
from escnet_runtime import cli_usage as runtime_cli_usage

from escnet import cli_usage, io_utils
from escnet.modeling.chunks import class_spans
from escnet.validation import check_class_names

UMASKS = [0o022, 0o027, 0o002, 0o077, 0o000]


@pytest.fixture(params=UMASKS, ids=[f"umask{m:03o}" for m in UMASKS])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_file_mode_and_umask_agree(umask: int) -> None:
    assert io_utils.current_umask() == fileio.current_umask() == umask
    assert io_utils.file_mode() == fileio.file_mode() == 0o666 & ~umask
    assert os.umask(umask) == umask  # reading the umask left it as it was


def test_atomic_files_get_the_same_mode(tmp_path: Path, umask: int) -> None:
    modes = []
    for name, atomic_path in (("escnet", io_utils.atomic_path), ("runtime", fileio.atomic_path)):
        target = tmp_path / name / "out.bin"
        with atomic_path(target) as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o666 & ~umask  # already while it is written
            tmp.write_bytes(b"x")
        modes.append(stat.S_IMODE(target.stat().st_mode))
        assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]
    assert modes[0] == modes[1] == 0o666 & ~umask


def test_escnet_keeps_the_mode_when_the_writer_replaces_the_file(tmp_path: Path, umask: int) -> None:
    """safetensors' save_file writes a new file (mode 0600) over the temporary path: escnet's checkpoints
    still get the umask's mode (the runtime writes no safetensors through its atomic_path)."""
    import torch
    from safetensors.torch import save_file

    target = tmp_path / "w.safetensors"
    with io_utils.atomic_path(target) as tmp:
        inode = tmp.stat().st_ino
        save_file({"x": torch.zeros(1)}, str(tmp))
        replaced = tmp.stat().st_ino != inode
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask, "replaced" if replaced else "in place"


def test_a_failed_write_keeps_the_old_file_in_both(tmp_path: Path) -> None:
    for name, atomic_path in (("escnet", io_utils.atomic_path), ("runtime", fileio.atomic_path)):
        target = tmp_path / f"{name}.txt"
        target.write_text("old")
        with pytest.raises(OSError), atomic_path(target) as tmp:
            tmp.write_text("half")
            raise OSError("disk full")
        assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir() if name in p.name] == [target.name]


@pytest.mark.parametrize("t", [0, 1, 2, 5, 31, 32, 33, 64, 65, 150, 847])
@pytest.mark.parametrize("chunk", [1, 2, 7, 32, 64, 1000])
def test_class_spans_agree(t: int, chunk: int) -> None:
    spans = class_spans(t, chunk)
    assert spans == chunked_decoder.class_spans(t, chunk)
    assert [i for s, e in spans for i in range(s, e)] == list(range(t))  # every class once, in order


@pytest.mark.parametrize("chunk", [0, -1, -32])
def test_class_spans_refuse_the_same_chunks(chunk: int) -> None:
    assert _outcome(lambda: class_spans(10, chunk)) == _outcome(lambda: chunked_decoder.class_spans(10, chunk))
    assert _outcome(lambda: class_spans(10, chunk))[0] == "error"


def test_class_spans_none_is_one_span() -> None:
    assert class_spans(847, None) == [(0, 847)]  # the escnet-only case: all classes at once


NAMES = [
    ["cat", "sky"],
    ["cat"],
    [],
    "cat",
    ("cat", "dog"),
    ["cat", "Cat"],
    ["cat", " cat "],
    ["cat", " "],
    ["cat", ""],
    ["cat", 3],
    ["cat", None],
    {"cat": 1},
    5,
    None,
    ["a", "b", "a"],
    ["cat", "line\nbreak"],
    ["tab\there"],
    ["x" * 100 + "\x7f"],
    [f"class {i}" for i in range(vocabulary.MAX_CLASSES)],
    [f"class {i}" for i in range(vocabulary.MAX_CLASSES + 1)],
]


@pytest.mark.parametrize("names", NAMES, ids=[repr(n)[:30] for n in NAMES])
def test_check_class_names_agree(names: object) -> None:
    ours = _outcome(lambda: check_class_names(names))
    assert ours == _outcome(lambda: vocabulary.check_class_names(names))
    assert ours[0] == "error" or ours[1] == list(names)  # type: ignore[call-overload]


def _outcome(call: Callable[[], object]) -> tuple[str, object]:
    """("ok", value) or ("error", message) with the error a ValueError (each side's own class)."""
    try:
        return "ok", call()
    except ValueError as e:
        return "error", str(e)


_app = typer.Typer(add_completion=False)


@_app.command()
def _command(count: int = typer.Option(1, min=1, help="A count.")) -> None:
    typer.echo(f"count {count}")


ARGV = [[], ["--count", "3"], ["--count", "0"], ["--count", "x"], ["--nope"], ["extra"], ["--help"]]


@pytest.mark.parametrize("argv", ARGV, ids=[" ".join(a) or "none" for a in ARGV])
def test_run_app_agrees(argv: list[str], monkeypatch, capsys) -> None:
    results = []
    for run_app in (cli_usage.run_app, runtime_cli_usage.run_app):
        monkeypatch.setattr("sys.argv", ["prog", *argv])
        with pytest.raises(SystemExit) as exit_:
            run_app(_app, "prog")
        captured = capsys.readouterr()
        results.append((exit_.value.code, captured.out, captured.err))
    assert results[0] == results[1]
    code, _, err = results[0]
    assert code in (0, 2) and len(err.splitlines()) <= 1 and "Traceback" not in err
