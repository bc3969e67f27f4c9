"""GridWindowAttention: torchvision's shifted window attention with its layout precomputed."""

from __future__ import annotations

import pytest
import torch

# escnet makes torchvision importable first (escnet/_torchvision_compat.py): take torchvision's
# module through it rather than importing torchvision ahead of escnet.
from escnet.modeling.window_attention import GridWindowAttention, ShiftedWindowAttention, shift_mask, token_order


def pair(
    dim: int, window: int, shift: tuple[int, int], grid: int
) -> tuple[ShiftedWindowAttention, GridWindowAttention]:
    torch.manual_seed(0)
    ref = ShiftedWindowAttention(dim, [window, window], list(shift), num_heads=2).eval()
    new = GridWindowAttention(dim, [window, window], list(shift), num_heads=2, grid=grid).eval()
    new.load_state_dict(ref.state_dict(), strict=True)
    return ref, new


@pytest.mark.parametrize(
    ("grid", "window", "shift", "shifted"),
    [
        (8, 4, (2, 2), True),  # the tiny preset's shifted block
        (8, 4, (0, 0), False),  # its regular block
        (24, 12, (6, 6), True),  # vit-b16's
        (8, 4, (2, 0), True),  # one axis shifted
        (8, 8, (4, 4), False),  # the window covers the grid: torchvision does not shift
    ],
)
def test_matches_torchvision(grid: int, window: int, shift: tuple[int, int], shifted: bool) -> None:
    ref, new = pair(16, window, shift, grid)
    assert new.fast and new.shifted is shifted
    x = torch.randn(3, grid, grid, 16)
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x), rtol=1e-6, atol=1e-6)


def test_other_sizes_fall_back_to_torchvision() -> None:
    ref, new = pair(16, 4, (2, 2), grid=8)
    x = torch.randn(2, 12, 10, 16)  # not the built grid, not a multiple of the window
    with torch.no_grad():
        torch.testing.assert_close(new(x), ref(x), rtol=0, atol=0)


def test_gradients_match_torchvision() -> None:
    ref, new = pair(16, 4, (2, 2), grid=8)
    x = torch.randn(2, 8, 8, 16)
    ref(x).square().sum().backward()
    new(x).square().sum().backward()
    for (name, a), b in zip(ref.named_parameters(), new.parameters(), strict=True):
        torch.testing.assert_close(b.grad, a.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_state_dict_is_torchvisions() -> None:
    ref, new = pair(16, 4, (2, 2), grid=8)
    assert list(new.state_dict()) == list(ref.state_dict())  # the precomputed layout is not saved


def test_order_is_a_permutation_and_mask_blocks_wrapped_tokens() -> None:
    order = token_order(8, 8, (4, 4), (2, 2))
    assert sorted(order.tolist()) == list(range(64))
    assert order[0].item() == 2 * 8 + 2  # the first window starts at the shifted corner
    mask = shift_mask(8, 8, (4, 4), (2, 2))  # (4 windows, 16, 16)
    assert mask.shape == (4, 16, 16)
    assert (mask[0] == 0).all()  # the first window holds no wrapped-around token
    assert (mask[3] < 0).any() and torch.equal(mask[3], mask[3].T)
