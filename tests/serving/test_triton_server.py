"""A real tritonserver (2.51, bundled in nvidia-pytriton) on 127.0.0.1 serving the repository that
`escnet-export triton` wrote for the tiny artifacts: labels over HTTP and gRPC equal the in-process
Segmenter's; malformed requests get an error and the server keeps serving; stopped by its PID.

The server's Python backend runs this interpreter, with the project's NumPy (2.x here).
"""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from escnet_export.triton.config import RESTRICTED_HEADER, restricted_http_option
from escnet_runtime import Segmenter
from escnet_runtime.serving import encode_names
from support.artifacts import tiny_artifacts
from support.tritonserver import TritonServer
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.slow

VOCABULARY = ["wall", "floor", "sky"]
NAMES = ["cat", "grass", "sky", "road", "person"]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return tiny_artifacts(tmp_path_factory)[0]


@pytest.fixture(scope="module")
def server(artifacts, tmp_path_factory):
    base = tmp_path_factory.mktemp("triton")
    repo = base / "repo"
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", "--artifacts", str(artifacts)]
    cmd += ["--out", str(repo), "--classes", ",".join(VOCABULARY), "--max-classes", "64", "--max-batch", "4"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    srv = TritonServer(repo, base / "server")
    srv.start()
    yield srv
    pid = srv.process.pid
    srv.stop()
    assert srv.process.poll() is not None, f"tritonserver {pid} still running"


def images() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for shape in [(97, 130, 3), (64, 64, 3), (150, 90, 3)]]


def reference(artifacts, names, image) -> np.ndarray:
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(names)
    return seg.segment(image).labels


def http_inputs(image: np.ndarray, names: list[str] | None, dtype: str = "UINT8") -> list:
    x = httpclient.InferInput("image", [1, *image.shape], dtype)
    x.set_data_from_numpy(image[None])
    if names is None:
        return [x]
    text = encode_names(names)[None]
    c = httpclient.InferInput("classes", list(text.shape), "UINT8")
    c.set_data_from_numpy(text)
    return [x, c]


def test_http_and_grpc_labels_equal_the_segmenter(server, artifacts):
    http = httpclient.InferenceServerClient(server.http)
    grpc = grpcclient.InferenceServerClient(server.grpc)
    try:
        for image in images():
            expected = reference(artifacts, NAMES, image)
            res = http.infer("escnet", http_inputs(image, NAMES))
            labels = res.as_numpy("labels")
            assert labels.dtype == np.int32 and labels.shape == (1, *image.shape[:2])
            np.testing.assert_array_equal(labels[0], expected)
            assert res.as_numpy("class_names")[0].tobytes().decode().split("\n") == NAMES

            x = grpcclient.InferInput("image", [1, *image.shape], "UINT8")
            x.set_data_from_numpy(image[None])
            c = grpcclient.InferInput("classes", [1, encode_names(NAMES).size], "UINT8")
            c.set_data_from_numpy(encode_names(NAMES)[None])
            np.testing.assert_array_equal(grpc.infer("escnet", [x, c]).as_numpy("labels")[0], expected)
    finally:
        http.close()
        grpc.close()
    # the Python backend ran this interpreter's NumPy (2.x in the project), not another environment's
    assert f"numpy {np.__version__}" in server.log_path.read_text(errors="replace")


def test_no_classes_means_the_configured_vocabulary(server, artifacts):
    image = images()[0]
    http = httpclient.InferenceServerClient(server.http)
    try:
        res = http.infer("escnet", http_inputs(image, None))
        np.testing.assert_array_equal(res.as_numpy("labels")[0], reference(artifacts, VOCABULARY, image))
        assert res.as_numpy("class_names")[0].tobytes().decode().split("\n") == VOCABULARY
    finally:
        http.close()


def _malformed(image: np.ndarray) -> dict[str, list]:
    wrong_dtype = httpclient.InferInput("image", [1, *image.shape], "FP32")
    wrong_dtype.set_data_from_numpy(image[None].astype(np.float32))
    many = [f"class {i}" for i in range(100_000)]
    return {
        "wrong dtype": [wrong_dtype],
        "empty image": http_inputs(np.zeros((0, 0, 3), np.uint8), NAMES),
        "100k classes": http_inputs(image, many),
        "duplicate classes": http_inputs(image, ["sky", "Sky"]),
        "not UTF-8": http_inputs(image, ["sky"])[:1] + [_raw_classes(b"\xff\xfe")],
    }


