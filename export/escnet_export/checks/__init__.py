"""Checks of exported graphs: the TensorRT preflight, fp16 risk, numeric parity against PyTorch."""
