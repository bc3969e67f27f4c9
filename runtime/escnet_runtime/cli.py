"""``escnet-segment``: segment images with an exported ESC-Net, without torch.

Per image, into --out: ``<stem>.labels.png`` (palette label map), ``<stem>.overlay.png`` (image
blended with class colours, with a legend) and ``<stem>.json`` (per-class pixel shares).
``--precompute`` only encodes the vocabulary into the text-embedding cache.
IMAGES may be files, folders (their images), glob patterns, or ``-`` (paths on stdin). Prints one
line per image (its outputs and top classes) and a summary; says so when the weights are random.
Bad input (images, class lists, artifacts, backends) prints one line on stderr and exits 2;
no file is written half.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image, UnidentifiedImageError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from escnet_runtime.cache import CacheDamagedWarning, CacheWriteWarning
from escnet_runtime.errors import BackendError, InputError
from escnet_runtime.image_io import DEFAULT_MAX_PIXELS, check_image_path, load_image
from escnet_runtime.image_list import expand_images, image_line, summary_line
from escnet_runtime.manifest import ManifestError
from escnet_runtime.outputs import OutputPaths, write_outputs
from escnet_runtime.vocabulary import ClassNameTruncatedWarning, parse_class_list

EXIT_USER_ERROR = 2
EXIT_INTERNAL = 1

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=__doc__)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def _say(kind: str, message: str) -> None:
    err.print(f"escnet-segment: {kind}: {' '.join(str(message).split())}", markup=False)


def read_classes(classes: str | None, classes_file: Path | None) -> list[str]:
    """Exactly one of --classes "a,b" and --classes-file (one name per line; blank lines skipped)."""
    if (classes is None) == (classes_file is None):
        raise InputError('give exactly one of --classes "a,b,c" and --classes-file FILE')
    if classes is not None:
        return parse_class_list(classes)
    assert classes_file is not None
    try:
        text = classes_file.read_text(encoding="utf-8-sig")  # a UTF-8 BOM is not part of the first name
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{classes_file}: cannot read the class list ({type(e).__name__})") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def preflight(images: list[Path], out: Path, max_pixels: int) -> list[OutputPaths]:
    """Cheap checks on every image before any work: exists, is an image, not too large; unique outputs."""
    seen: dict[Path, Path] = {}
    paths = []
    for image in images:
        check_image_path(image)
        try:
            Image.MAX_IMAGE_PIXELS, old = None, Image.MAX_IMAGE_PIXELS
            with Image.open(image) as img:
                w, h = img.size
        except UnidentifiedImageError:
            raise InputError(f"{image}: not an image Pillow can read") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise InputError(f"{image}: damaged image ({e})") from None
        finally:
            Image.MAX_IMAGE_PIXELS = old
        if w * h > max_pixels:
            raise InputError(
                f"{image}: image is {w}x{h} ({w * h / 1e6:.0f} Mpx), over the limit of {max_pixels / 1e6:.0f} Mpx "
                "(raise it with --max-pixels if memory allows)"
            )
        p = OutputPaths.for_image(out, image)
        if p.labels in seen:
            raise InputError(f"{image} and {seen[p.labels]} would write the same outputs in {out}; rename one")
        seen[p.labels] = image
        paths.append(p)
    return paths


def make_out_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the output folder {out} ({e.strerror or e})") from None
    if not os.access(out, os.W_OK):
        raise InputError(f"cannot write to the output folder {out}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    )


def run(
    images: list[Path],
    artifacts: Path,
    classes: str | None,
    classes_file: Path | None,
    out: Path,
    backend: str,
    sliding_window: bool,
    cache_dir: Path | None,
    disk_cache: bool,
    precompute: bool,
    max_pixels: int,
    batch_size: int,
    class_chunk: int | None = None,
    ov_cache: str | None = None,
    vocab_out: Path | None = None,
) -> int:
    """The command's work; raises InputError / ManifestError / BackendError for user mistakes."""
    from escnet_runtime.segmenter import Segmenter  # after argument checks: onnxruntime loads here

    names = read_classes(classes, classes_file)
    images = expand_images(images)  # folders, globs and "-" (paths on stdin) -> files
    if not images and not precompute:
        raise InputError("no images given (or use --precompute to only fill the text-embedding cache)")
    if images and precompute:
        raise InputError(f"--precompute only fills the text-embedding cache; it takes no images (got {len(images)})")
    outputs = preflight(images, out, max_pixels)
    seg = Segmenter(
        artifacts,
        backend=backend,
        cache_dir=cache_dir,
        disk_cache=disk_cache,
        batch_size=batch_size,
        class_chunk=class_chunk,
        **_ov_options(backend, ov_cache),
    )
    provenance = seg.manifest.weights_provenance()
    if provenance.notice():
        _say("note", str(provenance.notice()))
    if images:
        make_out_dir(out)
    with _progress() as bar:
        task = bar.add_task("text embeddings", total=None)
        seg.set_vocabulary(names, progress=lambda done, total: bar.update(task, completed=done, total=total))
        bar.update(task, completed=1, total=1)
        if vocab_out is not None:
            from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary

            write_vocabulary(vocab_out, vocabulary_of(seg, names))
            err.print(f"escnet-segment: wrote the vocabulary file {vocab_out} ({len(names)} classes)")
        if precompute:
            stats = seg.cache.stats
            where = seg.cache.directory or "memory only"
            err.print(f"escnet-segment: {len(names)} classes cached ({stats.disk_writes} new entries) in {where}")
            return 0
        task = bar.add_task("images", total=len(images))
        failures, t0 = 0, time.perf_counter()
        for image, paths in zip(images, outputs, strict=True):
            try:
                array = load_image(image, max_pixels)
                result = seg.segment(array, sliding_window=sliding_window)
                meta = {"image": str(image), "backend": backend, "sliding_window": sliding_window}
                meta["weights"] = provenance.to_dict()
                write_outputs(paths, array, result, meta)
                print(image_line(image, paths.all(), result.shares()), flush=True)
            except InputError as e:  # OutputError too: the next images are still tried
                _say("error", str(e))
                failures += 1
            bar.advance(task)
    if failures and len(images) > 1:
        _say("error", f"{failures} of {len(images)} images failed (see above); the others were written")
    print(summary_line(len(images) - failures, failures, time.perf_counter() - t0, out), flush=True)
    return EXIT_USER_ERROR if failures else 0


