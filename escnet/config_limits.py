"""Limits on what a config makes the model compute, derived from that cost (no weights involved).

The size of the weights a checkpoint's config implies is bounded by the file itself (the header's
shapes are checked before anything is allocated). These fields cost work and memory without
any weight, so a small file could still ask for hours or gigabytes: they are bounded here.

Costs per class and ESC block, with h*w = grid**2 pixels and K = ``prompt.num_regions``: the
pseudo prompt generator holds (h*w, K) distances and assignments, makes K farthest-point steps
over the h*w pixels and ``kmeans_iters`` passes over the (h*w, K) distances; both loops are
unrolled in the exported graph (about ten nodes a step, per block), and the K points are SAM's
sparse prompt tokens. CLIP attends over grid**2 + 1 tokens.
"""

from __future__ import annotations

from collections.abc import Iterator

from .config import ESCNetConfig

MAX_REGIONS = 64  # K: k-means regions = SAM point tokens per class (the paper's N_o is 5)
MAX_KMEANS_ITERS = 100  # the paper's fixed count is 10; k-means over <= h*w pixels settles far sooner
MAX_OUTPUT_TOKENS = 64  # sam.num_mask_tokens: tokens per class ahead of the points (SAM has 4)
MAX_TEMPLATES = 256  # each template is one text-encoder pass per class (CLIP's ImageNet set has 80)
MAX_GRID = 64  # image_size / patch_size: 4097 tokens, one 12-head attention map is 0.8 GB (float32)
# h*w * K * (K + kmeans_iters) element operations per class and block: 43k for the presets (5 regions,
# 10 iterations, 24x24), 6.0M at 64 regions and 100 iterations on 24x24; at this limit 847 classes,
# 2 blocks and 5 sliding views take ~1.4e11 (tens of seconds on a CPU); with MAX_GRID and MAX_REGIONS
# the generator's tensors for a 32-class chunk stay within ~0.2 GB.
MAX_PROMPT_WORK = 1 << 24


def prompt_work(config: ESCNetConfig) -> int:
    """Element operations of one class's pseudo prompts in one ESC block: h*w * K * (K + iters)."""
    regions = config.prompt.num_regions
    return config.grid**2 * regions * (regions + config.prompt.kmeans_iters)


def cost_problems(config: ESCNetConfig) -> Iterator[str]:
    """One line per cost over its limit (the fields' own ranges are checked before this)."""
    c, grid = config, config.grid
    if grid > MAX_GRID:
        yield (
            f"image_size / clip.patch_size = {c.image_size} / {c.clip.patch_size} = a {grid}x{grid} grid, "
            f"over the {MAX_GRID}x{MAX_GRID} limit (CLIP attends over every grid cell)"
        )
        return
    if c.prompt.num_regions > grid**2:
        yield f"prompt.num_regions = {c.prompt.num_regions} is more than the {grid}x{grid} grid's {grid**2} pixels"
    work = prompt_work(c)
    if work > MAX_PROMPT_WORK:
        yield (
            f"pseudo prompt cost grid**2 * prompt.num_regions * (prompt.num_regions + prompt.kmeans_iters) = "
            f"{grid**2} * {c.prompt.num_regions} * {c.prompt.num_regions + c.prompt.kmeans_iters} = {work} "
            f"is over the limit {MAX_PROMPT_WORK}"
        )
