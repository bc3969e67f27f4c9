"""No subcommand writes into what it reads or over what it did not write (without --overwrite).

Each refusal is one line on stderr, exit 2, before any work, and leaves every file as it was:
the artifacts folder read, the user's files at --out, and the folder beside them (no staging
leftovers). Overlaps are checked with symlinks resolved: the same folder, inside, containing.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

import pytest
from escnet_export.cli import app
from escnet_export.errors import ExportError
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner

NAMES = "sky,grass,wall"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_artifacts(tmp_path_factory)[0]


@pytest.fixture()
def own(artifacts: Path, tmp_path: Path) -> Path:
    """A copy of the tiny artifacts that this test may lose (it must not)."""
    folder = tmp_path / "work" / "artifacts"
    shutil.copytree(artifacts, folder)
    return folder


def snapshot(folder: Path) -> dict[str, str]:
    """Every path below ``folder`` (the folder's parent included) -> sha256 of a file, or "dir"."""
    out = {}
    for path in sorted(folder.parent.rglob("*")):
        key = str(path.relative_to(folder.parent))
        out[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
    return out


def errors(stderr: str) -> list[str]:
    """stderr without the plain progress lines printed off a terminal."""
    return [ln for ln in stderr.strip().splitlines() if not re.match(r"escnet-export \w+ \[ *[0-9.]+ s\]", ln)]


def refused(args: list[str], message: str, watched: Path) -> None:
    """``escnet-export ARGS`` exits 2 with one line holding ``message``; nothing under ``watched``'s parent changed."""
    before = snapshot(watched)
    result = CliRunner().invoke(app, args)
    lines = errors(result.stderr)
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("escnet-export: error: "), lines
    assert "Traceback" not in result.stderr + result.output
    assert snapshot(watched) == before


def test_bake_into_the_artifacts_folder_it_reads_is_refused(own: Path) -> None:
    args = ["bake", "--artifacts", str(own), "--classes", NAMES]
    refused([*args, "--out", str(own)], "is the artifacts folder", own)
    refused([*args, "--out", str(own), "--overwrite"], "is the artifacts folder", own)  # never, even so
    refused([*args, "--out", str(own / "baked")], "lies inside the artifacts folder", own)
    refused([*args, "--out", str(own.parent)], "holds the artifacts folder", own)


def test_a_symlink_to_what_is_read_is_the_same_folder(own: Path) -> None:
    link = own.parent / "link"
    link.symlink_to(own, target_is_directory=True)
    refused(["bake", "--artifacts", str(own), "--classes", NAMES, "--out", str(link)], "is the artifacts folder", own)
    refused(["bake", "--artifacts", str(link), "--classes", NAMES, "--out", str(own)], "is the artifacts folder", own)
    refused(["triton", "--artifacts", str(own), "--out", str(link / "repo")], "lies inside the artifacts", own)


def test_vocab_over_the_manifest_is_refused(own: Path) -> None:
    args = ["vocab", "--artifacts", str(own), "--classes", NAMES]
    refused([*args, "--out", str(own / "manifest.json")], "lies inside the artifacts folder", own)
    refused([*args, "--out", str(own / "manifest.json"), "--overwrite"], "lies inside the artifacts folder", own)
    refused([*args, "--out", str(own / "new.escvocab")], "lies inside the artifacts folder", own)
    refused([*args, "--out", str(own)], "is the artifacts folder", own)
    link = own.parent / "manifest-link.json"
    link.symlink_to(own / "manifest.json")
    refused([*args, "--out", str(link)], "lies inside the artifacts folder", own)


def test_vocab_replaces_only_its_own_files_without_overwrite(own: Path) -> None:
    users = own.parent / "notes.escvocab"
    users.write_text("the user's own notes")
    args = ["vocab", "--artifacts", str(own), "--classes", NAMES, "--out", str(users)]
    refused(args, "exists and is not a vocabulary file", own)
    assert users.read_text() == "the user's own notes"
    first = CliRunner().invoke(app, [*args, "--overwrite"])
    assert first.exit_code == 0, first.stderr
    again = CliRunner().invoke(app, args)  # a vocabulary file this command wrote: replaced without a flag
    assert again.exit_code == 0, again.stderr
    from escnet_runtime.vocab_file import read_vocabulary

    assert read_vocabulary(users).class_names == tuple(NAMES.split(","))
    (own.parent / "folder").mkdir()
    refused([*args[:-2], "--out", str(own.parent / "folder")], "is a folder; expected the path of a file", own)


def test_triton_into_or_around_what_it_reads_is_refused(own: Path) -> None:
    args = ["triton", "--artifacts", str(own)]
    refused([*args, "--out", str(own)], "is the artifacts folder", own)
    refused([*args, "--out", str(own / "repo")], "lies inside the artifacts folder", own)
    refused([*args, "--out", str(own.parent)], "holds the artifacts folder", own)


def test_triton_replaces_a_foreign_folder_only_with_overwrite(own: Path) -> None:
    foreign = own.parent / "photos"
    foreign.mkdir()
    (foreign / "keep.jpg").write_bytes(b"jpeg")
    refused(["triton", "--artifacts", str(own), "--out", str(foreign)], "not replacing it", own)
    result = CliRunner().invoke(app, ["triton", "--artifacts", str(own), "--out", str(foreign), "--overwrite"])
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["escnet"]


def test_onnx_over_a_folder_it_did_not_write_is_refused(own: Path) -> None:
    users = own.parent / "models"
    users.mkdir()
    (users / "model.onnx").write_bytes(b"the user's own graph")
    (users / "notes.txt").write_text("mine")
    args = ["onnx", "--preset", "tiny", "--no-simplify", "--out", str(users)]
    refused(args, "is not an artifacts folder and holds model.onnx", users)
    (users / "model.onnx").unlink()
    (users / "manifest.json").write_text('{"format": "someone-else"}')
    refused(args, "holds manifest.json, which would be replaced", users)
    refused(["onnx", "--preset", "tiny", "--out", str(users / "notes.txt")], "is a file", users)


def test_bake_over_another_artifacts_folder_is_refused(own: Path, artifacts: Path) -> None:
    args = ["bake", "--artifacts", str(artifacts), "--classes", NAMES, "--out", str(own)]
    refused(args, "is not a baked folder and holds", own)


@pytest.mark.parametrize("chunk", ["0", "-3"])
def test_bake_class_chunk_below_one_is_refused(own: Path, chunk: str) -> None:
    args = ["bake", "--artifacts", str(own), "--classes", NAMES, "--out", str(own.parent / "baked")]
    refused([*args, "--class-chunk", chunk], f"--class-chunk {chunk}: expected at least 1", own)


def test_bake_refuses_a_graph_of_too_many_chunks_up_front(own: Path) -> None:
    from escnet_export.bake.command import MAX_CHUNKS

    names = ",".join(f"class {i}" for i in range(MAX_CHUNKS + 1))
    args = ["bake", "--artifacts", str(own), "--classes", names, "--out", str(own.parent / "baked")]
    refused([*args, "--class-chunk", "1"], f"{MAX_CHUNKS + 1} copies of the decoder steps", own)
    refused([*args, "--class-chunk", "1"], "give --class-chunk 2 or more", own)


def test_trt_engines_go_only_to_the_artifacts_engine_folder(own: Path) -> None:
    from escnet_export.trt.build import TrtOptions

    def parse(out: Path | None, overwrite: bool = False) -> TrtOptions:
        return TrtOptions.parse(own, out, False, "1:1:2", None, None, 1.0, None, overwrite)

    assert parse(None).out == own / "trt"  # the engine folder the runtime looks in
    assert parse(own / "trt").out == own / "trt"
    for out, why in [(own, "is the artifacts folder"), (own / "x", "lies inside"), (own.parent, "holds the")]:
        with pytest.raises(ExportError, match=why):
            parse(out)
    users = own.parent / "engines"
    users.mkdir()
    (users / "image_encoder.engine").write_bytes(b"someone else's engine")
    with pytest.raises(ExportError, match="is not a TensorRT engine folder and holds image_encoder.engine"):
        parse(users)
    assert parse(users, overwrite=True).out == users


def test_an_unwritable_output_parent_is_one_line(own: Path, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    refused(["triton", "--artifacts", str(own), "--out", str(locked / "repo")], "cannot write", own)


def test_bake_beside_the_users_files_keeps_them_and_reports_parity_progress(own: Path) -> None:
    users = own.parent / "baked"
    users.mkdir()
    (users / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["bake", "--artifacts", str(own), "--classes", NAMES, "--out", str(users)])
    assert result.exit_code == 0, result.stderr
    assert (users / "notes.txt").read_text() == "mine" and (users / "segmenter.onnx").is_file()
    lines = [ln for ln in result.stderr.splitlines() if "parity " in ln]
    assert any("parity 1/3: 240x320 image" in ln and "loading took" in ln for ln in lines), result.stderr
    assert any("parity 3/3" in ln and "s left" in ln for ln in lines), result.stderr
    again = CliRunner().invoke(app, ["bake", "--artifacts", str(own), "--classes", "sky", "--out", str(users)])
    assert again.exit_code == 0, again.stderr  # its own baked folder: replaced without --overwrite
    assert (users / "notes.txt").read_text() == "mine"
