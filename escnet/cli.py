"""``escnet-info``: a preset's parameters and FLOPs per graph, and one timed forward."""

from __future__ import annotations

import logging
import time

import typer

app = typer.Typer(add_completion=False, help="ESC-Net model information.")

PAPER_GFLOPS = 2203.5  # ESC-Net (ViT-B, paper, second-hand): GFLOPs of one inference


@app.command()
def info(
    preset: str = typer.Option("vit-b16", help="Model preset: vit-b16, vit-l14 or tiny."),
    classes: int = typer.Option(150, min=1, help="Number of class names."),
    forward: bool = typer.Option(True, help="Also time one CPU forward pass at this class count."),
) -> None:
    """Print parameters and GFLOPs per graph (single view and sliding window)."""
    import torch

    from . import ESCNetInputError, build_model
    from .flops import graph_costs, total_gflops

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        model = build_model(preset)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    costs = graph_costs(model, classes)
    typer.echo(
        f"preset {preset}, {classes} classes, {model.config.num_templates} template(s), "
        f"image {model.config.image_size}px"
    )
    typer.echo(f"{'graph':<15}{'params (M)':>12}{'GFLOPs':>12}")
    for c in costs:
        typer.echo(f"{c.graph:<15}{c.params / 1e6:>12.2f}{c.gflops:>12.1f}")
    total_params = sum(p.numel() for p in model.parameters())
    typer.echo(f"{'total':<15}{total_params / 1e6:>12.2f}")
    single, sliding = total_gflops(costs, False), total_gflops(costs, True)
    typer.echo(
        f"GFLOPs per image: single view {single:.1f}, sliding window {sliding:.1f} (paper, ESC-Net: {PAPER_GFLOPS})"
    )
    if forward:
        names = [f"class {i}" for i in range(classes)]
        images = torch.randn(1, 3, model.config.image_size, model.config.image_size)
        try:
            with torch.no_grad():
                start = time.perf_counter()
                model(images, names)
                elapsed = time.perf_counter() - start
        except ESCNetInputError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(2) from None
        typer.echo(f"one CPU forward ({torch.get_num_threads()} threads): {elapsed:.2f} s")


def main() -> None:
    from .cli_usage import run_app

    run_app(app, "escnet-info")