def _ov_options(backend: str, ov_cache: str | None) -> dict[str, object]:
    """OpenVINO's compiled-model cache: a folder, "off", or None (the default folder)."""
    if ov_cache is None:
        return {}
    if not backend.startswith("ov-"):
        raise InputError(f"--ov-cache is an OpenVINO option; backend {backend!r} has no compiled-model cache")
    return {"model_cache": False} if ov_cache == "off" else {"model_cache_dir": Path(ov_cache)}


@app.command()
def segment(
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="image files, folders, glob patterns, or - (paths on stdin)", show_default=False),
    ] = None,
    artifacts: Annotated[Path, typer.Option(help="artifacts folder written by `escnet-export onnx`")] = Path(
        "artifacts"
    ),
    classes: Annotated[str | None, typer.Option(help='comma-separated class names, e.g. "cat,grass,sky"')] = None,
    classes_file: Annotated[Path | None, typer.Option(help="file with one class name per line")] = None,
    out: Annotated[Path, typer.Option(help="output folder")] = Path("segments"),
    backend: Annotated[str, typer.Option(help="ort-cpu, ort-cuda, ort-trt, trt, ov-cpu or ov-cpu-bf16")] = "ort-cpu",
    sliding_window: Annotated[bool, typer.Option(help="CAT-Seg sliding windows + a global view")] = False,
    cache_dir: Annotated[Path | None, typer.Option(help="text-embedding cache (default ~/.cache/escnet)")] = None,
    disk_cache: Annotated[bool, typer.Option(help="keep text embeddings on disk between runs")] = True,
    precompute: Annotated[bool, typer.Option(help="only encode the classes into the cache")] = False,
    max_pixels: Annotated[int, typer.Option(help="refuse larger images")] = DEFAULT_MAX_PIXELS,
    batch_size: Annotated[int, typer.Option(help="views per encoder/decoder call (memory grows with it)")] = 1,
    class_chunk: Annotated[
        int | None,
        typer.Option(help="classes per decoder call; larger vocabularies run in chunks (default: the manifest's)"),
    ] = None,
    ov_cache: Annotated[
        str | None,
        typer.Option(help="OpenVINO compiled-model cache folder, or 'off' (default ~/.cache/escnet/openvino)"),
    ] = None,
    vocab_out: Annotated[
        Path | None, typer.Option(help="also write the class embeddings as a vocabulary file (for the C++ runtime)")
    ] = None,
) -> None:
    """Segment IMAGES with the given classes; writes label and overlay PNGs and a JSON per image."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ClassNameTruncatedWarning)
        warnings.simplefilter("always", CacheWriteWarning)
        warnings.simplefilter("always", CacheDamagedWarning)
        try:
            code = run(
                list(images or []), artifacts, classes, classes_file, out, backend, sliding_window,
                cache_dir, disk_cache, precompute, max_pixels, batch_size, class_chunk, ov_cache, vocab_out,
            )  # fmt: skip
        except (InputError, ManifestError, BackendError) as e:
            _say("error", str(e))
            code = EXIT_USER_ERROR
        except MemoryError:
            _say("error", "out of memory (a smaller --class-chunk or --batch-size, or a smaller image)")
            code = EXIT_USER_ERROR
        except Exception as e:  # a bug: still one line, and a distinct exit code
            _say("internal error", f"{type(e).__name__}: {e}")
            code = EXIT_INTERNAL
        finally:
            for w in caught:
                if issubclass(w.category, ClassNameTruncatedWarning | CacheWriteWarning | CacheDamagedWarning):
                    _say("warning", str(w.message))
    raise typer.Exit(code)


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-segment")
