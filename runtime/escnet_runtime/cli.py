"""``escnet-segment``: segment images with an exported ESC-Net, without torch.

Per image, into --out: ``<stem>.labels.png`` (palette label map), ``<stem>.overlay.png`` (image
blended with class colours, with a legend) and ``<stem>.json`` (per-class pixel shares).
``--precompute`` only encodes the vocabulary into the text-embedding cache.
IMAGES may be files, folders (their images), glob patterns, or ``-`` (paths on stdin). Prints one
line per image (its outputs and top classes) and a summary; says so when the weights are random.
Bad input (images, class lists, artifacts, backends) prints one line on stderr and exits 2;
no file is written half. No existing file is replaced, and nothing is written into the artifacts
folder, without ``--overwrite`` (``output_rules.py``); each image is opened once.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from escnet_runtime.cache import CacheDamagedWarning, CacheWriteWarning
from escnet_runtime.errors import BackendError, InputError
from escnet_runtime.image_io import DEFAULT_MAX_PIXELS, check_image_path, load_image
from escnet_runtime.image_list import expand_images, image_line, summary_line
from escnet_runtime.manifest import ManifestError
from escnet_runtime.options import check_writable_folder
from escnet_runtime.output_rules import WriteRules, is_own_vocabulary
from escnet_runtime.outputs import OutputPaths, write_outputs
from escnet_runtime.vocabulary import ClassNameTruncatedWarning, check_class_names, parse_class_list

if TYPE_CHECKING:
    from escnet_runtime.segmenter import Segmenter

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


@dataclass(frozen=True)
class SegmentOptions:
    """What ``escnet-segment`` was asked to do (the command line's options, as given)."""

    images: list[Path]
    artifacts: Path
    classes: str | None
    classes_file: Path | None
    out: Path
    backend: str = "ort-cpu"
    sliding_window: bool = False
    cache_dir: Path | None = None
    disk_cache: bool = True
    precompute: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_size: int = 1
    class_chunk: int | None = None
    ov_cache: str | None = None
    vocab_out: Path | None = None
    overwrite: bool = False  # replace existing outputs; write into the artifacts folder (never over its files)


def preflight(images: list[Path], out: Path, rules: WriteRules) -> list[OutputPaths]:
    """Cheap checks on every image before any work: a file that exists; outputs unique and allowed.

    Each image is opened once, later, when it is segmented (``load_image`` checks its size
    before decoding it).
    """
    seen: dict[Path, Path] = {}
    paths = []
    if images:
        rules.check_folder(out, "--out")
    for image in images:
        check_image_path(image)
        p = OutputPaths.for_image(out, image)
        if p.labels in seen:
            raise InputError(f"{image} and {seen[p.labels]} would write the same outputs in {out}; rename one")
        seen[p.labels] = image
        rules.check_outputs(*p.all())
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


def _ov_options(backend: str, ov_cache: str | None) -> dict[str, object]:
    """OpenVINO's compiled-model cache: a writable folder, "off", or None (the default folder)."""
    if ov_cache is None:
        return {}
    if not backend.startswith("ov-"):
        raise InputError(f"--ov-cache is an OpenVINO option; backend {backend!r} has no compiled-model cache")
    if ov_cache == "off":
        return {"model_cache": False}
    check_writable_folder(Path(ov_cache), "--ov-cache")
    return {"model_cache_dir": Path(ov_cache)}


def _plan(opts: SegmentOptions) -> tuple[list[str], list[Path], list[OutputPaths], dict[str, object]]:
    """Every check that needs no model: classes, images, options, where outputs go."""
    names = check_class_names(read_classes(opts.classes, opts.classes_file))
    images = expand_images(opts.images)  # folders, globs and "-" (paths on stdin) -> files
    if not images and not opts.precompute:
        raise InputError("no images given (or use --precompute to only fill the text-embedding cache)")
    if images and opts.precompute:
        raise InputError(f"--precompute only fills the text-embedding cache; it takes no images (got {len(images)})")
    backend_options = _ov_options(opts.backend, opts.ov_cache)
    rules = WriteRules(opts.artifacts, images, opts.overwrite)
    if opts.vocab_out is not None:
        rules.check_file(opts.vocab_out, "--vocab-out", ours=is_own_vocabulary(opts.vocab_out))
    return names, images, preflight(images, opts.out, rules), backend_options


def _vocabulary(seg: Segmenter, names: list[str], opts: SegmentOptions, bar: Progress) -> None:
    """Encode the classes (progress on the bar), and write them as a vocabulary file if asked."""
    task = bar.add_task("text embeddings", total=None)
    seg.set_vocabulary(names, progress=lambda done, total: bar.update(task, completed=done, total=total))
    bar.update(task, completed=1, total=1)
    if opts.vocab_out is not None:
        from escnet_runtime.vocab_file import vocabulary_of, write_vocabulary

        write_vocabulary(opts.vocab_out, vocabulary_of(seg, names))
        err.print(f"escnet-segment: wrote the vocabulary file {opts.vocab_out} ({len(names)} classes)")


def _segment_all(seg: Segmenter, jobs: list[tuple[Path, OutputPaths]], opts: SegmentOptions, bar: Progress) -> int:
    """Segment and write each image; a bad image is one line and the next is still tried. Returns failures."""
    task = bar.add_task("images", total=len(jobs))
    meta = {"backend": opts.backend, "sliding_window": opts.sliding_window}
    meta["weights"] = seg.manifest.weights_provenance().to_dict()
    failures = 0
    for image, paths in jobs:
        try:
            array = load_image(image, opts.max_pixels, check_path=False)  # path checked above; size before decoding
            result = seg.segment(array, sliding_window=opts.sliding_window)
            write_outputs(paths, array, result, {"image": str(image), **meta})
            print(image_line(image, paths.all(), result.shares()), flush=True)
        except InputError as e:  # OutputError too: the next images are still tried
            _say("error", str(e))
            failures += 1
        bar.advance(task)
    return failures


def run(opts: SegmentOptions) -> int:
    """The command's work; raises InputError / ManifestError / BackendError for user mistakes."""
    from escnet_runtime.segmenter import Segmenter  # after argument checks: onnxruntime loads here

    names, images, outputs, backend_options = _plan(opts)
    with Segmenter(
        opts.artifacts,
        backend=opts.backend,
        cache_dir=opts.cache_dir,
        disk_cache=opts.disk_cache,
        batch_size=opts.batch_size,
        class_chunk=opts.class_chunk,
        max_pixels=opts.max_pixels,
        **backend_options,
    ) as seg:
        notice = seg.manifest.weights_provenance().notice()
        if notice:
            _say("note", notice)
        if images:
            make_out_dir(opts.out)
        t0 = time.perf_counter()
        with _progress() as bar:
            _vocabulary(seg, names, opts, bar)
            if opts.precompute:
                where = seg.cache.directory or "memory only"
                new = seg.cache.stats.disk_writes
                err.print(f"escnet-segment: {len(names)} classes cached ({new} new entries) in {where}")
                return 0
            failures = _segment_all(seg, list(zip(images, outputs, strict=True)), opts, bar)
    if failures and len(images) > 1:
        _say("error", f"{failures} of {len(images)} images failed (see above); the others were written")
    print(summary_line(len(images) - failures, failures, time.perf_counter() - t0, opts.out), flush=True)
    return EXIT_USER_ERROR if failures else 0


_REPORTED_WARNINGS = (ClassNameTruncatedWarning, CacheWriteWarning, CacheDamagedWarning)


def _run_reporting(opts: SegmentOptions) -> int:
    """``run`` with every outcome as one line on stderr: user mistakes exit 2, bugs 1."""
    with warnings.catch_warnings(record=True) as caught:
        for category in _REPORTED_WARNINGS:
            warnings.simplefilter("always", category)
        try:
            return run(opts)
        except (InputError, ManifestError, BackendError) as e:
            _say("error", str(e))
            return EXIT_USER_ERROR
        except MemoryError:
            _say("error", "out of memory (a smaller --class-chunk or --batch-size, or a smaller image)")
            return EXIT_USER_ERROR
        except Exception as e:  # a bug: still one line, and a distinct exit code
            _say("internal error", f"{type(e).__name__}: {e}")
            return EXIT_INTERNAL
        finally:
            for w in caught:
                if issubclass(w.category, _REPORTED_WARNINGS):
                    _say("warning", str(w.message))


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
    overwrite: Annotated[
        bool, typer.Option(help="replace existing output files; allow writing into the artifacts folder")
    ] = False,
) -> None:
    """Segment IMAGES with the given classes; writes label and overlay PNGs and a JSON per image."""
    opts = SegmentOptions(
        list(images or []), artifacts, classes, classes_file, out, backend, sliding_window,
        cache_dir, disk_cache, precompute, max_pixels, batch_size, class_chunk, ov_cache, vocab_out, overwrite,
    )  # fmt: skip
    raise typer.Exit(_run_reporting(opts))


def main() -> None:
    from escnet_runtime.cli_usage import run_app

    run_app(app, "escnet-segment")
