"""The deployment contract: graph files, tensor names, dtypes and shapes, written once.

The exporter builds its ONNX graphs from these specs and writes them into the manifest; the
runtime reads them back from the manifest. No tensor name is typed anywhere else.
Shapes hold ints for fixed sizes and names for dynamic axes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal, get_args

FORMAT = "escnet-artifacts"
# Versioning: ``format_version`` (major) changes when an older runtime would misread the
# manifest; a runtime refuses a newer major. ``format_minor`` changes when fields are added that
# an older runtime may ignore; a runtime reads any minor of its major, and fields a minor made
# required are only defaulted for manifests of an older minor.
#   1.0: graphs, preprocessing, tokenizer, templates, decoder steps, files
#   1.1: ``sliding_window`` (canvas, window, stride) and ``text_batch``
#   1.2: ``precision``, the number format of the graphs' weights (WEIGHTS_PRECISIONS)
FORMAT_VERSION = 1
FORMAT_MINOR = 2

# What the folder's graphs hold: fp32 as exported, or int8 QDQ as ``escnet-export quantize`` writes
# (engines run the QuantizeLinear / DequantizeLinear pairs in int8). A 1.0 / 1.1 manifest is fp32.
WeightsPrecision = Literal["fp32", "int8"]
WEIGHTS_PRECISIONS: tuple[str, ...] = get_args(WeightsPrecision)

BATCH, TEXTS, CLASSES = "batch", "texts", "classes"  # dynamic axis names

IMAGE_ENCODER, TEXT_ENCODER, DECODER = "image_encoder", "text_encoder", "decoder"
GRAPH_NAMES: tuple[str, ...] = (IMAGE_ENCODER, TEXT_ENCODER, DECODER)
# The decoder again, as steps over a chunk of classes each (bounded memory for any T):
# open -> block_0 -> attend_0 -> block_1 -> ... -> block_{N-1} -> close; see ``decoder_step_names``.
DECODER_OPEN, DECODER_CLOSE = "decoder_open", "decoder_close"
DECODER_BLOCK, DECODER_ATTEND = "decoder_block_{}", "decoder_attend_{}"
# Classes per decoder call that escnet-export recommends in the manifest (runtime fallback too).
# vit-b16 on ONNX Runtime CPU (2 cores), 150 classes: chunks of 64 / 32 / 16 took 9.2 / 9.4 / 9.5 s
# per image and 2.2 / 1.5 / 1.2 GB peak RSS; all classes at once (one call) 11.2 s and 5.0 GB.
DEFAULT_CLASS_CHUNK = 32

# Tensor names.
IMAGE = "image"
DENSE, GUIDANCE_A, GUIDANCE_B = "dense_features", "guidance_a", "guidance_b"
TOKEN_IDS, TEXT_EMBEDDINGS = "token_ids", "text_embeddings"
CLASS_EMBEDDINGS, LOGITS = "class_embeddings", "logits"
# Between the decoder's steps: per-class state and prompt scores (X_OUT of one step is X of the
# next, per chunk), and the per-pixel sums over classes (X_PART: this chunk's share, X: over all).
STATE, STATE_OUT = "class_state", "class_state_out"
SCORES, SCORES_OUT = "prompt_scores", "prompt_scores_out"
SCORE_LSE, SCORE_LSE_PART = "score_logsumexp", "score_logsumexp_part"
KV, K_SUM = "attention_kv", "attention_k_sum"
KV_PART, K_SUM_PART = "attention_kv_part", "attention_k_sum_part"
# How a chunked caller combines step outputs over chunks (see ``runtime/chunked_decoder.py``):
# a carried output becomes the same chunk's input of the next step that reads it; a part is
# combined over all chunks into the shared input: "logsumexp" (log of the sum of exps) or "sum".
CARRIED: dict[str, str] = {STATE_OUT: STATE, SCORES_OUT: SCORES}
PARTS: dict[str, tuple[str, str]] = {
    SCORE_LSE_PART: (SCORE_LSE, "logsumexp"),
    KV_PART: (KV, "sum"),
    K_SUM_PART: (K_SUM, "sum"),
}

MANIFEST_FILE = "manifest.json"
VOCAB_FILE = "bpe_simple_vocab_16e6.txt.gz"

Dim = int | str
DType = Literal["float32", "float16", "int64", "uint8", "int32"]
DTYPES: tuple[str, ...] = get_args(DType)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: DType
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TensorSpec:
        return TensorSpec(d["name"], d["dtype"], tuple(d["shape"]))

    def dynamic_axes(self) -> dict[int, str]:
        return {i: s for i, s in enumerate(self.shape) if isinstance(s, str)}


@dataclass(frozen=True)
class GraphSpec:
    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def file(self) -> str:
        return f"{self.name}.onnx"

    @property
    def external_data_file(self) -> str:
        """Where the exporter keeps a large graph's weights (listed in ``files`` when written)."""
        return f"{self.file}.data"

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
        }

    @staticmethod
    def from_dict(name: str, d: dict[str, Any]) -> GraphSpec:
        return GraphSpec(
            name,
            tuple(TensorSpec.from_dict(t) for t in d["inputs"]),
            tuple(TensorSpec.from_dict(t) for t in d["outputs"]),
        )


