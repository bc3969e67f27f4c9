"""The three exported graphs as plain ``nn.Module`` wrappers around one trained ESCNet.

Each wrapper's positional inputs and outputs follow the contract's order
(``escnet_runtime.contract.graph_specs``); names are attached by the exporter from the same specs.
The decoder runs all classes at once (``class_chunk=None``): no Python loop over classes, so
the class axis T stays symbolic in the exported graph. The decoder's steps (``decoder_open``,
``decoder_block_k``, ``decoder_attend_k``, ``decoder_close``) wrap ``ESCNet``'s own step methods,
the ones its chunked ``decode`` runs, so a runtime that chains them over chunks of classes
computes what PyTorch computes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from escnet_runtime.contract import (
    DECODER,
    DECODER_ATTEND,
    DECODER_BLOCK,
    DECODER_CLOSE,
    DECODER_OPEN,
    IMAGE_ENCODER,
    TEXT_ENCODER,
    ModelDims,
)
from torch import nn

from escnet import ESCNet


class ImageEncoderGraph(nn.Module):
    """image (B, 3, S, S) -> dense (B, D, g, g), guidance_a (B, Ga, 2g, 2g), guidance_b (B, Gb, 4g, 4g)."""

    def __init__(self, model: ESCNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feats = self.model.encode_image(image)
        return feats.dense, feats.guidance_a, feats.guidance_b


class TextEncoderGraph(nn.Module):
    """token ids (N, 77) int64 -> L2-normalised embeddings (N, D)."""

    def __init__(self, model: ESCNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, token_ids: torch.Tensor) -> torch.Tensor:
        return self.model.encode_text(token_ids)


class DecoderGraph(nn.Module):
    """Image features + class embeddings (T, P, D) -> logits (B, T, 4g, 4g), pseudo prompts included."""

    def __init__(self, model: ESCNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, dense: torch.Tensor, guidance_a: torch.Tensor, guidance_b: torch.Tensor, class_embeddings: torch.Tensor
    ) -> torch.Tensor:
        return self.model.decode(dense, guidance_a, guidance_b, class_embeddings, class_chunk=None)


class OpenStep(nn.Module):
    """Cost embedding and block 0's prompt scores for a chunk: ``ESCNet.decode_open``."""

    def __init__(self, model: ESCNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, dense: torch.Tensor, class_embeddings: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.decode_open(dense, class_embeddings))


class _BlockIndexed(nn.Module):
    """A step that runs one ESC block's part of the decoder: the model and the block's index."""

    def __init__(self, model: ESCNet, index: int) -> None:
        super().__init__()
        self.model = model
        self.index = index


class BlockStep(_BlockIndexed):
    """Block ``index``'s prompts, per-class stages and class-attention shares: ``ESCNet.decode_block``."""

    def forward(
        self,
        state: torch.Tensor,
        dense: torch.Tensor,
        class_embeddings: torch.Tensor,
        scores: torch.Tensor,
        score_lse: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.decode_block(self.index, state, dense, class_embeddings, scores, score_lse))


class AttendStep(_BlockIndexed):
    """Block ``index``'s class attention and block ``index + 1``'s prompt scores: ``ESCNet.decode_attend``."""

    def forward(
        self, state: torch.Tensor, class_embeddings: torch.Tensor, kv: torch.Tensor, k_sum: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return tuple(self.model.decode_attend(self.index, state, class_embeddings, kv, k_sum))


class CloseStep(nn.Module):
    """The last block's class attention and the upsampling decoder -> logits (B, Tc, 4g, 4g)."""

    def __init__(self, model: ESCNet) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        state: torch.Tensor,
        class_embeddings: torch.Tensor,
        kv: torch.Tensor,
        k_sum: torch.Tensor,
        guidance_a: torch.Tensor,
        guidance_b: torch.Tensor,
    ) -> torch.Tensor:
        return self.model.decode_close(state, class_embeddings, kv, k_sum, guidance_a, guidance_b)


