"""Make ``import torchvision`` work when its C++ extension cannot load.

PyPI's torchvision 0.28.0 wheel is built against CUDA. Next to the CPU build of torch 2.13
its ``_C`` extension fails to load, and ``import torchvision`` (hence ``open_clip`` and
``segment_anything``, which import it) dies with ``operator torchvision::nms does not
exist``: torchvision registers fake kernels for ``nms``/``qnms`` at import time and those
need the operator schemas that only the extension defines.

:func:`ensure_torchvision` is called once, by ``escnet/__init__.py``, before anything
imports torchvision. It tries to load the extension exactly as torchvision would; when that
works it does nothing (a normal install). When it fails, it defines the two schemas and
registers pure-torch CPU kernels for them, so torchvision imports and
``torch.ops.torchvision.nms`` gives correct results (``torchvision.ops.nms`` itself still
refuses, as torchvision checks its own extension flag). The other compiled ops (roi_align,
deform_conv2d, ...) stay unavailable; this project uses none of them.
"""

from __future__ import annotations

import glob
import importlib.util
import os

import torch

_done = False
FALLBACK_ACTIVE = False


def _extension_loads() -> bool:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # torchvision not installed: nothing to repair
    for folder in spec.submodule_search_locations:
        for lib in glob.glob(os.path.join(folder, "_C*.so")) + glob.glob(os.path.join(folder, "_C*.pyd")):
            try:
                torch.ops.load_library(lib)
                return True
            except (ImportError, OSError):
                return False
    return False


def _nms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy non-maximum suppression. dets (K, 4) as x1, y1, x2, y2; scores (K,) -> kept (M,) int64."""
    order = torch.argsort(scores, descending=True, stable=True)
    boxes = dets[order].to(torch.float64)
    areas = (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=dets.device)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        lt = torch.maximum(boxes[i, :2], boxes[i + 1 :, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[i + 1 :, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        iou = inter / (areas[i] + areas[i + 1 :] - inter)
        suppressed[i + 1 :] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=dets.device)]


def _qnms(dets: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    return _nms(dets.dequantize(), scores.dequantize(), iou_threshold)


def ensure_torchvision() -> None:
    """Register pure-torch ``torchvision::nms``/``qnms`` if and only if the extension cannot load."""
    global _done, FALLBACK_ACTIVE
    if _done:
        return
    _done = True
    if _extension_loads():
        return
    lib = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - kept alive below
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _nms, "CPU")
    lib.impl("qnms", _qnms, "QuantizedCPU")
    globals()["_LIBRARY"] = lib
    FALLBACK_ACTIVE = True
