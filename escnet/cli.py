"""``escnet-info``: a preset's parameters and FLOPs per graph, and one timed forward."""

from __future__ import annotations

import logging
import time

import typer

app = typer.Typer(add_completion=False, help="ESC-Net model information.")

PAPER_GFLOPS = 2203.5  # ESC-Net (ViT-B, paper, second-hand): GFLOPs of one inference
PAPER_CATSEG_GFLOPS = 2121.1  # CAT-Seg, the same source


@app.command()
def info(
    preset: str = typer.Option("vit-b16", help="Model preset: vit-b16, vit-l14 or tiny."),
    classes: int = typer.Option(150, min=1, help="Number of class names."),
    forward: bool = typer.Option(True, help="Also time one CPU forward pass at this class count."),
) -> None:
    """Print parameters and GFLOPs per graph (single view and sliding window)."""

    from . import build_model
    from .flops import catseg_costs, graph_costs, total_gflops

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        model = build_model(preset)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    costs = graph_costs(model, classes)
    cat = catseg_costs(model, costs, classes)
    c = model.config
    typer.echo(
        f"preset {preset}, {classes} classes, {c.num_templates} template(s), image {c.image_size}px; "
        f"{c.num_blocks} ESC blocks, {c.sam.depth}-layer SAM, {c.fusion.swin_depth} Swin block(s) each"
    )
    typer.echo(f"{'graph':<15}{'params (M)':>12}{'GFLOPs':>12}{'CAT-Seg eq.':>14}{'ratio':>8}")
    for ours, theirs in zip(costs, cat, strict=True):
        ratio = ours.gflops / theirs.gflops if theirs.gflops else float("nan")
        typer.echo(f"{ours.graph:<15}{ours.params / 1e6:>12.2f}{ours.gflops:>12.1f}{theirs.gflops:>14.1f}{ratio:>8.3f}")
    total_params = sum(p.numel() for p in model.parameters())
    typer.echo(f"{'total':<15}{total_params / 1e6:>12.2f}")
    for label, sliding in (("single view", False), ("sliding window", True)):
        ours, theirs = total_gflops(costs, sliding), total_gflops(cat, sliding)
        typer.echo(
            f"GFLOPs per image, {label}: ESC-Net {ours:.1f}, CAT-Seg equivalent {theirs:.1f}, ratio {ours / theirs:.3f}"
        )
    typer.echo(f"(paper, ViT-B: ESC-Net {PAPER_GFLOPS}, CAT-Seg {PAPER_CATSEG_GFLOPS}, ratio 1.04)")
    if forward:
        _time_forward(model, classes)


def _time_forward(model, classes: int) -> None:
    """One eager CPU forward of ESC-Net and of the CAT-Seg equivalent, on the same image and
    text embeddings (the text encoder is not timed: it is the same in both)."""
    import torch

    from . import ESCNetInputError
    from .catseg import CATSegDecoder

    names = [f"class {i}" for i in range(classes)]
    images = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    catseg = CATSegDecoder(model.config).eval()
    try:
        with torch.no_grad():
            text = model.embed_classes(names)
            times = []
            for decode in (model.decode, catseg):
                start = time.perf_counter()
                decode(*model.encode_image(images), text)
                times.append(time.perf_counter() - start)
    except ESCNetInputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"one CPU forward without the text encoder ({torch.get_num_threads()} threads): ESC-Net {times[0]:.2f} s, "
        f"CAT-Seg equivalent {times[1]:.2f} s, ratio {times[0] / times[1]:.2f}"
    )


def main() -> None:
    app()
