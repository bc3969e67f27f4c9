"""Backends: the requested provider is the one that runs, TensorRT absent is a clear error, no torch anywhere."""

import subprocess
import sys
import textwrap

import escnet_runtime.backends.ort as ort_backend
import numpy as np
import pytest
from escnet_runtime import BackendError, Segmenter
from escnet_runtime.backends import BACKENDS
from escnet_runtime.contract import IMAGE_ENCODER, TEXT_ENCODER, TOKEN_IDS
from support.artifacts import tiny_artifacts


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


def test_cpu_backend_runs_on_cpu(artifacts):
    seg = Segmenter(artifacts, backend="ort-cpu", disk_cache=False).set_vocabulary(["cat"])
    session = seg.backend._sessions[TEXT_ENCODER]
    assert session.get_providers()[0] == "CPUExecutionProvider"


@pytest.mark.skipif(
    "CUDAExecutionProvider" in ort_backend.ort.get_available_providers(), reason="this onnxruntime has CUDA"
)
@pytest.mark.parametrize("name", ["ort-cuda", "ort-trt"])
def test_missing_gpu_provider_is_refused(artifacts, name):
    with pytest.raises(BackendError, match="only has"):
        Segmenter(artifacts, backend=name, disk_cache=False)


def test_silent_fallback_is_detected(artifacts, monkeypatch):
    # Pretend the provider is installed: ONNX Runtime then creates a CPU session without raising.
    monkeypatch.setattr(
        ort_backend.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    seg = Segmenter(artifacts, backend="ort-cuda", disk_cache=False)
    with pytest.raises(BackendError, match="fell back to CPUExecutionProvider"):
        seg.set_vocabulary(["cat"])


def test_inputs_outside_the_contract_are_refused(artifacts):
    seg = Segmenter(artifacts, disk_cache=False)
    with pytest.raises(BackendError, match="expected int64"):
        seg.backend.run(TEXT_ENCODER, {TOKEN_IDS: np.zeros((1, 77), np.int32)})
    with pytest.raises(BackendError, match="do not match the contract"):
        seg.backend.run(TEXT_ENCODER, {"ids": np.zeros((1, 77), np.int64)})


def test_tensorrt_backend_without_tensorrt(artifacts):
    try:
        import tensorrt  # noqa: F401

        pytest.skip("TensorRT is installed: the engine path is exercised by the GPU tests")
    except ImportError:
        pass
    with pytest.raises(BackendError, match="needs TensorRT"):
        Segmenter(artifacts, backend="trt", disk_cache=False)
    assert set(BACKENDS) == {"ort-cpu", "ort-cuda", "ort-trt", "trt", "ov-cpu", "ov-cpu-bf16"}


def test_import_and_segment_load_no_torch(artifacts, tmp_path):
    code = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from escnet_runtime import Segmenter
        seg = Segmenter({str(artifacts)!r}, cache_dir={str(tmp_path)!r})
        seg.set_vocabulary(["cat", "sky"])
        img = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
        res = seg.segment(img, sliding_window=True, return_scores=True)
        assert res.labels.shape == (50, 70)
        from escnet_runtime.cli import main  # the CLI module too
        banned = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "open_clip", "escnet", "torchvision"))
        print("BANNED", banned)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BANNED []" in proc.stdout


