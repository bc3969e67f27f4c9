"""ESC-Net: open-vocabulary semantic segmentation (CLIP + SAM blocks), in PyTorch.

Public API: ``build_model``, ``save_checkpoint``, ``load_checkpoint``, ``ESCNet``,
``ESCNetConfig``, ``PRESETS``.
"""

# torchvision (imported by open_clip and segment_anything) must be importable first; this is
# the project's one compatibility shim, a no-op on a normal install (see the module).
from ._torchvision_compat import ensure_torchvision

ensure_torchvision()

from .builder import build_model  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .config import ESCNetConfig  # noqa: E402
from .errors import CheckpointError, ESCNetInputError  # noqa: E402
from .model import CLIP_MEAN, CLIP_STD, BlockInput, BlockOutput, ESCNet, ImageFeatures  # noqa: E402
from .presets import PRESETS, get_config  # noqa: E402

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "BlockInput",
    "BlockOutput",
    "PRESETS",
    "CheckpointError",
    "ESCNet",
    "ESCNetConfig",
    "ESCNetInputError",
    "ImageFeatures",
    "build_model",
    "get_config",
    "load_checkpoint",
    "save_checkpoint",
]
__version__ = "0.1.0"