@dataclass(frozen=True)
class ModelDims:
    """The sizes a deployment needs, taken from the model config by the exporter."""

    image_size: int  # S
    grid: int  # g = S / patch
    embed_dim: int  # D
    guidance_a: int  # channels at 2g
    guidance_b: int  # channels at 4g
    context_length: int  # token ids per text
    num_templates: int  # P
    num_blocks: int  # ESC blocks N: the decoder's steps
    state_dim: int  # C, per-class cost embedding channels
    class_heads: int  # H, class-attention heads (head width C / H)
    prompt_points: int  # K, point prompts per class

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def graph_specs(d: ModelDims) -> dict[str, GraphSpec]:
    """Every graph: image encoder, text encoder, prompt + decoder, then the decoder's steps."""
    g = d.grid
    dense = TensorSpec(DENSE, "float32", (BATCH, d.embed_dim, g, g))
    guid_a = TensorSpec(GUIDANCE_A, "float32", (BATCH, d.guidance_a, 2 * g, 2 * g))
    guid_b = TensorSpec(GUIDANCE_B, "float32", (BATCH, d.guidance_b, 4 * g, 4 * g))
    classes = TensorSpec(CLASS_EMBEDDINGS, "float32", (CLASSES, d.num_templates, d.embed_dim))
    logits = TensorSpec(LOGITS, "float32", (BATCH, CLASSES, 4 * g, 4 * g))
    specs = {
        IMAGE_ENCODER: GraphSpec(
            IMAGE_ENCODER,
            (TensorSpec(IMAGE, "float32", (BATCH, 3, d.image_size, d.image_size)),),
            (dense, guid_a, guid_b),
        ),
        TEXT_ENCODER: GraphSpec(
            TEXT_ENCODER,
            (TensorSpec(TOKEN_IDS, "int64", (TEXTS, d.context_length)),),
            (TensorSpec(TEXT_EMBEDDINGS, "float32", (TEXTS, d.embed_dim)),),
        ),
        DECODER: GraphSpec(DECODER, (dense, guid_a, guid_b, classes), (logits,)),
    }
    return {**specs, **decoder_step_specs(d, dense, guid_a, guid_b, classes, logits)}


def decoder_step_names(num_blocks: int) -> tuple[str, ...]:
    """The decoder's steps in the order they run: open, block_0, attend_0, ..., block_{N-1}, close."""
    names = [DECODER_OPEN]
    for k in range(num_blocks):
        names.append(DECODER_BLOCK.format(k))
        if k + 1 < num_blocks:
            names.append(DECODER_ATTEND.format(k))
    return (*names, DECODER_CLOSE)