def graph_modules(model: ESCNet) -> dict[str, nn.Module]:
    """One eval-mode wrapper per graph, keyed by the contract's graph names."""
    modules: dict[str, nn.Module] = {
        IMAGE_ENCODER: ImageEncoderGraph(model),
        TEXT_ENCODER: TextEncoderGraph(model),
        DECODER: DecoderGraph(model),
        DECODER_OPEN: OpenStep(model),
        **{DECODER_BLOCK.format(i): BlockStep(model, i) for i in range(model.config.num_blocks)},
        **{DECODER_ATTEND.format(i): AttendStep(model, i) for i in range(model.config.num_blocks - 1)},
        DECODER_CLOSE: CloseStep(model),
    }
    return {name: m.eval() for name, m in modules.items()}


def model_dims(model: ESCNet) -> ModelDims:
    """The contract's sizes, read from the model's config."""
    c = model.config
    return ModelDims(
        image_size=c.image_size,
        grid=c.grid,
        embed_dim=c.clip.embed_dim,
        guidance_a=c.guidance_dims[0],
        guidance_b=c.guidance_dims[1],
        context_length=c.clip.context_length,
        num_templates=c.num_templates,
        num_blocks=c.num_blocks,
        state_dim=c.corr_dim,
        class_heads=c.fusion.class_heads,
        prompt_points=c.prompt.num_regions,
    )


SAMPLE_CLASS_NAMES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "window", "grass", "cabinet", "person",
)  # fmt: skip


@torch.no_grad()
def sample_inputs(model: ESCNet, batch: int, classes: int, seed: int = 0) -> dict[str, tuple[torch.Tensor, ...]]:
    """Positional inputs per graph: random CLIP-normalised images, real tokenised class names
    (cycled if ``classes`` exceeds the list), and the decoder fed by the PyTorch encoders."""
    g = torch.Generator().manual_seed(seed)
    size = model.config.image_size
    image = torch.randn(batch, 3, size, size, generator=g)
    names = [f"{SAMPLE_CLASS_NAMES[i % len(SAMPLE_CLASS_NAMES)]}" for i in range(classes)]
    names = [n if i < len(SAMPLE_CLASS_NAMES) else f"{n} {i}" for i, n in enumerate(names)]
    tokens = model.tokenize(names)  # (T*P, L)
    feats = model.encode_image(image)
    text = model.encode_text(tokens).reshape(classes, model.config.num_templates, -1)
    # A little noise makes the class embeddings less alike (random-init CLIP maps similar texts
    # to near-identical vectors, which would make every class tie).
    text = F.normalize(text + 0.5 * torch.randn(text.shape, generator=g), dim=-1)
    return {
        IMAGE_ENCODER: (image,),
        TEXT_ENCODER: (tokens,),
        DECODER: (feats.dense, feats.guidance_a, feats.guidance_b, text),
        **decoder_step_inputs(model, feats.dense, feats.guidance_a, feats.guidance_b, text),
    }


@torch.no_grad()
def decoder_step_inputs(
    model: ESCNet, dense: torch.Tensor, guidance_a: torch.Tensor, guidance_b: torch.Tensor, text: torch.Tensor
) -> dict[str, tuple[torch.Tensor, ...]]:
    """Positional inputs of each decoder step, from PyTorch running the steps over all classes
    as one chunk (so each step sees what it sees in a real run)."""
    inputs: dict[str, tuple[torch.Tensor, ...]] = {DECODER_OPEN: (dense, text)}
    block_in = model.decode_open(dense, text)  # one chunk: its log-sum-exp part is over all classes
    for k in range(model.config.num_blocks):
        inputs[DECODER_BLOCK.format(k)] = (block_in.state, dense, text, block_in.scores, block_in.score_lse_part)
        out = model.decode_block(k, block_in.state, dense, text, block_in.scores, block_in.score_lse_part)
        if k + 1 < model.config.num_blocks:
            inputs[DECODER_ATTEND.format(k)] = (out.state, text, out.kv_part, out.k_sum_part)
            block_in = model.decode_attend(k, out.state, text, out.kv_part, out.k_sum_part)
    inputs[DECODER_CLOSE] = (out.state, text, out.kv_part, out.k_sum_part, guidance_a, guidance_b)
    return inputs
