"""The parity metrics and gates used by escnet-export onnx."""

from __future__ import annotations

import numpy as np
import pytest
from escnet_export.checks.parity import ENCODER_TOLERANCE, LOGITS_TOLERANCE, argmax_agreement, compare, cosine


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((2, 5, 16, 16)).astype(np.float32)


def test_identical_outputs_pass() -> None:
    x = logits()
    row = compare("decoder", "logits", x, x.copy(), LOGITS_TOLERANCE)
    assert row.passed and row.max_abs == 0.0 and row.argmax == 1.0 and row.cosine == pytest.approx(1.0)


def test_small_noise_passes_and_large_noise_fails() -> None:
    x = logits()
    noise = np.random.default_rng(1).standard_normal(x.shape).astype(np.float32)
    assert compare("decoder", "logits", x, x + 1e-6 * noise, LOGITS_TOLERANCE).passed
    row = compare("decoder", "logits", x, x + 1e-3 * noise, LOGITS_TOLERANCE)
    assert not row.passed and any("max-abs" in f for f in row.failures)


def test_argmax_flips_are_counted() -> None:
    x = logits()
    y = x.copy()
    y[0, :, 0, 0] = -y[0, :, 0, 0]  # one pixel of 512 changes its winner (almost surely)
    assert argmax_agreement(x, y) == pytest.approx(1 - 1 / 512)
    row = compare("decoder", "logits", x, y, LOGITS_TOLERANCE)
    assert not row.passed and any("arg-max" in f for f in row.failures)


def test_encoder_bound_scales_with_the_tensor() -> None:
    x = 50.0 * logits()
    row = compare("image_encoder", "dense", x, x + 1e-3, ENCODER_TOLERANCE)
    assert row.bound == pytest.approx(1e-4 * np.abs(x).max(), rel=1e-6) and row.passed
    assert not compare("image_encoder", "dense", x, -x, ENCODER_TOLERANCE).passed  # cosine -1


def test_non_finite_output_fails() -> None:
    x = logits()
    y = x.copy()
    y[0, 0, 0, 0] = np.nan
    assert not compare("decoder", "logits", x, y, LOGITS_TOLERANCE).passed
    assert cosine(np.zeros(3), np.zeros(3)) == 1.0


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        compare("decoder", "logits", logits(), logits()[:1], LOGITS_TOLERANCE)
