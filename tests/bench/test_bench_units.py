"""escnet_bench components: statistics, fits, parity metrics, memory probe, options, schema."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from escnet_bench.memory import MemoryProbe
from escnet_bench.options import ALL_BACKENDS, OptionError, build_options, parse_backends, parse_int_list
from escnet_bench.parity import cosine, task_parity, tensor_parity
from escnet_bench.scaling import fit_linear
from escnet_bench.schema import SchemaError, load_schema, validate_result
from escnet_bench.stats import summarise
from escnet_bench.timing import time_runs


def test_summarise_percentiles_and_throughput():
    s = summarise([0.010, 0.020, 0.030, 0.040, 0.100], warmup=2, items=4, item_unit="images")
    assert s.runs == 5 and s.warmup == 2
    assert s.median_ms == pytest.approx(30.0)
    assert s.min_ms == pytest.approx(10.0) and s.max_ms == pytest.approx(100.0)
    assert s.median_ms < s.p90_ms <= s.p99_ms <= s.max_ms
    assert s.throughput == pytest.approx(4 / 0.030)
    with pytest.raises(ValueError):
        summarise([], 0, 1, "images")


def test_time_runs_counts_warmup_and_timed_calls():
    calls = []
    runs = time_runs(lambda: calls.append(1) or len(calls), warmup=2, iters=3)
    assert len(calls) == 5 and len(runs.seconds) == 3
    assert runs.last_output == 5 and runs.first_call_s is not None
    with pytest.raises(ValueError):
        time_runs(lambda: None, 0, 0)


def test_time_runs_budget_stops_early_after_the_minimum():
    import time

    slow = time_runs(lambda: time.sleep(0.02), warmup=0, iters=10, budget_s=0.05, min_iters=2)
    assert 2 <= len(slow.seconds) <= 4  # stops once ~0.05 s are spent
    fast = time_runs(lambda: None, warmup=0, iters=10, budget_s=5.0, min_iters=2)
    assert len(fast.seconds) == 10  # the maximum when the budget is not reached
    once = time_runs(lambda: time.sleep(0.06), warmup=0, iters=10, budget_s=0.01, min_iters=2)
    assert len(once.seconds) == 2  # the minimum even when one run exceeds the budget


def test_linear_fit_recovers_line_and_predicts():
    xs = [20, 59, 150, 459]
    fit = fit_linear(xs, [5.0 + 0.25 * x for x in xs])
    assert fit.intercept == pytest.approx(5.0) and fit.slope == pytest.approx(0.25)
    assert fit.predict(2000) == pytest.approx(505.0)
    assert fit.r2 == pytest.approx(1.0)
    noisy = fit_linear([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0])
    assert 0 < noisy.r2 < 1
    assert fit_linear([1, 2], [1.0, 2.0]).r2 is None  # two points: any line is exact
    with pytest.raises(ValueError):
        fit_linear([5, 5], [1.0, 2.0])


def test_tensor_parity_passes_close_and_fails_far():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    close = tensor_parity("logits", a, a + 1e-6)
    assert close.passed and close.polygraphy_pass and close.max_abs == pytest.approx(1e-6, rel=0.1)
    far = tensor_parity("logits", a, a + 1e-2)
    assert not far.passed and far.polygraphy_pass is False
    assert far.mean_abs == pytest.approx(1e-2, rel=1e-3)
    flipped = tensor_parity("logits", a, -a)
    assert flipped.cosine == pytest.approx(-1.0) and not flipped.passed
    # a non-contiguous view must work (polygraphy needs contiguous arrays)
    assert tensor_parity("x", a.transpose(0, 1, 3, 2), a.transpose(0, 1, 3, 2)).passed
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


def test_task_parity_agreement_and_miou():
    ref = np.array([[0, 0, 1, 1], [2, 2, 2, 2]])
    cand = np.array([[0, 1, 1, 1], [2, 2, 2, 0]])
    p = task_parity(ref, cand)
    assert p.agreement == pytest.approx(6 / 8)
    # IoU: class 0: 1/(2+2-1)=1/3; class 1: 2/3; class 2: 3/4
    assert p.miou == pytest.approx((1 / 3 + 2 / 3 + 3 / 4) / 3)
    assert task_parity(ref, ref).miou == 1.0
    with pytest.raises(ValueError):
        task_parity(ref, cand[:1])


def test_memory_probe_sees_an_allocation():
    with MemoryProbe("cpu") as probe:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        block[::512] = 2.0
    r = probe.reading
    assert r is not None and r.peak_rss_mib is not None
    assert r.delta_rss_mib >= 56, r
    with MemoryProbe("cpu") as probe:
        pass
    assert probe.reading.delta_rss_mib < 32, probe.reading  # the previous block was freed and not counted


@pytest.mark.parametrize(
    ("text", "message"),
    [("0,20", "out of range"), ("20,,59", "comma-separated"), ("abc", "not an integer"), ("", "comma-separated")],
)
def test_parse_int_list_rejects(text, message):
    with pytest.raises(OptionError, match=message):
        parse_int_list(text, "classes", 1, 1000)


def test_parse_lists_sort_and_dedupe():
    assert parse_int_list("150, 20,20", "classes", 1, 1000) == (20, 150)
    assert parse_backends("all") == ALL_BACKENDS
    default = parse_backends("default")
    assert "torch-compile" not in default and "torch-compile-bf16" not in default
    assert set(ALL_BACKENDS) - set(default) == {"torch-compile", "torch-compile-bf16"}
    assert parse_backends("ort-cpu,torch,ort-cpu") == ("ort-cpu", "torch")
    with pytest.raises(OptionError, match="unknown backend 'onnx'"):
        parse_backends("torch,onnx")


def test_build_options_rejects_bad_values(tmp_path):
    ok = dict(
        preset="tiny", backends="torch", classes="5", batch="1", iters=1, warmup=0, artifacts="a", out=str(tmp_path)
    )
    assert build_options(**ok).classes == (5,)
    for change, message in [
        ({"iters": 0}, "--iters"),
        ({"warmup": -1}, "--warmup"),
        ({"preset": "vit-x"}, "unknown preset"),
        ({"checkpoint": str(tmp_path / "none.safetensors")}, "no such file"),
        ({"class_chunk": 0}, "--class-chunk 0: expected at least 1"),
    ]:
        with pytest.raises(OptionError, match=message):
            build_options(**{**ok, **change})


def test_class_chunk_option_round_trips_through_json():
    import json

    import jsonschema

    ok = dict(preset="tiny", backends="torch", classes="5", batch="1", iters=1, warmup=0, artifacts="a", out="o")
    assert build_options(**ok).to_dict()["class_chunk"] is None  # each backend's default
    saved = json.loads(json.dumps(build_options(**ok, class_chunk=3).to_dict()))
    assert saved["class_chunk"] == 3
    options = load_schema()["properties"]["options"]
    jsonschema.validate(saved, options)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**saved, "class_chunk": 0}, options)


def test_runtime_backend_without_step_graphs_is_unavailable(monkeypatch, tmp_path):
    """Segmenter refuses a class chunk on artifacts without step graphs: a reason, not a crash."""
    from escnet_bench.contenders import runtime as contender_runtime
    from escnet_bench.contenders.base import ContenderUnavailable
    from escnet_runtime import InputError

    def refuse(*args, **kwargs):
        raise InputError("these artifacts have no decoder step graphs, so classes cannot be chunked")

    monkeypatch.setattr(contender_runtime, "Segmenter", refuse)
    with pytest.raises(ContenderUnavailable, match="no decoder step graphs"):
        contender_runtime.RuntimeContender("ort-cpu", tmp_path, batch_size=1, class_chunk=2)


def test_schema_is_valid_and_rejects_bad_documents():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(load_schema())
    with pytest.raises(SchemaError, match="schema"):
        validate_result({"schema": "escnet-bench"})


def test_reference_pipeline_matches_predict_scores(tiny_model):
    from escnet_bench.inputs import make_inputs
    from escnet_bench.reference import compute_reference, segment_torch

    from escnet.inference import predict_scores, preprocess

    inputs = make_inputs(classes=4, batch=2, seed=3)
    text = tiny_model.embed_classes(inputs.names)
    labels = segment_torch(tiny_model, torch.from_numpy(inputs.images), text).numpy()
    for i, img in enumerate(inputs.images):
        x = preprocess(torch.from_numpy(img), tiny_model.config.image_size)
        expected = predict_scores(tiny_model, x, text, img.shape[:2]).argmax(0).numpy()
        assert (labels[i] == expected).mean() >= 0.999
    ref = compute_reference(tiny_model, inputs)
    assert (ref.labels == labels).all()
    assert len(np.unique(ref.labels)) > 1  # structured images give more than one region


def test_torch_backend_end_to_end_runs_its_own_graph_functions(tiny_model):
    """torch-compile's end-to-end figure must time the compiled graphs, not the eager model:
    segment_fn goes through the backend's encode/decode functions (here wrapped to count calls)."""
    from escnet_bench.contenders.torch_eager import TorchContender
    from escnet_bench.inputs import make_inputs
    from escnet_bench.reference import segment_torch

    backend = TorchContender("torch", tiny_model, class_chunk=2)
    calls = {"encode_image": 0, "decode": 0}

    def counted(name, fn):
        def call(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return call

    backend._encode_image = counted("encode_image", backend._encode_image)
    backend._decode = counted("decode", backend._decode)
    inputs = make_inputs(classes=3, batch=1, seed=1)
    backend.set_vocabulary(inputs.names)
    labels = backend.segment_fn(inputs.images)()
    assert calls == {"encode_image": 1, "decode": 1}
    with torch.no_grad():
        text = tiny_model.embed_classes(inputs.names)
        expected = segment_torch(tiny_model, torch.from_numpy(inputs.images), text, 2).numpy()
    np.testing.assert_array_equal(labels, expected)


def test_reference_flops_match_graph_costs(tiny_model):
    from escnet_bench.inputs import make_inputs
    from escnet_bench.reference import compute_reference

    from escnet.flops import graph_costs

    ref = compute_reference(tiny_model, make_inputs(classes=7, batch=2))
    expected = {c.graph: c.gflops for c in graph_costs(tiny_model, 7, batch=2)}
    assert ref.gflops == pytest.approx(expected, rel=1e-6)


def test_peak_matmul_is_the_best_library():
    """The CPU ceiling is the faster of torch's and ONNX Runtime's matmul, each recorded."""
    from escnet_bench.peak import measure_peak_matmul

    peak = measure_peak_matmul("cpu", "fp32", n=256, reps=2)
    assert peak.by_library is not None and set(peak.by_library) == {"torch", "onnxruntime", "openvino"}
    assert all(v > 0 for v in peak.by_library.values())
    assert peak.gflops_per_s == max(peak.by_library.values())
    assert "ONNX Runtime" in peak.method


def test_bf16_peak_is_measured_beside_fp32():
    """A bf16 backend's utilisation is judged against a bf16 peak (torch and OpenVINO in bf16)."""
    import openvino as ov
    from escnet_bench.peak import measure_peak_matmul

    peak = measure_peak_matmul("cpu", "bf16", n=256, reps=2)
    assert peak.dtype == "bf16" and peak.by_library is not None and "torch" in peak.by_library
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        assert "openvino" in peak.by_library
    assert peak.gflops_per_s == max(peak.by_library.values())


def test_task_parity_on_confident_pixels_and_gates():
    from escnet_bench.parity import GATES, parity_gate

    ref = np.zeros((1, 4, 5), dtype=np.int64)
    cand = ref.copy()
    cand[0, 0, :] = 1  # 5 of 20 pixels differ, all of them nearly tied in the reference
    margins = np.full(ref.shape, 0.5, dtype=np.float32)
    margins[0, 0, :] = 0.01
    p = task_parity(ref, cand, margins)
    assert p.agreement == 0.75 and p.confident_pixels == 15 and p.agreement_confident == 1.0
    assert task_parity(ref, cand).agreement_confident is None
    assert parity_gate("bf16", 0.3, p) is True  # reduced precision: judged on confident pixels
    assert parity_gate("fp32", 1e-5, p) is False  # fp32: every pixel counts
    assert parity_gate("fp32", 1e-5, task_parity(ref, ref, margins)) is True
    assert parity_gate("fp32", GATES["fp32"]["max_abs"] * 2, task_parity(ref, ref, margins)) is False
    assert parity_gate("fp32", None, task_parity(ref, ref, margins)) is False  # no graph compared
    assert parity_gate("fp32", None, task_parity(ref, ref, margins), graphs_judged=False) is True  # labels only
    assert parity_gate("fp32", None, p, graphs_judged=False) is False
    cand[0, 1, 0] = 1  # one confident pixel wrong: 14 / 15 < 0.99
    assert parity_gate("bf16", 0.3, task_parity(ref, cand, margins)) is False
