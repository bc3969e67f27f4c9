import pytest
import torch

from escnet import ESCNetInputError, build_model


@pytest.mark.parametrize("t", [1, 3, 300])
def test_output_shapes(tiny_model, tiny_images, t):
    names = [f"thing {i}" for i in range(t)]
    with torch.no_grad():
        logits = tiny_model(tiny_images, names)
    assert logits.shape == (2, t, 32, 32)
    assert torch.isfinite(logits).all()


def test_graph_methods_compose_to_forward(tiny_model, tiny_images):
    names = ["cat", "dog", "sky"]
    with torch.no_grad():
        text = tiny_model.embed_classes(names)
        assert text.shape == (3, 1, 32)
        torch.testing.assert_close(text.norm(dim=-1), torch.ones(3, 1))
        feats = tiny_model.encode_image(tiny_images)
        assert feats.dense.shape == (2, 32, 8, 8)
        assert feats.guidance_a.shape == (2, 32, 16, 16)
        assert feats.guidance_b.shape == (2, 16, 32, 32)
        composed = tiny_model.decode(*feats, text)
        torch.testing.assert_close(composed, tiny_model(tiny_images, names))


def test_other_image_sizes_are_resized(tiny_model):
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        assert tiny_model(x, ["a", "b"]).shape == (1, 2, 24, 40)


def test_chunked_classes_match_unchunked(tiny_model, tiny_images):
    names = [f"class {i}" for i in range(37)]
    with torch.no_grad():
        text = tiny_model.embed_classes(names)
        feats = tiny_model.encode_image(tiny_images)
        whole = tiny_model.decode(*feats, text, class_chunk=None)
        for chunk in (1, 5, 16):
            part = tiny_model.decode(*feats, text, class_chunk=chunk)
            assert (part - whole).abs().max().item() <= 1e-5


def test_deterministic(tiny_model, tiny_images):
    with torch.no_grad():
        a = tiny_model(tiny_images, ["road", "car", "tree"])
        b = tiny_model(tiny_images, ["road", "car", "tree"])
    assert torch.equal(a, b)


def test_gradients_reach_every_trainable_part(tiny_images):
    torch.manual_seed(0)
    model = build_model("tiny").train()
    logits = model(tiny_images, ["a", "b", "c"])
    target = torch.zeros_like(logits)
    target[:, 0] = 1.0
    torch.nn.functional.binary_cross_entropy_with_logits(logits, target).backward()
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    assert len(trainable) > 200
    missing = [n for n, p in trainable if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_class_order_is_equivariant(tiny_model, tiny_images):
    """No class positional embedding: permuting the vocabulary permutes the logits."""
    names = ["cat", "dog", "sky", "grass"]
    perm = [2, 0, 3, 1]
    with torch.no_grad():
        a = tiny_model(tiny_images, names)
        b = tiny_model(tiny_images, [names[i] for i in perm])
    torch.testing.assert_close(a[:, perm], b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    "images, match",
    [
        (torch.randn(3, 128, 128), "4 dimensions"),
        (torch.randn(1, 1, 128, 128), "3 channels"),
        (torch.zeros(1, 3, 128, 128, dtype=torch.uint8), "floating-point"),
        (torch.randn(1, 3, 130, 128), "divisible by 4"),
        (torch.randn(1, 3, 8, 8), ">= 16"),
        (torch.full((1, 3, 128, 128), float("nan")), "NaN or Inf"),
        ("not a tensor", "torch.Tensor"),
    ],
)
def test_bad_images(tiny_model, images, match):
    with pytest.raises(ESCNetInputError, match=match):
        tiny_model(images, ["a"])


@pytest.mark.parametrize(
    "names, match",
    [([], "empty"), (["cat", "Cat"], "duplicate"), (["cat", " "], "non-blank"), ("cat", "list of strings")],
)
def test_bad_class_lists(tiny_model, tiny_images, names, match):
    with pytest.raises(ESCNetInputError, match=match):
        tiny_model(tiny_images, names)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown preset 'vit-h'"):
        build_model("vit-h")


@pytest.mark.slow
def test_vit_b16_forward_five_classes():
    torch.manual_seed(0)
    model = build_model("vit-b16")
    assert model.config.grid == 24
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 384, 384), ["cat", "dog", "car", "tree", "sky"])
    assert logits.shape == (1, 5, 96, 96)
    assert torch.isfinite(logits).all()


def test_imagenet_templates_option(tiny_images):
    from escnet.modeling.model import ESCNet
    from escnet.presets import get_config, with_templates

    config = with_templates(get_config("tiny"), "imagenet")
    assert config.num_templates == 80 and all("{}" in t for t in config.templates)
    torch.manual_seed(0)
    model = ESCNet(config).eval()
    with torch.no_grad():
        assert model.embed_classes(["cat", "dog"]).shape == (2, 80, 32)
        assert model(tiny_images[:1], ["cat", "dog"]).shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="exactly one"):
        with_templates(get_config("tiny"), ("no placeholder",))


def test_prompts_stay_float32_under_autocast(tiny_model, tiny_images):
    """bf16 autocast (the CPU's; CUDA's fp16/bf16 take the same path) must not move the pseudo
    prompts: the class scores and the prompt generator run in float32 whatever the context."""
    names = [f"thing {i}" for i in range(6)]
    with torch.no_grad():
        text = tiny_model.embed_classes(names)
        dense = tiny_model.encode_image(tiny_images).dense
        opened = tiny_model.decode_open(dense, text)
        log_prob = (opened.scores - opened.score_lse_part.unsqueeze(1)).flatten(0, 1)
        points, masks = tiny_model.prompts(log_prob)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            corr, scores = tiny_model.class_scores(dense, text)
            opened_ac = tiny_model.decode_open(dense, text)
            log_prob_ac = (opened_ac.scores - opened_ac.score_lse_part.unsqueeze(1)).flatten(0, 1)
            points_ac, masks_ac = tiny_model.prompts(log_prob_ac)
    assert corr.dtype == scores.dtype == opened_ac.score_lse_part.dtype == torch.float32
    torch.testing.assert_close(opened_ac.score_lse_part, opened.score_lse_part)
    torch.testing.assert_close(points_ac, points, rtol=0, atol=0)
    torch.testing.assert_close(masks_ac.float(), masks, rtol=0, atol=1e-6)


@pytest.mark.parametrize(("classes", "chunks"), [(1, (1,)), (3, (1, 2)), (300, (64, 7))])
def test_chunked_decode_equals_all_classes_at_once(tiny_model, classes, chunks):
    """Every block's prompt softmax and class attention sum over ALL classes: chunks combine their
    shares (log-sum-exp, sums), so any chunk size gives the logits of all classes at once."""
    g = torch.Generator().manual_seed(classes)
    text = torch.nn.functional.normalize(torch.randn(classes, 1, 32, generator=g), dim=-1)
    with torch.no_grad():
        feats = tiny_model.encode_image(torch.randn(2, 3, 128, 128, generator=g))
        whole = tiny_model.decode(*feats, text, class_chunk=None)
        for chunk in chunks:
            # float summation order alone leaves ~1e-5 (300 random classes, logits up to ~1.6)
            torch.testing.assert_close(tiny_model.decode(*feats, text, class_chunk=chunk), whole, rtol=1e-5, atol=1e-5)
