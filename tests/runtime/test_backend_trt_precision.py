"""TensorRT fp16 layer precisions follow the shared policy, read on the ONNX graphs: the f32
islands (decisions, the class-score map, its log-sum-exp, the k-means arithmetic, block 0's
image-text correlation) are pinned; the bulk (SAM's, Swin's and the encoders' products and
convolutions) is not. Checked on the exported tiny graphs, no TensorRT needed."""

import onnx
import pytest
from escnet_export.trt.precision import _constants, _product_kind, fp32_nodes
from escnet_runtime import contract as C
from escnet_runtime.precision_rule import DECISION_OPS, NARROW_FEATURES
from support.artifacts import tiny_artifacts

ISLAND = "feeds"  # the reason island nodes carry (the fp16 range rules carry others)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory):
    folder = tiny_artifacts(tmp_path_factory)[0]
    names = [C.IMAGE_ENCODER, C.DECODER, *C.decoder_step_names(2)]
    return {g: onnx.load(str(folder / f"{g}.onnx"), load_external_data=False) for g in names}


def _pinned(model):
    return {p.name: p for p in fp32_nodes(model)}


def test_every_decision_is_pinned_and_no_bulk_product(graphs):
    for graph, model in graphs.items():
        pinned = _pinned(model)
        constants = _constants(model)
        for node in model.graph.node:
            if node.op_type in DECISION_OPS and graph != C.IMAGE_ENCODER:
                assert node.name in pinned, (graph, node.name)
            if node.op_type in ("MatMul", "Gemm", "Conv") and _product_kind(node, constants) == "bulk":
                assert node.name not in pinned, (graph, node.name)


def test_islands_are_where_the_scores_are(graphs):
    def island(graph):
        return [p for p in _pinned(graphs[graph]).values() if ISLAND in p.reason]

    assert island(C.IMAGE_ENCODER) == [] and island(C.DECODER_CLOSE) == []
    opened = island(C.DECODER_OPEN)  # block 0's scores: the image-text correlation and its log-sum-exp
    assert {"MatMul", "ReduceLogSumExp"} <= {p.op_type for p in opened}
    attend = island("decoder_attend_0")  # block 1's scores: the class-score head C -> 1 and its log-sum-exp
    assert {"MatMul", "ReduceLogSumExp"} <= {p.op_type for p in attend}
    nodes = graphs["decoder_attend_0"].graph.node
    assert len(attend) < len(nodes) / 4  # the class attention before it is bulk
    head = [n for n in nodes if n.name in {p.name for p in attend} and n.op_type == "MatMul"]
    constants = _constants(graphs["decoder_attend_0"])
    assert head and all(min(constants[i][-2:]) <= NARROW_FEATURES for n in head for i in n.input if i in constants)
    for block in ("decoder_block_0", "decoder_block_1"):
        kinds = {p.op_type for p in island(block)}
        assert {"Exp", "ArgMax", "ArgMin", "Round", "Greater", "Equal", "MatMul"} <= kinds  # the k-means too
        assert "Conv" not in kinds
