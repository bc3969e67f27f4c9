"""The baked-vocabulary graph, composed from an artifacts folder's own graphs.

``segmenter.onnx`` = ``pre`` (uint8 -> CLIP-normalised S x S view, exported from torch here) ->
the artifacts' ``image_encoder`` -> their decoder step graphs, once per chunk of classes, in the
manifest's ``decoder_steps`` order, wired by the same rules as the runtime's chunked decoder
(``contract.CARRIED`` / ``contract.PARTS``: a carried output feeds the same chunk's next step,
a part is reduced over all chunks by log-sum-exp or sum before the next step) -> ``post`` per
chunk of classes (bilinear to S, sigmoid, bilinear to (H, W), running arg-max; exported from
torch here). Each step graph's weights are stored once and shared by every chunk's copy of its
nodes, so the file grows by nodes, not weights, with T; composing takes seconds for any T.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from escnet_runtime.contract import (
    CARRIED,
    CLASS_EMBEDDINGS,
    CLASS_SCORES,
    DENSE,
    GUIDANCE_A,
    GUIDANCE_B,
    IMAGE,
    LABELS,
    LOGITS,
    PARTS,
    GraphSpec,
    Preprocess,
    TensorSpec,
)
from onnx import TensorProto, helper, numpy_helper
from torch import nn

FEATURES = (DENSE, GUIDANCE_A, GUIDANCE_B)


def _bilinear(x: torch.Tensor, size: tuple) -> torch.Tensor:
    return F.interpolate(x, size, mode="bilinear", align_corners=False)


class Pre(nn.Module):
    """image (B, H, W, 3) uint8 -> view (B, 3, S, S) float32 (/255, (x - mean) / std, bilinear to S),
    and the running arg-max's start: best (B, H, W) = -inf, labels (B, H, W) = 0 (int64)."""

    def __init__(self, pre: Preprocess) -> None:
        super().__init__()
        self.size = pre.image_size
        self.divisor = float(round(1.0 / pre.scale))
        self.register_buffer("mean", torch.tensor(pre.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(pre.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / self.divisor  # (B, 3, H, W)
        x = _bilinear((x - self.mean) / self.std, (self.size, self.size))
        best = torch.full_like(image[..., 0], 0, dtype=torch.float32) - torch.inf  # (B, H, W)
        return x, best, torch.zeros_like(image[..., 0], dtype=torch.int64)


class Post(nn.Module):
    """logits (B, Tc, 4g, 4g) of classes [start, start + Tc), the image (for H, W), the running
    best (B, H, W) and labels -> updated best and labels (an earlier class keeps ties)."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(
        self, logits: torch.Tensor, image: torch.Tensor, best: torch.Tensor, labels: torch.Tensor, start: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        probs = torch.sigmoid(_bilinear(logits, (self.size, self.size)))  # (B, Tc, S, S)
        top, idx = _bilinear(probs, (image.shape[1], image.shape[2])).max(dim=1)  # (B, H, W)
        take = top > best
        return torch.where(take, top, best), torch.where(take, idx + start, labels)


def export_small(module: nn.Module, args: tuple[torch.Tensor, ...], dynamic: tuple, opset: int) -> onnx.ModelProto:
    """A small torch module -> ONNX (dynamo exporter, the artifacts' opset)."""
    import contextlib
    import io
    import warnings

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module.eval(), args, None, dynamo=True, opset_version=opset,
                                    dynamic_shapes=dynamic, optimize=True)  # fmt: skip
    return program.model_proto


class Composer:
    """Builds one graph from copies of others: inputs and outputs wired by name, every other
    tensor renamed under a prefix, each source graph's initializers added once (shared)."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, onnx.TensorProto] = {}
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.count += 1
        return f"{hint}__{self.count}"

    def constant(self, name: str, value: np.ndarray) -> str:
        self.initializers[name] = numpy_helper.from_array(value, name)
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs: object) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op), **attrs))

    def add(self, model: onnx.ModelProto, key: str, feeds: Mapping[str, str]) -> dict[str, str]:
        """Copy ``model``'s nodes, its graph inputs taken from ``feeds`` (name -> tensor here);
        its initializers under ``key/`` (once). Returns its outputs: name -> tensor here."""
        g = model.graph
        prefix = self.fresh(key)
        missing = [i.name for i in g.input if not feeds.get(i.name)]
        if missing:
            raise ValueError(f"{key}: inputs {missing} are not provided by an earlier graph")
        rename = {i.name: feeds[i.name] for i in g.input}
        for init in g.initializer:
            shared = f"{key}/{init.name}"
            rename[init.name] = shared
            if shared not in self.initializers:
                copy = onnx.TensorProto()
                copy.CopyFrom(init)
                copy.name = shared
                self.initializers[shared] = copy
        for n in g.node:
            if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute):
                raise ValueError(f"{key}: node {n.op_type} has a subgraph; composing it is not supported")
            copy = onnx.NodeProto()
            copy.CopyFrom(n)
            copy.name = f"{prefix}/{n.name}"
            for i, name in enumerate(copy.input):
                if name:
                    copy.input[i] = rename.setdefault(name, f"{prefix}/{name}")
            for i, name in enumerate(copy.output):
                if name:
                    copy.output[i] = rename.setdefault(name, f"{prefix}/{name}")
            self.nodes.append(copy)
        return {o.name: rename[o.name] for o in g.output}


ONNX_TYPES = {"uint8": TensorProto.UINT8, "int32": TensorProto.INT32, "float32": TensorProto.FLOAT}


def _value_info(t: TensorSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(t.name, ONNX_TYPES[t.dtype], list(t.shape))


def combine(c: Composer, parts: list[str], how: str, name: str) -> str:
    """Chunk shares -> the value over all classes: log-sum-exp or sum over a new leading axis."""
    if len(parts) == 1:
        return parts[0]
    if how == "sum":
        c.node("Sum", parts, [name])
        return name
    axis0 = c.constant(c.fresh("axis0"), np.array([0], dtype=np.int64))
    stacked = []
    for p in parts:
        stacked.append(c.fresh(f"{p}/unsqueezed"))
        c.node("Unsqueeze", [p, axis0], [stacked[-1]])
    c.node("Concat", stacked, [name + "/stacked"], axis=0)
    c.node("ReduceLogSumExp", [name + "/stacked", axis0], [name], keepdims=0)
    return name


def compose(
    graphs: Mapping[str, onnx.ModelProto],
    steps: tuple[str, ...],
    encoder: str,
    embeddings: np.ndarray,
    chunk: int,
    pre: onnx.ModelProto,
    post: onnx.ModelProto,
    spec: GraphSpec,
) -> onnx.ModelProto:
    """The baked graph: ``graphs`` by name (the image encoder and the decoder's steps),
    embeddings (T, P, D) float32 as constants in chunks of ``chunk`` classes."""
    c = Composer()
    pre_out = list(c.add(pre, "pre", {pre.graph.input[0].name: IMAGE}).values())  # view, best, labels
    view, best, labels = pre_out
    feats = c.add(graphs[encoder], encoder, {graphs[encoder].graph.input[0].name: view})
    shared = {name: feats[name] for name in FEATURES}
    t = len(embeddings)
    spans = [(s, min(s + chunk, t)) for s in range(0, t, chunk)]
    chunks = [{CLASS_EMBEDDINGS: c.constant(f"class_embeddings_{s}", embeddings[s:e])} for s, e in spans]
    for step in steps:
        model = graphs[step]
        parts: dict[str, list[str]] = {}
        for values in chunks:
            feeds = {i.name: values.get(i.name, shared.get(i.name, "")) for i in model.graph.input}
            for name, tensor in c.add(model, step, feeds).items():
                if name in PARTS:
                    parts.setdefault(name, []).append(tensor)
                else:
                    values[CARRIED.get(name, name)] = tensor
        for name, shares in parts.items():
            target, how = PARTS[name]
            shared[target] = combine(c, shares, how, c.fresh(target))
    scores = []
    post_in = [i.name for i in post.graph.input]  # logits, image, best, labels, start
    for (s, _), values in zip(spans, chunks, strict=True):
        start = c.constant(f"class_start_{s}", np.array(s, dtype=np.int64))
        feeds = dict(zip(post_in, [values[LOGITS], IMAGE, best, labels, start], strict=True))
        best, labels = c.add(post, "post", feeds).values()
        scores.append(c.fresh("scores"))
        c.node("Sigmoid", [values[LOGITS]], [scores[-1]])
    c.node("Cast", [labels], [LABELS], to=TensorProto.INT32)
    if len(scores) > 1:
        c.node("Concat", scores, [CLASS_SCORES], axis=1)
    else:
        c.node("Identity", scores, [CLASS_SCORES])
    graph = helper.make_graph(
        c.nodes,
        "escnet_baked",
        [_value_info(t) for t in spec.inputs],
        [_value_info(t) for t in spec.outputs],
        list(c.initializers.values()),
    )
    opset = max(o.version for o in graphs[encoder].opset_import if o.domain in ("", "ai.onnx"))
    ir = graphs[encoder].ir_version
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=ir)
