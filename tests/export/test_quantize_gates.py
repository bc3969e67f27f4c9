"""The accuracy gates on hand-made label maps: each rule can fail, and random-like ties are not judged."""

from __future__ import annotations

import numpy as np
import pytest
from escnet_export.quantize.gates import GateRule, gate_table, judge, overall, reference_of, top2_margin

from escnet.data.segmentation import Sample


def _scene(seed: int) -> tuple[Sample, np.ndarray]:
    """A 32x32 scene of 3 classes (labels = ground truth) and scores (3, 32, 32) peaked on them."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 3, (32, 32))
    scores = np.full((3, 32, 32), 0.1, dtype=np.float32)
    np.put_along_axis(scores, label[None], 0.9, axis=0)
    return Sample(np.zeros((32, 32, 3), np.uint8), label, f"s{seed}"), scores


SCENES = [_scene(i) for i in range(3)]
SAMPLES = [s for s, _ in SCENES]


def _reference(scores_of):
    it = iter(scores_of)
    return reference_of(lambda _im: next(it), SAMPLES, 3, GateRule())


def test_top2_margin():
    scores = np.array([[[0.9]], [[0.7]], [[0.1]]], dtype=np.float32)
    assert top2_margin(scores)[0, 0] == pytest.approx(0.2)
    assert top2_margin(scores[:1])[0, 0] == 1.0  # one class: nothing to confuse it with


def test_identical_labels_pass():
    ref = _reference([(s.label, sc) for s, sc in SCENES])
    assert ref.miou == pytest.approx(100.0) and ref.confident_pixels == ref.pixels
    same = iter(SAMPLES)
    row = judge("x", "int8", lambda _im: next(same).label, SAMPLES, ref, GateRule())
    assert row.verdict == "pass" and row.agreement_confident == 1.0 and row.miou_delta == 0.0


def test_flipped_confident_pixels_fail_the_label_gate():
    ref = _reference([(s.label, sc) for s, sc in SCENES])
    flipped = iter([(s.label + (np.arange(s.label.size).reshape(32, 32) % 100 == 0)) % 3 for s in SAMPLES])
    row = judge("x", "int8", lambda _im: next(flipped), SAMPLES, ref, GateRule(miou_tolerance=100))
    assert row.verdict == "fail" and "agreement" in row.why and row.agreement_confident < 0.995


def test_miou_gate_fails_either_way():
    """A candidate better than fp32 by more than the tolerance is a different model too."""
    wrong = [((s.label + 1) % 3, sc) for s, sc in SCENES]  # the fp32 reference is wrong everywhere
    ref = _reference(wrong)
    right = iter(SAMPLES)
    row = judge("x", "int8", lambda _im: next(right).label, SAMPLES, ref, GateRule(min_agreement=0.0))
    assert row.miou_delta > 0.5 and row.verdict == "fail" and "mIoU" in row.why


def test_ties_are_not_judged():
    tied = [(s.label, np.full((3, 32, 32), 0.5, np.float32)) for s in SAMPLES]  # random weights: no margin
    ref = _reference(tied)
    other = iter([(s.label + 1) % 3 for s in SAMPLES])
    row = judge("x", "int8", lambda _im: next(other), SAMPLES, ref, GateRule())
    assert row.verdict == "not judged" and ref.confident_pixels == 0
    assert overall([row]) == "not judged" and overall([]) == "not judged"
    assert "not judged" in gate_table(ref, [row], GateRule())


def test_rule_values_are_checked():
    with pytest.raises(ValueError, match="min agreement"):
        GateRule(min_agreement=1.5).check()
    with pytest.raises(ValueError, match="mIoU tolerance"):
        GateRule(miou_tolerance=-1).check()
