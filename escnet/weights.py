"""Pretrained CLIP (open_clip / OpenAI state dicts) and SAM (official .pth) weights."""

from __future__ import annotations

import logging
from pathlib import Path

import open_clip
from torch import nn

from .errors import CheckpointError
from .model import ESCNet
from .state_dict import load_strict, read_state_dict

log = logging.getLogger("escnet")

# Entries of OpenAI's state dicts that are not parameters (open_clip drops them too).
_OPENAI_EXTRAS = ("input_resolution", "context_length", "vocab_size")
SAM_PROMPT_PREFIX = "prompt_encoder."
SAM_TRANSFORMER_PREFIX = "mask_decoder.transformer."
SAM_TOKENS = ("iou_token", "mask_tokens")  # MaskDecoder's output tokens, under "mask_decoder."


def resolve_clip_weights(source: str | Path, model_name: str) -> Path:
    """A file path, or an open_clip pretrained tag (e.g. "openai") fetched through open_clip."""
    path = Path(source)
    if path.exists():
        return path
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if str(source) not in tags:
        raise CheckpointError(
            f"CLIP weights {source!r}: no such file, and not an open_clip pretrained tag of {model_name} "
            f"(known tags: {', '.join(tags) or 'none'})"
        )
    cfg = open_clip.get_pretrained_cfg(model_name, str(source))
    try:
        return Path(open_clip.download_pretrained(cfg))
    except Exception as e:
        raise CheckpointError(
            f"could not fetch open_clip pretrained {model_name}/{source} (offline? pass a file path): "
            f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}"
        ) from None


def load_clip_weights(model: ESCNet, source: str | Path) -> None:
    """Load CLIP towers from an open_clip/OpenAI state dict, resizing the position embedding
    from the upstream grid (e.g. 14x14) to the preset's grid (e.g. 24x24) with open_clip's own
    ``resize_pos_embed``. Strict: every key with the right shape."""
    path = resolve_clip_weights(source, model.config.clip.model_name)
    state = read_state_dict(path)
    for key in _OPENAI_EXTRAS:
        state.pop(key, None)
    if "visual.positional_embedding" in state:
        open_clip.model.resize_pos_embed(state, model.clip)
    load_strict(model.clip, state, f"CLIP weights {path}")
    log.info("escnet: loaded CLIP weights from %s", path)


def load_sam_weights(model: ESCNet, source: str | Path) -> None:
    """Load each ESC block's prompt encoder, two-way transformer and output tokens from a SAM
    checkpoint (the official ``sam_vit_b_01ec64.pth`` layout: ``prompt_encoder.*``,
    ``mask_decoder.transformer.*``, ``mask_decoder.iou_token`` / ``mask_tokens``). Other SAM
    keys (image encoder, mask heads) are not used."""
    path = Path(source)
    state = read_state_dict(path)
    prompt = {k[len(SAM_PROMPT_PREFIX) :]: v for k, v in state.items() if k.startswith(SAM_PROMPT_PREFIX)}
    transformer = {
        k[len(SAM_TRANSFORMER_PREFIX) :]: v for k, v in state.items() if k.startswith(SAM_TRANSFORMER_PREFIX)
    }
    if not prompt or not transformer:
        raise CheckpointError(
            f"SAM weights {path}: no '{SAM_PROMPT_PREFIX}*' or '{SAM_TRANSFORMER_PREFIX}*' keys; "
            "expected the official SAM checkpoint layout (e.g. sam_vit_b_01ec64.pth)"
        )
    tokens = {
        f"{name}.weight": state[f"mask_decoder.{name}.weight"]
        for name in SAM_TOKENS
        if f"mask_decoder.{name}.weight" in state
    }
    for block in model.blocks:
        load_strict(block.sam.prompt_encoder, prompt, f"SAM prompt encoder in {path}")
        load_strict(block.sam.transformer, transformer, f"SAM mask-decoder transformer in {path}")
        if block.sam.iou_token is not None and block.sam.mask_tokens is not None:
            own = nn.ModuleDict({"iou_token": block.sam.iou_token, "mask_tokens": block.sam.mask_tokens})
            load_strict(own, tokens, f"SAM mask-decoder tokens (mask_decoder.iou_token / mask_tokens) in {path}")
    log.info(
        "escnet: loaded SAM prompt encoder and two-way transformer into %d blocks from %s", len(model.blocks), path
    )
