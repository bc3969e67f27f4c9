"""Loading CLIP and SAM weights in their upstream formats, written by the tests themselves."""

import open_clip
import pytest
import torch
from open_clip.model import CLIPTextCfg, CLIPVisionCfg
from safetensors.torch import save_file
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer

from escnet import CheckpointError, build_model
from escnet.weights import load_clip_weights


def _sam_state(dim, heads, mlp, grid=8, image=128):
    """An official-layout SAM state dict (prompt_encoder.*, mask_decoder.*, image_encoder.*)."""
    pe = PromptEncoder(
        embed_dim=dim, image_embedding_size=(grid, grid), input_image_size=(image, image), mask_in_chans=16
    )
    md = MaskDecoder(
        transformer_dim=dim, transformer=TwoWayTransformer(depth=2, embedding_dim=dim, num_heads=heads, mlp_dim=mlp)
    )
    state = {f"prompt_encoder.{k}": v for k, v in pe.state_dict().items()}
    state.update({f"mask_decoder.{k}": v for k, v in md.state_dict().items()})
    state["image_encoder.pos_embed"] = torch.zeros(1, 4, 4, 8)
    return state


def test_sam_checkpoint_loads_into_every_block(tmp_path):
    torch.manual_seed(0)
    state = _sam_state(32, 2, 64)
    path = tmp_path / "sam_tiny.pth"
    torch.save(state, path)
    model = build_model("tiny", sam_weights=path)
    for block in model.blocks:
        torch.testing.assert_close(
            block.sam.transformer.layers[1].mlp.lin1.weight, state["mask_decoder.transformer.layers.1.mlp.lin1.weight"]
        )
        torch.testing.assert_close(
            block.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix,
            state["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"],
        )
        # SAM's own output tokens, as MaskDecoder holds them
        torch.testing.assert_close(block.sam.iou_token.weight, state["mask_decoder.iou_token.weight"])
        torch.testing.assert_close(block.sam.mask_tokens.weight, state["mask_decoder.mask_tokens.weight"])
        assert block.sam.mask_tokens.weight.shape == (4, 32)


def test_sam_checkpoint_without_output_tokens_is_refused(tmp_path):
    state = _sam_state(32, 2, 64)
    del state["mask_decoder.mask_tokens.weight"]
    path = tmp_path / "sam_no_tokens.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="1 missing: mask_tokens.weight"):
        build_model("tiny", sam_weights=path)


def test_sam_checkpoint_of_wrong_width_is_refused(tmp_path):
    path = tmp_path / "sam_b.pth"
    torch.save(_sam_state(256, 8, 2048, grid=64, image=1024), path)
    with pytest.raises(CheckpointError, match="wrong shape") as err:
        build_model("tiny", sam_weights=path)
    assert "\n" not in str(err.value)


def test_sam_checkpoint_missing_keys_are_listed(tmp_path):
    state = _sam_state(32, 2, 64)
    del state["mask_decoder.transformer.layers.0.norm1.weight"]
    path = tmp_path / "sam_bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="1 missing: layers.0.norm1.weight"):
        build_model("tiny", sam_weights=path)


def test_not_a_sam_checkpoint(tmp_path):
    path = tmp_path / "other.pth"
    torch.save({"foo": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="official SAM checkpoint layout"):
        build_model("tiny", sam_weights=path)


def _tiny_open_clip():
    """open_clip CLIP with the tiny preset's towers at the upstream 4x4 grid (64 px)."""
    model = build_model("tiny")
    c = model.config.clip
    vision = CLIPVisionCfg(
        layers=c.vision_layers,
        width=c.vision_width,
        head_width=c.vision_width // c.vision_heads,
        patch_size=c.patch_size,
        image_size=c.pretrained_grid * c.patch_size,
    )
    text = CLIPTextCfg(
        context_length=77, vocab_size=49408, width=c.text_width, heads=c.text_heads, layers=c.text_layers
    )
    return model, open_clip.model.CLIP(c.embed_dim, vision_cfg=vision, text_cfg=text, quick_gelu=True)


@pytest.mark.parametrize("fmt", ["bin", "safetensors", "wrapped"])
def test_open_clip_checkpoint_loads_and_resizes_position_embedding(tmp_path, fmt):
    torch.manual_seed(0)
    model, upstream = _tiny_open_clip()
    state = upstream.state_dict()
    assert state["visual.positional_embedding"].shape == (1 + 4 * 4, 64)
    if fmt == "bin":
        path = tmp_path / "open_clip_pytorch_model.bin"
        torch.save(state, path)
    elif fmt == "safetensors":
        path = tmp_path / "open_clip_model.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:  # open_clip training checkpoint: {"state_dict": {"module.<key>": ...}}
        path = tmp_path / "epoch_32.pt"
        torch.save({"epoch": 32, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    load_clip_weights(model, path)
    assert model.clip.visual.positional_embedding.shape == (1 + 8 * 8, 64)
    torch.testing.assert_close(model.clip.visual.positional_embedding[0], state["visual.positional_embedding"][0])
    torch.testing.assert_close(model.clip.token_embedding.weight, state["token_embedding.weight"])
    torch.testing.assert_close(
        model.clip.visual.transformer.resblocks[2].attn.in_proj_weight,
        state["visual.transformer.resblocks.2.attn.in_proj_weight"],
    )


def test_open_clip_checkpoint_wrong_keys(tmp_path):
    model, upstream = _tiny_open_clip()
    state = upstream.state_dict()
    state["visual.extra_head.weight"] = torch.zeros(3)
    del state["ln_final.bias"]
    path = tmp_path / "clip.bin"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"1 missing: ln_final.bias; 1 unexpected: visual.extra_head.weight"):
        load_clip_weights(model, path)


def test_truncated_and_pickled_code_files_are_refused(tmp_path):
    model, upstream = _tiny_open_clip()
    path = tmp_path / "clip.bin"
    torch.save(upstream.state_dict(), path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_clip_weights(model, path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, bad)
    with pytest.raises(CheckpointError, match="holds code"):
        load_clip_weights(model, bad)


def test_unknown_clip_source(tmp_path):
    model = build_model("tiny")
    with pytest.raises(CheckpointError, match="no such file"):
        load_clip_weights(model, tmp_path / "nope.bin")


@pytest.mark.slow
def test_vit_b16_with_official_layouts(tmp_path):
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    sam_path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), sam_path)
    clip_path = tmp_path / "ViT-B-16.bin"
    torch.save(open_clip.create_model("ViT-B-16", pretrained=None).state_dict(), clip_path)
    model = build_model("vit-b16", clip_weights=clip_path, sam_weights=sam_path)
    assert model.clip.visual.positional_embedding.shape == (1 + 24 * 24, 768)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 384, 384), ["cat", "sky"]).shape == (1, 2, 96, 96)