def decoder_step_specs(
    d: ModelDims, dense: TensorSpec, guid_a: TensorSpec, guid_b: TensorSpec, classes: TensorSpec, logits: TensorSpec
) -> dict[str, GraphSpec]:
    """The decoder as steps over a chunk of classes ("classes" is the chunk's size here).

    Every ESC block k softmaxes its prompt scores over ALL classes and its class attention
    sums over ALL classes, so a block is two steps around those sums:
    - ``decoder_open``: cost embedding and block 0's prompt scores (+ their log-sum-exp part);
    - ``decoder_block_k``: given the scores' log-sum-exp over all classes: block k's pseudo
      prompts, SAM block and Swin fusion (new state) and its class-attention sum parts;
    - ``decoder_attend_k``: given block k's sums over all classes: its class attention, then
      block k+1's prompt scores from the refined state (+ their log-sum-exp part);
    - ``decoder_close``: the last block's class attention and the upsampling decoder.
    ``CARRIED`` and ``PARTS`` say how outputs become the next step's inputs.
    """
    g, c = d.grid, d.state_dim
    head = c // d.class_heads
    state = TensorSpec(STATE, "float32", (BATCH, CLASSES, c, g, g))
    state_out = TensorSpec(STATE_OUT, "float32", (BATCH, CLASSES, c, g, g))
    scores = TensorSpec(SCORES, "float32", (BATCH, CLASSES, g, g))
    scores_out = TensorSpec(SCORES_OUT, "float32", (BATCH, CLASSES, g, g))
    lse, lse_part = (
        TensorSpec(SCORE_LSE, "float32", (BATCH, g, g)),
        TensorSpec(SCORE_LSE_PART, "float32", (BATCH, g, g)),
    )
    kv_shape, k_shape = (BATCH, g * g, d.class_heads, head, head), (BATCH, g * g, d.class_heads, head)
    kv, k_sum = TensorSpec(KV, "float32", kv_shape), TensorSpec(K_SUM, "float32", k_shape)
    kv_part, k_part = TensorSpec(KV_PART, "float32", kv_shape), TensorSpec(K_SUM_PART, "float32", k_shape)
    opened = (state_out, scores_out, lse_part)
    specs = [GraphSpec(DECODER_OPEN, (dense, classes), opened)]
    for k in range(d.num_blocks):
        specs.append(
            GraphSpec(DECODER_BLOCK.format(k), (state, dense, classes, scores, lse), (state_out, kv_part, k_part))
        )
        if k + 1 < d.num_blocks:
            specs.append(GraphSpec(DECODER_ATTEND.format(k), (state, classes, kv, k_sum), opened))
    specs.append(GraphSpec(DECODER_CLOSE, (state, classes, kv, k_sum, guid_a, guid_b), (logits,)))
    return {s.name: s for s in specs}


@dataclass(frozen=True)
class Preprocess:
    """How an RGB uint8 image becomes the image encoder's input."""

    image_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resize: str = "bilinear, align_corners=False, no antialias"
    scale: float = 1.0 / 255.0  # uint8 -> [0, 1] before mean/std
    layout: str = "NCHW RGB"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Preprocess:
        return Preprocess(
            image_size=int(d["image_size"]),
            mean=tuple(d["mean"]),
            std=tuple(d["std"]),
            resize=d["resize"],
            scale=float(d["scale"]),
            layout=d["layout"],
        )


