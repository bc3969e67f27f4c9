"""``escnet-info``: a preset's parameters and FLOPs per graph, and one timed forward."""

from __future__ import annotations

import logging
import time

import typer

app = typer.Typer(add_completion=False, help="ESC-Net model information.")

PAPER_GFLOPS = 2203.5  # ESC-Net (ViT-B, paper, second-hand): GFLOPs of one inference
PAPER_CATSEG_GFLOPS = 2121.1  # CAT-Seg, the same source
# FLOPs are counted class chunk by class chunk on a meta-device twin: ~10-30 ms a class on a CPU, so
# 4096 classes take one to two minutes.
MAX_CLASSES = 4096
MAX_ROUNDS = 100
# The timed eager forwards' work, estimated before they start: 100 TFLOPs is ~17 min at 100 GFLOP/s
# (vit-b16's default, 150 classes and 3 rounds, is ~5.2).
MAX_FORWARD_TFLOPS = 100.0


@app.command()
def info(
    preset: str = typer.Option("vit-b16", help="Model preset: vit-b16, vit-l14 or tiny."),
    classes: int = typer.Option(150, min=1, max=MAX_CLASSES, help="Number of class names."),
    forward: bool = typer.Option(True, help="Also time eager CPU forwards at this class count."),
    rounds: int = typer.Option(
        3, min=1, max=MAX_ROUNDS, help="Timed rounds of the forward comparison (after one warm-up)."
    ),
) -> None:
    """Print parameters and GFLOPs per graph (single view and sliding window)."""

    from . import build_model
    from .flops import catseg_costs, forward_gflops_estimate, graph_costs, total_gflops

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        model = build_model(preset)
    except ValueError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if forward and (tflops := forward_gflops_estimate(model, classes, rounds) / 1000) > MAX_FORWARD_TFLOPS:
        typer.echo(
            f"error: the timed forwards ({preset}, --classes {classes}, --rounds {rounds}) would compute about "
            f"{tflops:.0f} TFLOPs, over the {MAX_FORWARD_TFLOPS:.0f} TFLOPs limit; pass --no-forward, or fewer "
            "--classes or --rounds",
            err=True,
        )
        raise typer.Exit(2)
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
        _time_forward(model, classes, rounds)


def _time_forward(model, classes: int, rounds: int) -> None:
    """Eager CPU forwards of ESC-Net and of the CAT-Seg equivalent on the same image and text
    embeddings (the text encoder is not timed: it is the same in both): one untimed warm-up each,
    then ``rounds`` rounds alternating the two; the ratio is the median of per-round ratios
    (the machine is shared: a ratio taken side by side survives its load better than seconds)."""
    import statistics

    import torch

    from . import ESCNetInputError
    from .modeling.catseg import CATSegDecoder

    names = [f"class {i}" for i in range(classes)]
    images = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    catseg = CATSegDecoder(model.config).eval()
    times: dict[str, list[float]] = {"ESC-Net": [], "CAT-Seg equivalent": []}
    try:
        with torch.no_grad():
            text = model.embed_classes(names)
            for round_ in range(rounds + 1):  # round 0 is the warm-up
                for name, decode in (("ESC-Net", model.decode), ("CAT-Seg equivalent", catseg)):
                    start = time.perf_counter()
                    decode(*model.encode_image(images), text)
                    if round_:
                        times[name].append(time.perf_counter() - start)
    except ESCNetInputError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    ours, theirs = times["ESC-Net"], times["CAT-Seg equivalent"]
    ratio = statistics.median(a / b for a, b in zip(ours, theirs, strict=True))
    typer.echo(
        f"eager CPU forward without the text encoder ({torch.get_num_threads()} threads, median of {rounds} "
        f"alternating rounds after a warm-up): ESC-Net {statistics.median(ours):.2f} s, CAT-Seg equivalent "
        f"{statistics.median(theirs):.2f} s, ratio {ratio:.2f} (paper's third-party figure: 1.12)"
    )


def main() -> None:
    from .cli_usage import run_app

    run_app(app, "escnet-info")
