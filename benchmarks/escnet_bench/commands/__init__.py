"""User commands that live beside the bench: ``escnet-eval`` and ``escnet-demo``."""