@dataclass(frozen=True)
class TokenizerSpec:
    """OpenAI CLIP's byte-level BPE, as open_clip's SimpleTokenizer implements it."""

    vocab_file: str  # relative to the artifacts folder
    vocab_sha256: str
    context_length: int
    kind: str = "openai-clip-bpe"
    sot_token: str = "<start_of_text>"
    eot_token: str = "<end_of_text>"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> TokenizerSpec:
        known = {f.name for f in fields(TokenizerSpec)}  # a later minor may add fields
        return TokenizerSpec(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class SlidingWindow:
    """CAT-Seg's sliding-window protocol: resize to canvas x canvas, windows of S at ``stride``."""

    canvas: int  # the image is resized to canvas x canvas (640 for S = 384)
    window: int  # S: each window is one image-encoder view
    stride: int  # window corners at multiples of stride (256 for S = 384)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> SlidingWindow:
        return SlidingWindow(int(d["canvas"]), int(d["window"]), int(d["stride"]))


# Manifests of format 1.0 carry no sliding window and no text batch; they were exported when
# these were the only values (escnet.inference.sliding_geometry, escnet.modeling.model.TEXT_BATCH).
LEGACY_TEXT_BATCH = 256


def legacy_sliding_window(image_size: int) -> SlidingWindow:
    """The geometry every 1.0 manifest was used with: stride int(S * 2/3), canvas S + stride."""
    stride = int(image_size * 2 / 3)
    return SlidingWindow(image_size + stride, image_size, stride)


# TensorRT engines (``escnet-export trt``): <artifacts>/<ENGINE_DIR>/<graph><ENGINE_SUFFIX>,
# described by <ENGINE_DIR>/<BUILD_MANIFEST_FILE> (TensorRT version, GPU, precision, profiles, sha256).
ENGINE_DIR = "trt"
ENGINE_SUFFIX = ".engine"
BUILD_MANIFEST_FILE = "build.json"


@dataclass(frozen=True)
class Provenance:
    """Where an export's weights came from, recorded in the manifest for every consumer to show.

    ``weights``: one line, e.g. ``"checkpoint sha256 <64 hex>"``, ``"random init, seed 0"``, or a
    checkpoint that was itself saved from a random init (``"random init, seed 0 (checkpoint sha256 ...)"``).
    ``random_init``: some weights were never trained or loaded, so the model's output is noise.
    """

    weights: str
    random_init: bool

    def notice(self) -> str | None:
        """The one line a command prints when it runs these weights and they are random (else None)."""
        if not self.random_init:
            return None
        return f"weights: {self.weights}: a randomly initialised model, so its segmentations are noise"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_dict(d: dict[str, Any]) -> Provenance:
        return Provenance(weights=str(d["weights"]), random_init=bool(d["random_init"]))


RANDOM_INIT = "random-init"  # a source_weights value: this part was randomly initialised


def random_init_provenance(seed: int | str) -> Provenance:
    return Provenance(f"random init, seed {seed}", random_init=True)


def provenance_from_sources(sources: dict[str, str]) -> Provenance:
    """Provenance from a manifest's ``source_weights`` (role -> sha256, "random-init", a tag; plus "seed")."""
    roles = {k: v for k, v in sources.items() if k != "seed"}
    seed = sources.get("seed", "?")
    if not roles:
        return Provenance("unknown (not recorded by the exporter)", random_init=False)
    if all(v == RANDOM_INIT for v in roles.values()):
        return random_init_provenance(seed)
    parts = [
        f"{role} random init (seed {seed})" if v == RANDOM_INIT else f"{role} {v if ':' in v else 'sha256 ' + v}"
        for role, v in roles.items()
    ]
    return Provenance("; ".join(parts), random_init=RANDOM_INIT in roles.values())


# The baked-vocabulary graph (``escnet-export bake``): one graph, uint8 RGB images -> labels, the
# vocabulary's text embeddings inside as constants. Its folder has its own manifest format.
BAKED_FORMAT = "escnet-baked"
BAKED_FORMAT_VERSION = 1
SEGMENTER = "segmenter"
LABELS, CLASS_SCORES = "labels", "scores"
HEIGHT, WIDTH = "height", "width"  # the image's size, dynamic


def baked_graph_spec(side: int, classes: int) -> GraphSpec:
    """image (B, H, W, 3) uint8 RGB -> labels (B, H, W) int32, scores (B, T, 4g, 4g) float32.

    ``side``: the decoder's output resolution 4g (= S / 4). ``scores``: the sigmoid of the
    decoder's logits at that resolution, one map per class; ``labels`` is the arg-max over
    classes of those logits upsampled to S, passed through the sigmoid and upsampled to (H, W),
    as the runtime computes it.
    """
    image = TensorSpec(IMAGE, "uint8", (BATCH, HEIGHT, WIDTH, 3))
    labels = TensorSpec(LABELS, "int32", (BATCH, HEIGHT, WIDTH))
    scores = TensorSpec(CLASS_SCORES, "float32", (BATCH, classes, side, side))
    return GraphSpec(SEGMENTER, (image,), (labels, scores))


# The vocabulary file (``escnet-export vocab``, ``escnet-segment --precompute --vocab-out``): a
# safetensors file with one float32 tensor (T, P, D) of class embeddings, and in its metadata the
# class names and the identity of the text encoder that made them (a stale file is refused).
VOCAB_FORMAT = "escnet-vocabulary"
VOCAB_FORMAT_VERSION = 1
VOCAB_SUFFIX = ".escvocab"
