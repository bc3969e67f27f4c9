"""ONNX: the three graphs exported from a trained model, their manifest, simplification and opsets."""
