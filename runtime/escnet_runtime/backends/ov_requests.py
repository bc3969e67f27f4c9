"""A pool of OpenVINO infer requests for one compiled model, shared by every thread.

An ``InferRequest`` runs one inference at a time: a second ``infer`` on it while the first is
running fails with "Infer Request is busy". The pool hands each call a request of its own. It
creates requests on demand, at most ``size`` of them (OpenVINO's
``OPTIMAL_NUMBER_OF_INFER_REQUESTS`` for the compiled model: 1 under the LATENCY hint with one
stream, one per stream under THROUGHPUT), keeps every one for the next calls, and makes further
callers wait for a free one. Requests are never created per call.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any


class RequestPool:
    """Infer requests of ``compiled`` (an ``openvino.CompiledModel``), at most ``size`` at once."""

    def __init__(self, compiled: Any, size: int) -> None:
        if size < 1:
            raise ValueError(f"an infer-request pool needs a size >= 1, got {size}")
        self.compiled = compiled
        self.size = size
        self._idle: list[Any] = []
        self._created = 0
        self._busy = 0
        self._cond = threading.Condition()

    @property
    def created(self) -> int:
        """How many requests the pool has made so far (never more than ``size``)."""
        return self._created

    @contextlib.contextmanager
    def request(self) -> Iterator[Any]:
        """A request no other caller holds until this block ends; waits while all are in use."""
        with self._cond:
            while not self._idle and self._created >= self.size:
                self._cond.wait()
            if self._idle:
                req = self._idle.pop()
            else:
                req = self.compiled.create_infer_request()  # the first time this many run at once
                self._created += 1
            self._busy += 1
        try:
            yield req
        finally:
            with self._cond:
                self._busy -= 1
                self._idle.append(req)
                self._cond.notify()

    @contextlib.contextmanager
    def quiet(self) -> Iterator[bool]:
        """Yields True while no request of the pool runs, holding every new call off until the
        block ends (e.g. to release the compiled model's working memory); False when some run."""
        with self._cond:
            yield self._busy == 0

    def clear(self) -> None:
        """Drop every idle request (``close``)."""
        with self._cond:
            self._created -= len(self._idle)
            self._idle.clear()