def _add_layer_norm_model(path):
    """x + y -> LayerNormalization: the pattern ONNX Runtime fuses into SkipLayerNormalization."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = ["n", 4, 8]
    nodes = [
        helper.make_node("Add", ["x", "y"], ["s"]),
        helper.make_node("LayerNormalization", ["s", "g", "b"], ["out"], axis=-1),
    ]
    inits = [numpy_helper.from_array(np.full(8, v, np.float32), n) for n, v in (("g", 1.0), ("b", 0.0))]
    graph = helper.make_graph(
        nodes,
        "add_ln",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in ("x", "y")],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))


@pytest.mark.parametrize("disabled", [False, True])
def test_cpu_disabled_optimizers_are_honoured(tmp_path, disabled):
    # The optimiser names are ONNX Runtime's; a renamed one would be ignored silently.
    import onnx

    path, optimized = tmp_path / "m.onnx", tmp_path / "opt.onnx"
    _add_layer_norm_model(path)
    opts = ort_backend.ort.SessionOptions()
    opts.optimized_model_filepath = str(optimized)
    opts.graph_optimization_level = ort_backend.ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    skip = list(ort_backend.CPU_DISABLED_OPTIMIZERS) if disabled else None
    ort_backend.ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=skip)
    ops = {n.op_type for n in onnx.load(str(optimized)).graph.node}
    assert ("SkipLayerNormalization" in ops) is not disabled


def test_cpu_sessions_share_one_arena_and_skip_slow_fusions(artifacts, monkeypatch):
    created = []
    real = ort_backend.ort.InferenceSession

    def spy(*args, **kwargs):
        created.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(ort_backend.ort, "InferenceSession", spy)
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(["cat", "dog"])
    seg.segment(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8))
    per_image = [g for g in seg.backend._sessions if g != TEXT_ENCODER]
    assert IMAGE_ENCODER in per_image and len(per_image) >= 2
    for graph in per_image:
        opts = seg.backend._sessions[graph].get_session_options()
        assert opts.get_session_config_entry("session.use_env_allocators") == "1", graph
        assert opts.enable_cpu_mem_arena, graph
    assert ort_backend._shared_cpu_arena
    # The text encoder runs once per vocabulary: no arena keeps its batch peak for the decoder's life.
    text_opts = seg.backend._sessions[TEXT_ENCODER].get_session_options()
    assert not text_opts.enable_cpu_mem_arena
    assert created and all(c["disabled_optimizers"] == list(ort_backend.CPU_DISABLED_OPTIMIZERS) for c in created)


@pytest.mark.parametrize("arena", ["session", "off"])
def test_cpu_arena_choices(artifacts, arena):
    seg = Segmenter(artifacts, disk_cache=False, cpu_arena=arena).set_vocabulary(["cat"])
    opts = seg.backend._sessions[TEXT_ENCODER].get_session_options()
    assert opts.enable_cpu_mem_arena is (arena == "session")
    with pytest.raises(RuntimeError, match="does not have configuration"):
        opts.get_session_config_entry("session.use_env_allocators")


def test_unknown_cpu_arena_is_refused(artifacts):
    with pytest.raises(BackendError, match="cpu_arena 'big'"):
        Segmenter(artifacts, disk_cache=False, cpu_arena="big")


def _class(path, cls: str):
    """The class ``cls`` as Python's ast parses it from ``path`` (read, not imported: the Triton
    BLS backend only imports inside a server)."""
    import ast

    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls]
    return node


def _methods(path, cls: str) -> set[str]:
    """Names of the methods ``cls`` defines in the Python file ``path``."""
    import ast

    return {f.name for f in _class(path, cls).body if isinstance(f, ast.FunctionDef)}


def _abstract(path, cls: str) -> set[str]:
    """Names of the methods ``cls`` declares ``@abstractmethod``."""
    import ast

    return {
        f.name
        for f in _class(path, cls).body
        if isinstance(f, ast.FunctionDef) and any(ast.unparse(d) == "abstractmethod" for d in f.decorator_list)
    }


BACKEND_CLASSES = [
    ("runtime/escnet_runtime/backends/ort.py", "OrtBackend"),
    ("runtime/escnet_runtime/backends/ov.py", "OvBackend"),
    ("runtime/escnet_runtime/backends/trt.py", "TrtBackend"),
    ("export/escnet_export/triton/bls.py", "BlsBackend"),
]


@pytest.mark.parametrize("path, cls", BACKEND_CLASSES)
def test_every_backend_has_the_whole_protocol(path, cls):
    """A Segmenter calls every method of ``Backend`` (graph_sha256 for the cache key, release
    from the chunked decoder, close): the base class defines them all, with the input checks and
    the context protocol written once there; each backend derives from it and implements what is
    abstract, never ``run`` or the context protocol again."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    base = root / "runtime/escnet_runtime/backends/base.py"
    wanted = _methods(base, "Backend")
    assert wanted >= {"graph_sha256", "run", "run_impl", "put", "to_host", "release", "close", "__enter__"}
    assert _abstract(base, "Backend") == {"run_impl", "close"}
    assert [ast.unparse(b) for b in _class(root / path, cls).bases] == ["Backend"]
    defined = _methods(root / path, cls)
    assert {"run_impl", "close"} <= defined
    assert defined & {"run", "__enter__", "__exit__"} == set()


def test_base_class_checks_inputs_and_closes(artifacts):
    """The input checks and the context protocol run for every backend, from the base class; a
    backend that leaves ``run_impl`` out cannot be made; an unknown graph is a BackendError."""
    from escnet_runtime import load_manifest
    from escnet_runtime.backends import Backend

    class Recording(Backend):
        def __init__(self, manifest):
            super().__init__("recording", "fp32", manifest)
            self.calls, self.closed = [], 0

        def run_impl(self, spec, inputs, keep_on_device):
            self.calls.append(spec.name)
            return {}

        def close(self):
            self.closed += 1

    class Incomplete(Backend):
        def close(self):
            pass

    manifest = load_manifest(artifacts)
    with pytest.raises(TypeError, match="run_impl"):
        Incomplete("x", "fp32", manifest)
    with Recording(manifest) as backend:
        with pytest.raises(BackendError, match="expected int64"):
            backend.run(TEXT_ENCODER, {TOKEN_IDS: np.zeros((1, 77), np.int32)})
        with pytest.raises(BackendError, match="unknown graph 'nope'"):
            backend.run("nope", {})
        assert backend.calls == []  # refused before the backend saw them
        backend.run(TEXT_ENCODER, {TOKEN_IDS: np.zeros((1, 77), np.int64)})
        assert backend.calls == [TEXT_ENCODER]
        assert backend.graph_sha256(TEXT_ENCODER) == manifest.files[manifest.graphs[TEXT_ENCODER].file]
    assert backend.closed == 1


def test_parity_runner_has_the_step_protocol():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    wanted = _methods(root / "runtime/escnet_runtime/chunked_decoder.py", "StepRunner")
    assert wanted - _methods(root / "export/escnet_export/checks/parity_run.py", "SessionRunner") == set()


def test_trim_heap_uses_glibc_where_there_is_one():
    import platform

    from escnet_runtime.heap import _malloc_trim, trim_heap

    if platform.libc_ver()[0] == "glibc":
        assert _malloc_trim() is not None
    trim_heap()  # a no-op elsewhere, never an error
