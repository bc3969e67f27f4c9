"""Checks of a manifest before anything is built from it: its JSON Schema, then the values a
schema cannot express. Every failure is one line naming the field, e.g.
``preprocess.mean: expected 3 numbers, got 2``; the caller prefixes the manifest's path.

The schema (``manifest.schema.json``) ships with the package, as the bench's results schema does.
"""

from __future__ import annotations

import json
import math
import ntpath
import re
from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from importlib import resources
from typing import Any

from escnet_runtime.chunked_decoder import check_steps
from escnet_runtime.contract import DTYPES, IMAGE_ENCODER, GraphSpec, Preprocess, TokenizerSpec, decoder_step_names
from escnet_runtime.errors import InputError

SCHEMA_FILE = "manifest.schema.json"
BAKED_SCHEMA_FILE = "baked_manifest.schema.json"
_BLOCK = re.compile(r"decoder_block_[0-9]+")  # contract.DECODER_BLOCK
_SHORT = 60  # characters of a bad value quoted in an error
MAX_TEMPLATE_CHARS = 1000  # CLIP's 77 tokens hold about 300 characters; longer is never a template


class ManifestFieldError(ValueError):
    """One field of a manifest is wrong; ``str`` is ``field: what was expected, what was found``."""


@cache
def load_schema(name: str = SCHEMA_FILE) -> dict[str, Any]:
    """A manifest's JSON Schema, read from the installed package: the artifacts' (default) or the
    baked folders' (``BAKED_SCHEMA_FILE``, which uses the artifacts schema's ``$defs``)."""
    text = resources.files("escnet_runtime").joinpath(name).read_text(encoding="utf-8")
    schema = json.loads(text)
    if name != SCHEMA_FILE:
        schema["$defs"] = {**load_schema()["$defs"], **schema.get("$defs", {})}
    return schema


def parse_json(text: str) -> Any:
    """JSON without NaN / Infinity (Python's json accepts them; a manifest never holds them)."""

    def refuse(word: str) -> Any:
        raise ManifestFieldError(f"(json): the non-finite number {word} is not allowed")

    return json.loads(text, parse_constant=refuse)


def field_name(path: Iterable[Any]) -> str:
    """["preprocess", "mean", 1] -> "preprocess.mean[1]"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(root)"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= _SHORT else text[: _SHORT - 3] + "..."


def _describe(error: Any) -> str:
    """A jsonschema ValidationError -> ``field: expected ..., got ...``."""
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return f"{field_name([*path, missing])}: missing"
    if error.validator == "propertyNames":
        want = error.schema.get("propertyNames", {}).get("description", "a valid name")
        return f"{field_name(path)}: expected {want}, got {_short(error.instance)}"
    want = error.schema.get("description", f"to satisfy {error.validator} {error.validator_value!r}")
    if error.validator in ("minItems", "maxItems") and isinstance(error.instance, list):
        got = len(error.instance) or "an empty list"
        return f"{field_name(path)}: expected {want}, got {got}"
    if error.validator == "minProperties" and isinstance(error.instance, dict):
        return f"{field_name(path)}: expected {want}, got an empty object"
    return f"{field_name(path)}: expected {want}, got {_short(error.instance)}"


def validate_schema(data: Any, schema: str = SCHEMA_FILE) -> None:
    """Raise ManifestFieldError for the first violation of ``schema`` (in field order)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(load_schema(schema))
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ManifestFieldError(_describe(errors[0]) + more)


def check_relative(name: str, where: str) -> None:
    """A path a manifest names: relative, forward slashes, no empty / . / .. parts, no drive."""
    parts = name.split("/")
    bad = (
        not name
        or "\\" in name
        or "\0" in name
        or name.startswith("/")
        or ntpath.splitdrive(name)[0]
        or any(p in ("", ".", "..") for p in parts)
    )
    if bad:
        raise ManifestFieldError(f"{where}: {_short(name)} is not a relative path inside the artifacts folder")


def _check_templates(templates: list[str]) -> None:
    for i, template in enumerate(templates):
        if len(template) > MAX_TEMPLATE_CHARS:
            raise ManifestFieldError(
                f"templates[{i}]: {len(template)} characters; expected at most {MAX_TEMPLATE_CHARS} "
                "(a template is a short sentence around the class name)"
            )
        ok = template.count("{}") == 1
        if ok:
            try:
                ok = template.format("x") == template.replace("{}", "x")
            except (IndexError, KeyError, ValueError):
                ok = False
        if not ok:
            raise ManifestFieldError(
                f"templates[{i}]: expected exactly one {{}} (where the class name goes) and no other braces, "
                f"got {_short(template)}"
            )


