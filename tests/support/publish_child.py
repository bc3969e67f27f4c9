"""Child process of test_trust_export: publishes SOURCE's graphs over OUT with the real publishing code and
stops (writes READY, then sleeps until killed) at POINT, for the test to kill -9 it there.

    python publish_child.py SOURCE OUT POINT READY

POINT: building (staging half written), between_renames / after_renames (the two-rename swap),
after_exchange (the atomic exchange done, the old folder not yet removed).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
import time
from pathlib import Path

import escnet_export.publish as pub
from escnet_runtime.manifest import load_manifest, write_manifest


def main() -> None:
    source, out, point, ready = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], Path(sys.argv[4])

    def stop() -> None:
        ready.write_text(str(os.getpid()))
        time.sleep(600)

    real_rename, real_exchange, renames = pub._rename, pub._exchange, []

    def rename(a: Path, b: Path) -> None:
        real_rename(a, b)
        renames.append(a)
        if (point, len(renames)) in (("between_renames", 1), ("after_renames", 2)):
            stop()

    def exchange(a: Path, b: Path) -> bool:
        if point != "after_exchange":
            return False  # the two-rename fallback
        assert real_exchange(a, b), "RENAME_EXCHANGE is not available here"
        stop()
        return True

    pub._rename, pub._exchange = rename, exchange
    manifest = load_manifest(source)
    new = dataclasses.replace(manifest, extra={**manifest.extra, "marker": "new"})
    with pub.staged_export(out) as run:
        for i, name in enumerate(manifest.files):
            shutil.copyfile(source / name, run.staging / name)
            if point == "building" and i == 2:
                stop()
        pub.publish(run, list(manifest.files), lambda folder: write_manifest(folder, new))


if __name__ == "__main__":
    main()
