"""The paper's cost as a gate: ``escnet-info`` prints each default preset's FLOPs beside the
CAT-Seg equivalent built from the project's own modules (model.md, "The paper's cost")."""

import re

import pytest
from typer.testing import CliRunner

from escnet.cli import app

RATIO = re.compile(
    r"GFLOPs per image, (single view|sliding window): ESC-Net ([0-9.]+), CAT-Seg equivalent ([0-9.]+), ratio ([0-9.]+)"
)


def _info(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("preset", ["vit-b16", "vit-l14"])
def test_default_presets_cost_at_most_1_10_of_catseg(preset):
    out = _info("--preset", preset, "--classes", "150", "--no-forward")
    found = {m[1]: (float(m[2]), float(m[3]), float(m[4])) for m in RATIO.finditer(out)}
    assert set(found) == {"single view", "sliding window"}, out
    for ours, theirs, ratio in found.values():
        assert ratio == pytest.approx(ours / theirs, abs=2e-3)
        assert 1.0 <= ratio <= 1.10  # SAM's blocks cost something, and no more than the paper's margin


def test_heavier_layout_is_reachable_and_counted_heavier():
    from escnet.flops import catseg_costs, graph_costs, total_gflops
    from escnet.modeling.model import ESCNet
    from escnet.presets import get_config, heavier_layout

    config = heavier_layout(get_config("tiny"))
    model = ESCNet(config)
    ratio_heavy = total_gflops(graph_costs(model, 20), False) / total_gflops(
        catseg_costs(model, graph_costs(model, 20), 20), False
    )
    default = ESCNet(get_config("tiny"))
    costs = graph_costs(default, 20)
    ratio = total_gflops(costs, False) / total_gflops(catseg_costs(default, costs, 20), False)
    assert ratio_heavy > ratio


def test_tiny_info_times_both_models_side_by_side():
    out = _info("--preset", "tiny", "--classes", "5", "--rounds", "1")
    line = next(x for x in out.splitlines() if x.startswith("eager CPU forward"))
    assert re.search(r"ESC-Net [0-9.]+ s, CAT-Seg equivalent [0-9.]+ s, ratio [0-9.]+", line), line
