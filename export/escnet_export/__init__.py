"""escnet_export: ONNX export, TensorRT engine builds, manifests (``escnet-export``)."""