def _raw_classes(data: bytes):
    c = httpclient.InferInput("classes", [1, len(data)], "UINT8")
    c.set_data_from_numpy(np.frombuffer(data, np.uint8)[None])
    return c


def test_malformed_requests_get_errors_and_the_server_keeps_serving(server, artifacts):
    image = images()[1]
    expected = reference(artifacts, NAMES, image)
    http = httpclient.InferenceServerClient(server.http, connection_timeout=120, network_timeout=120)
    try:
        for what, inputs in _malformed(image).items():
            with pytest.raises(InferenceServerException) as err:
                http.infer("escnet", inputs)
            assert str(err.value).strip(), what
            assert server.process.poll() is None, f"server died after the {what} request"
            labels = http.infer("escnet", http_inputs(image, NAMES)).as_numpy("labels")[0]
            np.testing.assert_array_equal(labels, expected, err_msg=f"after the {what} request")
        assert http.is_model_ready("escnet")
    finally:
        http.close()


def test_a_changed_artifact_keeps_the_model_from_loading(artifacts, tmp_path):
    repo = tmp_path / "repo"
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", "--artifacts", str(artifacts)]
    assert subprocess.run([*cmd, "--out", str(repo)], capture_output=True, timeout=300).returncode == 0
    with open(repo / "escnet" / "1" / "artifacts" / "decoder.onnx", "ab") as f:
        f.write(b"\0")
    srv = TritonServer(repo, tmp_path / "server")
    with pytest.raises(RuntimeError, match="tritonserver exited") as err:
        srv.start()
    srv.stop()
    assert "failed to load all models" in str(err.value)
    assert "decoder.onnx does not match the manifest" in srv.log_path.read_text(errors="replace")
    assert srv.process.poll() is not None


# One 90-byte request: a JSON tensor that declares 30 GB and carries one value.
HUGE_JSON = {"inputs": [{"name": "image", "shape": [1, 100000, 100000, 3], "datatype": "UINT8", "data": [0]}]}


def post_json(server: TritonServer, body: dict, headers: dict[str, str] | None = None) -> tuple[int, str]:
    """POST /v2/models/escnet/infer with a JSON body: (HTTP status, body text); (0, why) when the connection died."""
    data = json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://{server.http}/v2/models/escnet/infer", data=data, headers=headers or {}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:  # the server closed the connection (it died)
        return 0, str(e)


def json_image(values: list[int], h: int = 4, w: int = 4) -> dict:
    return {"inputs": [{"name": "image", "shape": [1, h, w, 3], "datatype": "UINT8", "data": values}]}


def test_a_request_without_image_is_one_line_without_server_paths(server, artifacts):
    classes = encode_names(["sky"]).tolist()
    status, body = post_json(server, {"inputs": [{"name": "classes", "shape": [1, len(classes)], "datatype": "UINT8",
                                                  "data": classes}]})  # fmt: skip
    error = json.loads(body)["error"]
    assert status >= 400 and "no 'image' input" in error, body
    assert "\n" not in error and "Traceback" not in error and "model.py" not in error
    assert str(server.repository) not in error
    status, _ = post_json(server, json_image([7] * 48))
    assert status == 200 and server.process.poll() is None


def test_json_uint8_over_255_wraps_inside_triton(server, artifacts):
    """Triton 2.51 casts a JSON (and a gRPC uint_contents) UINT8 value of 300 to 44 before any model
    sees it, so the model cannot refuse it (docs/serving.md). Pinned here: a server that starts
    refusing it fails this test, and the docs then change."""
    status, wrapped = post_json(server, json_image([300] * 48))
    assert status == 200, wrapped
    status, same = post_json(server, json_image([300 - 256] * 48))
    assert status == 200 and json.loads(wrapped)["outputs"][0] == json.loads(same)["outputs"][0]
    status, body = post_json(server, json_image([-1] * 48))
    assert status >= 400 and "unsigned-integer" in body  # what Triton itself refuses


def grpc_huge_shape(server: TritonServer) -> str:
    """The 90-byte request's shape over gRPC with one byte of data: the server's error text."""
    import grpc
    from tritonclient.grpc import service_pb2, service_pb2_grpc

    request = service_pb2.ModelInferRequest(model_name="escnet")
    request.inputs.add(name="image", datatype="UINT8", shape=[1, 100000, 100000, 3])
    request.raw_input_contents.append(b"\0")
    with grpc.insecure_channel(server.grpc) as channel:
        try:
            service_pb2_grpc.GRPCInferenceServiceStub(channel).ModelInfer(request, timeout=120)
        except grpc.RpcError as e:
            return str(e.details())
    return ""


