"""The torchvision shim, FLOP counts, the reference inference protocols."""

import subprocess
import sys

import torch

from escnet.flops import graph_costs, total_gflops
from escnet.inference import predict_scores, preprocess


def test_torchvision_imports_and_nms_works():
    import torchvision  # noqa: F401

    import escnet._torchvision_compat as compat

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert torch.ops.torchvision.nms(boxes, scores, 0.5).tolist() == [0, 2]
    # the shim is active only where the extension cannot load
    code = "import escnet._torchvision_compat as c; c.ensure_torchvision(); print(c.FALLBACK_ACTIVE)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(compat.FALLBACK_ACTIVE)


def test_flops_scale_with_classes(tiny_model):
    few = {c.graph: c for c in graph_costs(tiny_model, 4)}
    many = {c.graph: c for c in graph_costs(tiny_model, 8)}
    assert few["image_encoder"].gflops == many["image_encoder"].gflops > 0
    assert many["decoder"].gflops > 1.8 * few["decoder"].gflops
    assert many["text_encoder"].gflops == 2 * few["text_encoder"].gflops
    costs = list(few.values())
    assert total_gflops(costs, True) > 4 * total_gflops(costs, False)
    assert sum(c.params for c in costs) == sum(p.numel() for p in tiny_model.parameters()) - 1  # logit_scale


def test_reference_inference_protocols(tiny_model):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (100, 150, 3), dtype=torch.uint8, generator=g)
    x = preprocess(image, 128)
    assert x.shape == (1, 3, 128, 128)
    with torch.no_grad():
        text = tiny_model.embed_classes(["a", "b", "c"])
        single = predict_scores(tiny_model, preprocess(image), text, (100, 150))
        sliding = predict_scores(tiny_model, preprocess(image), text, (100, 150), sliding_window=True)
    assert single.shape == sliding.shape == (3, 100, 150)
    assert 0 <= float(single.min()) and float(single.max()) <= 1
    assert not torch.allclose(single, sliding)


def test_sliding_geometry_covers_the_canvas():
    from escnet.inference import sliding_geometry

    assert sliding_geometry(384) == (640, 256)  # CAT-Seg's protocol
    for size in (128, 336, 384, 512):
        big, stride = sliding_geometry(size)
        assert big - size == stride  # two windows per side tile the canvas exactly
