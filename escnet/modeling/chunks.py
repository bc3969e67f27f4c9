"""Class chunking shared by the per-class stages and the class attention."""

from __future__ import annotations


def class_spans(t: int, chunk: int | None) -> list[tuple[int, int]]:
    """Class ranges of at most ``chunk`` classes; ``None``: one span over all T classes.

    The ``None`` case builds no Python range over T, so T stays symbolic when exported.
    """
    if chunk is None:
        return [(0, t)]
    return [(s, min(s + chunk, t)) for s in range(0, t, chunk)]