def _restricted_server(artifacts, base, key: str) -> TritonServer:
    repo = base / "repo"
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", "--artifacts", str(artifacts)]
    proc = subprocess.run([*cmd, "--out", str(repo), "--classes", ",".join(VOCABULARY)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert restricted_http_option("<a secret>") in proc.stdout  # the command says how to serve it
    return TritonServer(repo, base / "server", options=[restricted_http_option(key)])


def test_the_90_byte_request_is_refused_by_the_restricted_deployment(artifacts, tmp_path):
    """The deployment docs/serving.md gives: HTTP inference only with the key; gRPC for the rest."""
    key = "test-key-1234"
    image = images()[0]
    expected = reference(artifacts, NAMES, image)
    with _restricted_server(artifacts, tmp_path, key) as srv:
        status, body = post_json(srv, HUGE_JSON)
        assert status == 403 and RESTRICTED_HEADER in body, body
        assert srv.ready() and srv.process.poll() is None
        grpc = grpcclient.InferenceServerClient(srv.grpc)
        http = httpclient.InferenceServerClient(srv.http)
        try:
            assert "byte size mismatch" in grpc_huge_shape(srv)  # the same declared shape over gRPC: refused
            x = grpcclient.InferInput("image", [1, *image.shape], "UINT8")
            x.set_data_from_numpy(image[None])
            c = grpcclient.InferInput("classes", [1, encode_names(NAMES).size], "UINT8")
            c.set_data_from_numpy(encode_names(NAMES)[None])
            np.testing.assert_array_equal(grpc.infer("escnet", [x, c]).as_numpy("labels")[0], expected)
            labels = http.infer("escnet", http_inputs(image, NAMES), headers={RESTRICTED_HEADER: key})
            np.testing.assert_array_equal(labels.as_numpy("labels")[0], expected)  # the key holder is served
        finally:
            grpc.close()
            http.close()
        assert srv.ready()


@pytest.mark.xfail(strict=True, reason="tritonserver 2.51 aborts (std::bad_alloc in its JSON parser); docs/serving.md")
def test_an_open_http_server_survives_the_90_byte_request(artifacts, tmp_path):
    """Without the restriction the server dies: this stays a known failure of Triton 2.51 until a
    server that survives it makes this test pass (strict: the docs then change)."""
    repo = tmp_path / "repo"
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", "--artifacts", str(artifacts)]
    assert subprocess.run([*cmd, "--out", str(repo)], capture_output=True, timeout=300).returncode == 0
    with TritonServer(repo, tmp_path / "server") as srv:
        post_json(srv, HUGE_JSON)
        try:
            srv.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        alive = srv.process.poll() is None and srv.ready()
    assert srv.process.poll() is not None  # stopped by its PID either way
    assert alive, "tritonserver died after the 90-byte JSON request"


def test_an_int8_folder_is_served_with_its_own_labels(tmp_path_factory, tmp_path):
    """The int8 artifacts `escnet-export quantize` writes, served as the fp32 ones are (gRPC)."""
    from support.artifacts import tiny_int8

    pytest.importorskip("nncf")
    folder, _, _ = tiny_int8(tmp_path_factory)
    repo = tmp_path / "repo"
    cmd = [sys.executable, "-c", "from escnet_export.cli import app; app()", "triton", "--artifacts", str(folder)]
    proc = subprocess.run([*cmd, "--out", str(repo)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    srv = TritonServer(repo, tmp_path / "server").start()
    grpc = grpcclient.InferenceServerClient(srv.grpc)
    try:
        seg = Segmenter(folder, backend="ort-cpu", disk_cache=False).set_vocabulary(NAMES)
        for image in images()[:2]:
            x = grpcclient.InferInput("image", [1, *image.shape], "UINT8")
            x.set_data_from_numpy(image[None])
            c = grpcclient.InferInput("classes", [1, encode_names(NAMES).size], "UINT8")
            c.set_data_from_numpy(encode_names(NAMES)[None])
            np.testing.assert_array_equal(grpc.infer("escnet", [x, c]).as_numpy("labels")[0], seg.segment(image).labels)
    finally:
        grpc.close()
        srv.stop()
    assert srv.process.poll() is not None