def check_preprocess(pre: dict[str, Any], tok: dict[str, Any] | None = None) -> None:
    """Finite numbers, a scale of 1 / (the image's maximum value), and only the resize / layout /
    special tokens this runtime implements (anything else would be silently ignored)."""
    for key in ("mean", "std"):
        for i, v in enumerate(pre[key]):
            if not math.isfinite(v):
                raise ManifestFieldError(f"preprocess.{key}[{i}]: expected a finite number, got {v}")
    inverse = 1.0 / pre["scale"]  # the schema says scale > 0
    if not math.isfinite(inverse) or not 1 <= round(inverse) <= 65535:
        raise ManifestFieldError(f"preprocess.scale: expected 1 / (the image's maximum value), got {pre['scale']}")
    implemented = {
        "preprocess.resize": (pre["resize"], Preprocess.resize),
        "preprocess.layout": (pre["layout"], Preprocess.layout),
    }
    if tok is not None:
        implemented["tokenizer.sot_token"] = (tok.get("sot_token", TokenizerSpec.sot_token), TokenizerSpec.sot_token)
        implemented["tokenizer.eot_token"] = (tok.get("eot_token", TokenizerSpec.eot_token), TokenizerSpec.eot_token)
    for name, (got, want) in implemented.items():
        if got != want:
            raise ManifestFieldError(f"{name}: this runtime implements {want!r}, got {_short(got)}")


def _check_graphs(data: dict[str, Any]) -> None:
    graphs, files = data["graphs"], data["files"]
    for name, graph in graphs.items():
        file = f"{name}.onnx"
        if graph.get("file", file) != file:
            raise ManifestFieldError(f"graphs.{name}.file: expected {file!r}, got {_short(graph['file'])}")
        if file not in files:
            raise ManifestFieldError(f"files: the graph file {file!r} is not listed (every graph must be hashed)")
        for kind in ("inputs", "outputs"):
            for j, tensor in enumerate(graph[kind]):
                if tensor["dtype"] not in DTYPES:  # the schema's enum, kept equal to the contract by a test
                    raise ManifestFieldError(f"graphs.{name}.{kind}[{j}].dtype: expected one of {', '.join(DTYPES)}")
    steps = data.get("decoder_steps", [])
    for i, step in enumerate(steps):
        if step not in graphs:
            raise ManifestFieldError(f"decoder_steps[{i}]: {_short(step)} is not among the graphs")
    if len(set(steps)) != len(steps):
        raise ManifestFieldError("decoder_steps: a step is listed twice")
    size = data["preprocess"]["image_size"]
    encoder = graphs.get(IMAGE_ENCODER)
    if encoder is not None and encoder["inputs"][0]["shape"][-2:] != [size, size]:
        got = encoder["inputs"][0]["shape"]
        raise ManifestFieldError(f"preprocess.image_size: {size} differs from the image encoder's input {got}")


def _check_sliding(data: dict[str, Any]) -> None:
    sw = data.get("sliding_window")
    if sw is None:
        return
    canvas, window, stride = sw["canvas"], sw["window"], sw["stride"]
    if window != data["preprocess"]["image_size"]:
        raise ManifestFieldError(f"sliding_window.window: expected the image size {data['preprocess']['image_size']}")
    if canvas < window or stride > window or (canvas - window) % stride:
        raise ManifestFieldError(
            f"sliding_window: windows of {window} at stride {stride} do not tile a {canvas} canvas "
            "(expected canvas >= window >= stride and (canvas - window) divisible by stride)"
        )


def check_values(data: dict[str, Any]) -> None:
    """What the schema cannot say (call after ``validate_schema``)."""
    _check_templates(data["templates"])
    check_preprocess(data["preprocess"], data["tokenizer"])
    for name in data["files"]:
        check_relative(name, "files")
    _check_graphs(data)
    tok = data["tokenizer"]
    check_relative(tok["vocab_file"], "tokenizer.vocab_file")
    if tok["vocab_file"] not in data["files"]:
        raise ManifestFieldError(f"files: the tokenizer vocabulary {tok['vocab_file']!r} is not listed")
    if data["files"][tok["vocab_file"]] != tok["vocab_sha256"]:
        raise ManifestFieldError("tokenizer.vocab_sha256: differs from the vocabulary's sha256 in files")
    _check_sliding(data)


def check_decoder_steps(steps: Sequence[str], graphs: Mapping[str, GraphSpec]) -> None:
    """``decoder_steps`` (when any): exactly ``contract.decoder_step_names(N)`` for the manifest's
    N ``decoder_block_k`` graphs, and each step's inputs are the image encoder's outputs, the class
    embeddings, or what an earlier step carries or combines (``ChunkedDecoder``'s rules)."""
    if not steps:
        return
    blocks = sum(1 for name in graphs if _BLOCK.fullmatch(name))
    want = decoder_step_names(blocks)
    if tuple(steps) != want:
        at = next((i for i, (a, b) in enumerate(zip(steps, want, strict=False)) if a != b), min(len(steps), len(want)))
        got = steps[at] if at < len(steps) else "(the end)"
        expected = want[at] if at < len(want) else "(the end)"
        raise ManifestFieldError(
            f"decoder_steps[{at}]: expected {expected!r} (the contract's order for {blocks} decoder blocks: "
            f"{', '.join(want)}), got {_short(got)}"
        )
    try:
        check_steps(steps, graphs)
    except InputError as e:
        raise ManifestFieldError(f"decoder_steps: {e}") from None
