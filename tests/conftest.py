import os

# No test may reach a model hub: open_clip's pretrained tags would otherwise retry for a minute.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model():
    from escnet import build_model

    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture()
def tiny_images():
    g = torch.Generator().manual_seed(1)
    return torch.randn(2, 3, 128, 128, generator=g)
