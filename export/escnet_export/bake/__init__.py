"""Baked graphs: one ONNX graph, uint8 image -> labels, with a vocabulary inside."""
