"""Triton: model repositories around an artifacts folder (Python-backend pipeline, or graph models + BLS)."""
