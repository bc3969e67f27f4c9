"""Contenders: what the harness runs side by side (escnet_runtime backends, PyTorch), and their registry."""
