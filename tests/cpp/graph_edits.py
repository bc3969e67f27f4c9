"""Damaged copies of artifacts for the C++ runtime's tests: graphs that keep weights in ONNX
external data, stand-in baked graphs whose outputs disagree with their manifest, PNG headers
that claim huge images, vocabulary files with chosen header fields."""

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def rehash(folder: Path, name: str) -> None:
    """List ``name`` in the folder's manifest with its current sha256."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = hashlib.sha256((folder / name).read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest, indent=2))


def with_external_data(artifacts: Path, copy: Path, graph: str, location: str, data_file: Path) -> Path:
    """A copy of ``artifacts`` whose ``graph`` keeps its largest initializer in external data at
    ``location`` (written to ``data_file``), the graph's sha256 updated in the manifest."""
    shutil.copytree(artifacts, copy)
    model = onnx.load(copy / f"{graph}.onnx")
    init = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).nbytes)
    data = numpy_helper.to_array(init).tobytes()
    data_file.parent.mkdir(parents=True, exist_ok=True)
    data_file.write_bytes(data)
    for field in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
        init.ClearField(field)
    init.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(len(data)))):
        init.external_data.add(key=key, value=value)
    (copy / f"{graph}.onnx").write_bytes(model.SerializeToString())
    rehash(copy, f"{graph}.onnx")
    return copy


def stand_in_baked(baked: Path, copy: Path, labels: str) -> Path:
    """A copy of ``baked`` whose segmenter.onnx gives (1, 1, 1) labels (``labels="small"``) or
    labels of each pixel's largest channel value, 0..255 (``labels="range"``); scores of the
    manifest's shape. Its sha256 is updated: only the graph's outputs are wrong."""
    shutil.copytree(baked, copy)
    spec = json.loads((copy / "manifest.json").read_text())["graphs"]["segmenter"]
    scores_shape = [1, *spec["outputs"][1]["shape"][1:]]
    nodes = [
        helper.make_node("ReduceMax", ["image", "axis3"], ["peak"], keepdims=0),
        helper.make_node("Cast", ["peak"], ["peak32"], to=TensorProto.INT32),
    ]
    if labels == "small":
        nodes.append(helper.make_node("Slice", ["peak32", "zero2", "one2", "axes12"], ["labels"]))
    else:
        nodes.append(helper.make_node("Identity", ["peak32"], ["labels"]))
    nodes.append(helper.make_node("Identity", ["scores_value"], ["scores"]))
    inits = [
        numpy_helper.from_array(np.array([3], np.int64), "axis3"),
        numpy_helper.from_array(np.array([0, 0], np.int64), "zero2"),
        numpy_helper.from_array(np.array([1, 1], np.int64), "one2"),
        numpy_helper.from_array(np.array([1, 2], np.int64), "axes12"),
        numpy_helper.from_array(np.zeros(scores_shape, np.float32), "scores_value"),
    ]
    graph = helper.make_graph(
        nodes,
        "segmenter",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", "height", "width", 3])],
        [
            helper.make_tensor_value_info("labels", TensorProto.INT32, None),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, scores_shape),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    (copy / "segmenter.onnx").write_bytes(model.SerializeToString())
    rehash(copy, "segmenter.onnx")
    return copy


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG of a signature, an IHDR claiming width x height RGB, an empty IDAT, and IEND (65 bytes)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def vocabulary_with(source: Path, out: Path, **tensor_fields) -> Path:
    """``source`` with fields of its class_embeddings header entry replaced (data unchanged)."""
    raw = source.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["class_embeddings"].update(tensor_fields)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    out.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + n :])
    return out
