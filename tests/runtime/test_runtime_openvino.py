"""OpenVINO backends on the tiny artifacts: parity with PyTorch and ONNX Runtime, the bf16
f32 islands as the CPU plugin runs them, the compiled-model cache, close(), and the one-line
error where openvino is missing. Needs the real openvino (the dev extra installs it)."""

import gc
import inspect
import json
import subprocess
import sys
import textwrap
import weakref
from collections import Counter

import numpy as np
import pytest
import torch
from escnet_runtime import BackendError, Segmenter, load_manifest
from escnet_runtime import contract as C
from escnet_runtime.cli import app
from escnet_runtime.manifest import ManifestError
from PIL import Image
from support.artifacts import tiny_artifacts
from typer.testing import CliRunner

from escnet import load_checkpoint
from escnet.inference import predict_scores, preprocess

ov = pytest.importorskip("openvino")
from escnet_runtime.backends.ov import OvBackend, read_graph  # noqa: E402
from escnet_runtime.backends.ov_islands import f32_islands  # noqa: E402
from escnet_runtime.heap import trim_heap  # noqa: E402

CLASSES = ["cat", "grass", "sky", "tree", "person", "road", "a red car parked on the street"]
MAX_ABS = 1e-4  # ov-cpu as strict as ONNX Runtime
MIN_AGREEMENT = 0.999
# Graphs that decide prompt points, or whose outputs (the next block's prompt scores and their
# log-sum-exp) become decisions in the next step: they hold f32 islands under bf16. With
# per-block prompts that is every decoder step but the last.
PROMPT_GRAPHS = {C.DECODER, *C.decoder_step_names(2)[:-1]}
SCORE_GRAPHS = {s for s in PROMPT_GRAPHS if s.startswith(("decoder_open", "decoder_attend"))}  # no decision inside
BULK = ("FullyConnected", "MatMul", "Convolution")


def _cpu_has_bf16() -> bool:
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)


@pytest.fixture(scope="module")
def artifacts(tiny):
    return tiny[0]


