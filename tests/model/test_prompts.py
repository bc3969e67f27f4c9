import torch

from escnet.config import PromptConfig
from escnet.modeling.pseudo_prompts import PseudoPromptGenerator


def _blob(h, w, cy, cx, r):
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return (((y - cy) ** 2 + (x - cx) ** 2) <= r * r).float()


def _to_grid(points, h, w):
    """normalised (x, y) pixel centres -> integer (row, col)."""
    col = (points[..., 0] * w - 0.5).round().long()
    row = (points[..., 1] * h - 0.5).round().long()
    return row, col


def test_points_land_in_each_of_two_separated_blobs():
    h = w = 24
    a, b = _blob(h, w, 5, 5, 3), _blob(h, w, 18, 17, 3)
    prob = (0.9 * a + 0.8 * b + 0.05).clamp(max=1.0)[None]  # (1, h, w)
    gen = PseudoPromptGenerator(PromptConfig(num_regions=5, kmeans_iters=10))
    points, mask = gen(prob.log())
    assert points.shape == (1, 5, 2) and mask.shape == (1, 1, h, w)
    row, col = _to_grid(points[0], h, w)
    inside_a = a[row, col].bool()
    inside_b = b[row, col].bool()
    assert bool((inside_a | inside_b).all()), "every point must lie on the foreground"
    assert inside_a.any() and inside_b.any(), "both blobs must get a point"
    # mask prompt: SAM's mask input is logits: logit(p), clipped, positive on the foreground only
    torch.testing.assert_close(mask[0, 0], torch.logit(prob[0], eps=0.01), rtol=0, atol=1e-5)
    assert torch.equal(mask[0, 0] > 0, (a + b) > 0)


def test_empty_class_falls_back_to_argmax_pixel():
    h = w = 16
    prob = torch.full((1, h, w), 0.1)
    prob[0, 3, 11] = 0.4  # below alpha: no foreground, but the class's best pixel
    points, mask = PseudoPromptGenerator(PromptConfig())(prob.log())
    row, col = _to_grid(points[0], h, w)
    assert row.tolist() == [3] * 5 and col.tolist() == [11] * 5
    assert bool((mask < 0).all())  # no foreground: negative logits everywhere


def test_fewer_foreground_pixels_than_regions():
    prob = torch.zeros(1, 8, 8)
    prob[0, 2, 2] = 0.9
    prob[0, 6, 5] = 0.7
    points = PseudoPromptGenerator(PromptConfig(num_regions=5)).points(prob)
    row, col = _to_grid(points[0], 8, 8)
    assert set(zip(row.tolist(), col.tolist(), strict=True)) == {(2, 2), (6, 5)}


def test_same_input_same_prompts_and_batch_independent():
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(6, 12, 12, generator=g)
    gen = PseudoPromptGenerator(PromptConfig())
    p1, m1 = gen(prob.log())
    p2, m2 = gen(prob.clone().log())
    assert torch.equal(p1, p2) and torch.equal(m1, m2)
    p3, _ = gen(prob[2:3].log())
    assert torch.equal(p3[0], p1[2])


def test_rounding_noise_does_not_move_the_points():
    """A saturated class: many pixels at 1.0 or one ulp below. Float rounding of another backend
    (or of chunked classes) flips which of them is largest; the points must not move."""
    h = w = 24
    gen = PseudoPromptGenerator(PromptConfig())
    g = torch.Generator().manual_seed(0)
    blob = _blob(h, w, 12, 9, 6)
    below_one = torch.nextafter(torch.tensor(1.0), torch.tensor(0.0))
    prob = torch.where(torch.rand(h, w, generator=g) < 0.5, torch.tensor(1.0), below_one) * blob
    prob = (prob + 0.2 * torch.rand(h, w, generator=g) * (1 - blob))[None]  # (1, h, w)
    flipped = torch.where(prob == 1.0, below_one, torch.where(prob == below_one, torch.tensor(1.0), prob))
    points, points_flipped = gen.points(prob), gen.points(flipped)
    torch.testing.assert_close(points, points_flipped, rtol=0, atol=0)
    # Rounding to steps of 1/rank_levels still prefers a clearly more probable pixel.
    peaked = prob.clone()
    peaked[0, blob.bool()] = torch.minimum(peaked[0, blob.bool()], torch.tensor(0.9))
    peaked[0, 15, 6] = 1.0
    best = PseudoPromptGenerator(PromptConfig(num_regions=1)).points(peaked)
    row, col = _to_grid(best[0], h, w)
    assert (int(row[0]), int(col[0])) == (15, 6)
