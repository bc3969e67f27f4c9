"""Bounded fuzzing of the C++ parsers that take outside bytes (the manifest, the vocabulary file,
PNG input), from the small corpora in tests/cpp/fuzz/: libFuzzer with ASan + UBSan when clang is
installed, else a replay of the corpus under ASan + UBSan (g++). Then valgrind runs of the
unsanitized parsers on the contract vectors' damaged inputs and on wrapping offsets."""

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cpp_tools import build_tree
from graph_edits import png_header, vocabulary_with
from support.contract_vectors.apply import apply_vector, load_vectors

CORPUS = Path(__file__).parent / "fuzz"
TARGETS = ("manifest", "vocabulary", "png")
FUZZ_SECONDS = 15  # per target


@pytest.fixture(scope="module")
def fuzz_build(tmp_path_factory) -> Path:
    compiler = ["-DCMAKE_CXX_COMPILER=clang++"] if shutil.which("clang++") else []
    names = tuple(f"{kind}_{t}" for kind in ("fuzz", "replay") for t in TARGETS)
    build = build_tree(tmp_path_factory.mktemp("cpp-fuzz"), "-DESCNET_FUZZ=ON", *compiler, targets=names)
    return build / "fuzz"


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_the_parser(fuzz_build, tmp_path, target):
    exe, corpus = fuzz_build / f"fuzz_{target}", CORPUS / target
    assert any(corpus.iterdir()), f"{corpus} holds no seed inputs"
    if shutil.which("clang++"):
        cmd = [exe, f"-max_total_time={FUZZ_SECONDS}", "-rss_limit_mb=2048", "-timeout=10", tmp_path, corpus]
        cmd.append(f"-artifact_prefix={tmp_path}/")
    else:
        cmd = [exe, corpus]
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=FUZZ_SECONDS + 120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ERROR: AddressSanitizer" not in proc.stderr and "runtime error:" not in proc.stderr, proc.stderr[-3000:]


def _hostile_inputs(work: Path) -> dict[str, list[Path]]:
    """Damaged manifests and vocabulary files (every contract vector of those kinds, applied to the
    seeds), wrapping and huge vocabulary offsets, huge and truncated PNGs."""
    seeds = {"manifest": work / "seed", "vocabulary": CORPUS / "vocabulary" / "two_classes.escvocab"}
    seeds["manifest"].mkdir(parents=True)
    shutil.copy(CORPUS / "manifest" / "artifacts.json", seeds["manifest"] / "manifest.json")
    found: dict[str, list[Path]] = {t: [] for t in TARGETS}
    for vector in load_vectors():
        kind = "vocabulary" if vector["kind"] == "vocabulary" else "manifest"
        if vector["kind"] == "baked_manifest":
            continue
        out = apply_vector(vector, seeds[kind], work / kind)
        found[kind].append(out / "manifest.json" if kind == "manifest" else out)
    seed = seeds["vocabulary"]
    (n,) = struct.unpack("<Q", seed.read_bytes()[:8])
    size = 4 * 2 * 1 * 8  # (T, P, D) = (2, 1, 8) float32
    for i, begin in enumerate((2**64 - 25600, 2**64 - 1, 2**63)):
        found["vocabulary"].append(
            vocabulary_with(seed, work / f"wrap{i}.escvocab", data_offsets=[begin, (begin + size) % 2**64])
        )
    found["vocabulary"].append(vocabulary_with(seed, work / "huge.escvocab", shape=[2**40, 2**20, 2**20]))
    cut = work / "cut.escvocab"
    cut.write_bytes(seed.read_bytes()[: 8 + n + 5])
    found["vocabulary"].append(cut)
    found["png"] += [png_header(work / "huge.png", 100000, 100000), png_header(work / "wide.png", 40000, 10)]
    whole = (CORPUS / "png" / "rgb_5x4.png").read_bytes()
    (work / "cut.png").write_bytes(whole[: len(whole) - 20])
    found["png"].append(work / "cut.png")
    return found


@pytest.mark.parametrize("target", TARGETS)
def test_valgrind_finds_no_error_in_the_parsers(fuzz_build, tmp_path, target):
    valgrind = shutil.which("valgrind")
    assert valgrind, "valgrind is needed (apt-get install valgrind)"
    inputs = _hostile_inputs(tmp_path)[target] + sorted((CORPUS / target).iterdir())
    cmd = [valgrind, "--error-exitcode=99", "--quiet", str(fuzz_build / f"replay_{target}"), *map(str, inputs)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"replayed {len(inputs)} inputs" in proc.stdout