def _images() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:97, 0:131]
    smooth = np.stack([(xx * 255 // 130), (yy * 255 // 96), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    return [rng.integers(0, 256, (80, 120, 3), dtype=np.uint8), smooth]


def _segmenter(artifacts, tmp_path, backend, **kw):
    return Segmenter(artifacts, backend=backend, disk_cache=False, model_cache_dir=tmp_path / "ov", **kw)


@pytest.mark.parametrize("class_chunk", [None, 3], ids=["one-call", "chunked"])
def test_ov_cpu_matches_pytorch(tiny, tmp_path, class_chunk):
    folder, checkpoint = tiny
    model = load_checkpoint(checkpoint, preset="tiny").eval()
    with _segmenter(folder, tmp_path, "ov-cpu", class_chunk=class_chunk) as seg:
        seg.set_vocabulary(CLASSES)
        for image in _images():
            with torch.no_grad():
                text = model.embed_classes(CLASSES)
                ref = predict_scores(model, preprocess(torch.from_numpy(image)), text, image.shape[:2]).numpy()
            res = seg.segment(image, return_scores=True)
            assert np.abs(res.scores - ref).max() <= MAX_ABS
            assert (res.labels == ref.argmax(0)).mean() >= MIN_AGREEMENT


def test_ov_cpu_matches_onnxruntime_per_graph(artifacts, tmp_path):
    """Every graph, dynamic batch (2) and class (5) axes, against ONNX Runtime on the same inputs."""
    ort_seg = Segmenter(artifacts, backend="ort-cpu", disk_cache=False)
    with _segmenter(artifacts, tmp_path, "ov-cpu") as seg:
        rng = np.random.default_rng(0)
        size = seg.image_size
        image = rng.standard_normal((2, 3, size, size)).astype(np.float32)
        feats = ort_seg.backend.run(C.IMAGE_ENCODER, {C.IMAGE: image})
        got = seg.backend.run(C.IMAGE_ENCODER, {C.IMAGE: image})
        for name, value in feats.items():
            assert np.abs(got[name] - value).max() <= MAX_ABS
        emb = ort_seg.encode_vocabulary(CLASSES[:5])
        want = ort_seg.decode(feats, emb)
        assert want.shape[:2] == (2, 5)
        assert np.abs(seg.decode(feats, emb) - want).max() <= MAX_ABS
        assert np.abs(seg.encode_vocabulary(CLASSES[:5]) - emb).max() <= 1e-5


def test_ov_cpu_runs_in_f32_everywhere(artifacts, tmp_path):
    """OpenVINO's CPU default here is bf16: ov-cpu must have asked for f32, and got it."""
    with _segmenter(artifacts, tmp_path, "ov-cpu") as seg:
        for graph in seg.manifest.graphs:
            precisions = seg.backend.runtime_precisions(graph)
            assert precisions.get("bf16", 0) == 0 and precisions["f32"] > 0, (graph, precisions)
            assert seg.backend.graph_precision[graph] == "f32"


def test_bf16_islands_run_f32_and_the_bulk_bf16(artifacts, tmp_path):
    """Under ov-cpu-bf16 every graph is compiled with the bf16 hint; the nodes marked
    ``precise_0`` (decisions, the class-score map, its softmax / log-sum-exp) run in f32 as read
    from the compiled model, and the bulk (MatMul / FullyConnected / Convolution) in bf16. The
    same precisions come back from the compiled-model cache."""
    if not _cpu_has_bf16():
        pytest.skip("this CPU has no bf16: OpenVINO runs ov-cpu-bf16 in f32")
    seen = {}
    with _segmenter(artifacts, tmp_path, "ov-cpu-bf16") as seg:
        assert seg.backend.precision == "bf16"
        for graph in seg.manifest.graphs:
            rows = seg.backend.node_precisions(graph)
            islands = set(seg.backend.f32_islands[graph])
            seen[graph] = _precisions(rows, islands)
            assert seg.backend.graph_precision[graph] == "bf16"
            assert bool(islands) is (graph in PROMPT_GRAPHS), graph
            run = {name: (kind, p) for name, kind, p in rows if name in islands}
            if graph in PROMPT_GRAPHS:  # the decisions and the reductions (softmax, log-sum-exp, k-means)
                decided = [v for v in run.values() if v[0] in ("TopK", "Reduce")]
                assert decided and all(p == "f32" for _, p in decided), (graph, decided)
            if graph in SCORE_GRAPHS:  # the class-score map (its head), its softmax and log-sum-exp
                # (decoder_open's image-text correlation MatMul is the exception: docs/precision.md)
                kept = [v for v in run.values() if not (graph == C.DECODER_OPEN and v[0] == "MatMul")]
                assert kept and all(p == "f32" for _, p in kept), (graph, kept)
            bulk = [(n, p) for n, kind, p in rows if kind in BULK and n not in islands]
            assert bulk and all(p == "bf16" for _, p in bulk), (graph, [b for b in bulk if b[1] != "bf16"])
    blobs = sorted((tmp_path / "ov").glob("*.blob"))
    with _segmenter(artifacts, tmp_path, "ov-cpu-bf16") as cached:  # imported from the cache
        for graph in cached.manifest.graphs:
            rows = cached.backend.node_precisions(graph)
            assert _precisions(rows, set(cached.backend.f32_islands[graph])) == seen[graph], graph
    assert sorted((tmp_path / "ov").glob("*.blob")) == blobs  # every graph read back, none compiled again


def _precisions(rows, islands) -> tuple:
    """What a compiled graph runs in: (layer type, precision) counts, and each island node's."""
    return Counter((kind, p) for _, kind, p in rows), {n: p for n, _, p in rows if n in islands}


def test_ov_cpu_marks_no_islands(artifacts, tmp_path):
    with _segmenter(artifacts, tmp_path, "ov-cpu") as seg:
        seg.backend.runtime_precisions(C.DECODER)
        assert seg.backend.f32_islands[C.DECODER] == ()


def test_islands_found_where_prompts_are_decided(artifacts):
    """Islands: every decision operator on float values, and nothing wide: matrix products only
    with a narrow constant operand (the class-score head, the k-means centre means) or none (the
    image-text correlation), never a convolution."""
    manifest = load_manifest(artifacts)
    core = ov.Core()
    models = {g: core.read_model(read_graph(artifacts, manifest, g)) for g in manifest.graphs}
    found = {g: f32_islands(model) for g, model in models.items()}
    assert {g for g, nodes in found.items() if nodes} == PROMPT_GRAPHS
    for graph, nodes in found.items():
        assert "Convolution" not in {n.get_type_name() for n in nodes}, graph
        for node in nodes:
            if node.get_type_name() == "MatMul":
                weights = [v.get_partial_shape() for v in node.input_values() if _is_constant(v)]
                assert not weights or any(min(s.to_shape()[-2:]) <= 4 for s in weights), (graph, weights)
        decisions = [
            op.get_friendly_name()
            for op in models[graph].get_ordered_ops()
            if op.get_type_name() in ("TopK", "Round") and op.get_input_element_type(0).is_real()
        ]
        assert set(decisions) <= {n.get_friendly_name() for n in nodes}, graph
        assert bool(decisions) is (graph in PROMPT_GRAPHS - {C.DECODER_OPEN, *SCORE_GRAPHS}), graph


def _is_constant(value) -> bool:
    node = value.get_node()
    if node.get_type_name() == "Convert":
        node = node.input_value(0).get_node()
    return node.get_type_name() == "Constant"


BF16_AGREEMENT = """
import json, sys
import numpy as np
from escnet_runtime import Segmenter
folder, cache, names, images = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), np.load(sys.argv[4])
rows = []
kw = dict(disk_cache=False, model_cache_dir=cache)
with Segmenter(folder, backend="ov-cpu", **kw) as f32, Segmenter(folder, backend="ov-cpu-bf16", **kw) as bf16:
    f32.set_vocabulary(names)
    bf16.set_vocabulary(names)
    for image in images.values():
        ref = f32.segment(image, return_scores=True)
        got = bf16.segment(image, return_scores=True)
        top2 = np.sort(ref.scores, axis=0)[-2:]
        confident = (top2[1] - top2[0]) > 0.05
        same = got.labels == ref.labels
        share = float(same[confident].mean()) if confident.any() else None
        rows.append([float(same.mean()), int(confident.sum()), share])
print(json.dumps(rows))
"""


def test_bf16_labels_close_to_f32(artifacts, tmp_path):
    """bf16 moves labels only where classes are nearly tied (random weights): report both figures.

    Runs in a child process: bf16 inference here (OpenVINO 2026.4, tiny shapes) left this test
    process's heap corrupted; the crash came minutes later, in unrelated tests (see docs/known-issues.md)."""
    images = tmp_path / "images.npz"
    np.savez(images, *_images())  # arr_0, arr_1: in order
    code = [sys.executable, "-c", BF16_AGREEMENT, str(artifacts), str(tmp_path / "ov"), json.dumps(CLASSES)]
    code.append(str(images))
    proc = subprocess.run(code, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for agree_all, n_confident, agree_confident in json.loads(proc.stdout.strip().splitlines()[-1]):
        assert agree_all >= 0.5
        if n_confident:
            assert agree_confident >= 0.95


def test_compiled_models_are_cached(artifacts, tmp_path):
    cache = tmp_path / "compiled"
    with Segmenter(artifacts, backend="ov-cpu", disk_cache=False, model_cache_dir=cache) as seg:
        seg.set_vocabulary(CLASSES).segment(_images()[0])
    blobs = sorted(cache.glob("*.blob"))
    assert len(blobs) >= 3  # text encoder, image encoder, decoder
    with Segmenter(artifacts, backend="ov-cpu", disk_cache=False, model_cache_dir=cache) as seg:
        seg.set_vocabulary(CLASSES).segment(_images()[0])
    assert sorted(cache.glob("*.blob")) == blobs  # read back, not compiled again
    off = tmp_path / "off"
    with Segmenter(artifacts, backend="ov-cpu", disk_cache=False, model_cache=False, model_cache_dir=off) as seg:
        seg.set_vocabulary(CLASSES)
    assert not off.exists()


def test_close_frees_compiled_models(artifacts, tmp_path):
    seg = _segmenter(artifacts, tmp_path, "ov-cpu")
    seg.set_vocabulary(CLASSES).segment(_images()[0])
    backend = seg.backend
    assert isinstance(backend, OvBackend)
    refs = [weakref.ref(m) for m in backend._compiled.values()]
    assert refs
    seg.close()
    gc.collect()
    assert all(r() is None for r in refs)
    assert seg.class_names == ()


def test_graph_bytes_are_checked(artifacts, tmp_path):
    import shutil

    copy = tmp_path / "art"
    shutil.copytree(artifacts, copy)
    manifest = load_manifest(copy)
    (copy / "decoder_close.onnx").write_bytes((copy / "decoder_close.onnx").read_bytes() + b"\0")
    with pytest.raises(ManifestError, match="sha256"):
        read_graph(copy, manifest, C.DECODER_CLOSE)


def test_segment_cli_with_ov_backend(artifacts, tmp_path):
    image = tmp_path / "img.png"
    Image.fromarray(_images()[0]).save(image)
    out, cache = tmp_path / "out", tmp_path / "ovcache"
    args = [str(image), "--artifacts", str(artifacts), "--out", str(out), "--classes", "cat,sky"]
    args += ["--backend", "ov-cpu", "--cache-dir", str(tmp_path / "text"), "--ov-cache", str(cache)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.stderr
    assert (out / "img.labels.png").is_file() and any(cache.glob("*.blob"))
    bad = CliRunner().invoke(app, [*args[:-4], "--backend", "ort-cpu", "--ov-cache", "off"])
    assert bad.exit_code == 2 and "OpenVINO option" in bad.stderr


def test_missing_openvino_is_one_line(artifacts, tmp_path):
    """With openvino hidden: the Python API raises one BackendError naming the extra; the CLI exits 2."""
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["openvino"] = None  # import openvino -> ImportError
        from escnet_runtime import BackendError, Segmenter
        try:
            Segmenter({str(artifacts)!r}, backend="ov-cpu-bf16", disk_cache=False)
        except BackendError as e:
            print("ERROR", e)
        assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
        from escnet_runtime.cli import main
        sys.argv = ["escnet-segment", "--artifacts", {str(artifacts)!r}, "--classes", "a", "--backend", "ov-cpu",
                    "--precompute", "--cache-dir", {str(tmp_path)!r}]
        main()
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "ERROR backend 'ov-cpu-bf16' needs OpenVINO" in proc.stdout and "escnet[openvino]" in proc.stdout
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("escnet-segment: error: backend 'ov-cpu' needs OpenVINO")


def test_ov_backend_loads_no_torch(artifacts, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from escnet_runtime import Segmenter
        with Segmenter({str(artifacts)!r}, backend="ov-cpu", disk_cache=False, model_cache=False) as seg:
            seg.set_vocabulary(["cat", "sky"]).segment(np.zeros((20, 30, 3), dtype=np.uint8))
        print("BANNED", sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "escnet", "onnx")))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BANNED []" in proc.stdout


def test_ort_close_drops_sessions(artifacts):
    """close() is every backend's: ONNX Runtime's sessions are gone after it, and so is their memory."""
    with Segmenter(artifacts, backend="ort-cpu", disk_cache=False) as seg:
        seg.set_vocabulary(CLASSES).segment(_images()[0])
        refs = [weakref.ref(s) for s in seg.backend._sessions.values()]
        assert len(refs) >= 3
    gc.collect()
    assert all(r() is None for r in refs)


class ReleaseSpy:
    """A compiled model that records its ``release_memory`` calls (the real model does the work)."""

    def __init__(self, compiled, graph: str, log: list[str]) -> None:
        self.compiled, self.graph, self.log = compiled, graph, log

    def release_memory(self) -> None:
        self.log.append(self.graph)
        self.compiled.release_memory()


def _releases(artifacts, tmp_path, policy: str, monkeypatch) -> tuple[list[str], np.ndarray]:
    """Graphs released while one image is segmented in chunks of 3 classes (3 chunks), and the
    scores; every release is followed by a heap trim (logged as "trim")."""
    import escnet_runtime.backends.ov as ov_module

    seg = _segmenter(artifacts, tmp_path, "ov-cpu", class_chunk=3, release_memory=policy).set_vocabulary(CLASSES)
    image = _images()[0]
    seg.segment(image)  # compiles every graph
    log: list[str] = []
    monkeypatch.setattr(ov_module, "trim_heap", lambda: (log.append("trim"), trim_heap()))
    backend = seg.backend
    backend._compiled = {g: ReleaseSpy(m, g, log) for g, m in backend._compiled.items()}
    scores = seg.segment(image, return_scores=True).scores
    monkeypatch.undo()  # later Segmenters log into their own lists
    seg.close()
    return log, scores


def test_release_policies(artifacts, tmp_path, monkeypatch):
    """``steps`` (ov-cpu's default) hands each decoder step's memory back once, after its last chunk; the
    image encoder after each run; ``encoders`` keeps the steps' memory, ``all`` frees after every run.
    The scores do not depend on it."""
    steps = load_manifest(artifacts).decoder_steps
    logs = {p: _releases(artifacts, tmp_path, p, monkeypatch) for p in ("steps", "encoders", "all", "none")}
    trimmed = lambda graphs: [x for g in graphs for x in (g, "trim")]  # noqa: E731
    assert logs["steps"][0] == trimmed([C.IMAGE_ENCODER, *steps])
    assert logs["encoders"][0] == trimmed([C.IMAGE_ENCODER])
    assert logs["all"][0] == trimmed([C.IMAGE_ENCODER] + [s for s in steps for _ in range(3)])
    assert logs["none"][0] == []
    for policy in ("encoders", "all", "none"):
        np.testing.assert_array_equal(logs[policy][1], logs["steps"][1])
    assert inspect.signature(OvBackend).parameters["release_memory"].default is None


@pytest.mark.parametrize(("backend", "policy"), [("ov-cpu", "steps"), ("ov-cpu-bf16", "encoders")])
def test_the_default_release_policy_follows_the_precision(artifacts, tmp_path, backend, policy):
    """Under bf16 re-allocating a step's memory costs more of each image than under f32, so bf16
    keeps the steps' memory unless told otherwise; a given policy wins."""
    with _segmenter(artifacts, tmp_path, backend) as seg:
        assert seg.backend.release_memory == policy
    with _segmenter(artifacts, tmp_path, backend, release_memory="all") as seg:
        assert seg.backend.release_memory == "all"


@pytest.mark.parametrize("policy", ["some", ["steps"], 3])
def test_unknown_release_policy_is_refused(artifacts, tmp_path, policy):
    with pytest.raises(BackendError, match=r"release_memory \S+: expected one of steps, encoders, all, none"):
        _segmenter(artifacts, tmp_path, "ov-cpu", release_memory=policy)
