"""Class chunking shared by the per-class stages and the class attention."""

# Twin of escnet_runtime.chunked_decoder.class_spans (plus None): escnet and the runtime may not import each other.

from __future__ import annotations

from ..errors import ESCNetInputError


def class_spans(t: int, chunk: int | None) -> list[tuple[int, int]]:
    """Class ranges of at most ``chunk`` classes; ``None``: one span over all T classes.

    The ``None`` case builds no Python range over T, so T stays symbolic when exported.
    """
    if chunk is None:
        return [(0, t)]
    if chunk < 1:
        raise ESCNetInputError(f"class_chunk is {chunk}; expected at least 1")
    return [(s, min(s + chunk, t)) for s in range(0, t, chunk)]
