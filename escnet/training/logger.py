"""Plottable training logs: ``log.jsonl`` (every record) and ``train.csv`` / ``val.csv``.

Records are kept in memory and each file is rewritten atomically, so a killed run never
leaves a torn line; a resumed run first drops the records after its checkpoint's step.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ..io_utils import atomic_path


class RunLog:
    """Records are dicts with a ``kind`` ("train" or "val") and a ``step``."""

    def __init__(self, out: Path, resume_step: int | None = None) -> None:
        self.out = out
        self.records: list[dict[str, Any]] = []
        path = out / "log.jsonl"
        if resume_step is not None and path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    rec = json.loads(line)
                    if rec.get("step", 0) <= resume_step:
                        self.records.append(rec)

    def add(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def flush(self) -> None:
        with atomic_path(self.out / "log.jsonl") as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.records), encoding="utf-8")
        for kind in ("train", "val"):
            rows = [{k: v for k, v in r.items() if k != "kind"} for r in self.records if r.get("kind") == kind]
            if not rows:
                continue
            columns = list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], dict | list)))
            buf = io.StringIO()
            writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
            with atomic_path(self.out / f"{kind}.csv") as tmp:
                tmp.write_text(buf.getvalue(), encoding="utf-8")
