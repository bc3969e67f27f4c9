"""Class names in, from C++ (Segmenter::set_classes through the C API, driven by ctypes): token ids
equal the Python tokenizer's on names of every kind, except where Python's ftfy repairs a string
(C++ does not follow it, docs/cpp.md); the text encoder on the same engine gives the Python
runtime's scores (max-abs <= 1e-4) and labels (>= 99.9 %)."""

import ctypes
import dataclasses
import html
import re

import numpy as np
import pytest
from escnet_runtime import Segmenter
from escnet_runtime.tokenizer import ClipTokenizer, clean_text
from escnet_runtime.vocab_file import read_vocabulary, write_vocabulary
from support.artifacts import tiny_artifacts

OK, BAD_INPUT = 0, 2
ASCII = [
    "sky",
    "grass",
    "wall",
    "person",
    "a red car parked on the street",
    "traffic light",
    "Fire Hydrant",
    "TV",
    "road",
    "floor",
    "building",
    "tree",
    "ceiling",
    "bed",
    "windowpane",
    "cabinet",
    "sidewalk",
    "mountain",
]
ACCENTED = ["café", "Zürich", "naïve", "crème brûlée", "ÅNGSTRÖM", "straße", "İstanbul", "São Paulo", "smørrebrød"]
SCRIPTS = ["東京タワー", "犬", "日本語のテキスト", "Ελληνικά", "русский", "العربية", "हिन्दी", "한국어", "ภาษาไทย"]
DIGITS = ["42nd street", "3.14 pies", "1234567890", "mixed123abc", "route 66", "٣ arabic digit", "²nd"]
PUNCT = [
    "!!!",
    "don't",
    "it's",
    "rock'n'roll",
    "e-mail",
    "C++",
    "a/b",
    "(parens)",
    "semi;colon",
    "<start_of_text>",
    "  spaced   out  ",
    "tab\there",
    "new\nline",
    "x" * 300,
]
EMOJI = ["😀 smile", "👍🏽", "🇫🇷 flag", "family 👨‍👩‍👧", "❤️ heart"]
ENTITIES = ["fish &amp; chips", "a &#233;t&#xE9;", "&lt;tag&gt;", "&quot;quoted&quot;", "caf&eacute;", "&nbsp;gap"]
MOJIBAKE = ["cafÃ©", "â€œquotedâ€\x9d", "Ã¼ber"]  # ftfy repairs these; C++ does not
NAMES = ASCII + ACCENTED + SCRIPTS + DIGITS + PUNCT + EMOJI + ENTITIES + MOJIBAKE  # fmt: skip
BASIC = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6});")


@pytest.fixture(scope="module")
def lib(cpp_build):
    lib = ctypes.CDLL(str(cpp_build / "libescnet.so"))
    lib.escnet_last_error.restype = ctypes.c_char_p
    lib.escnet_segmenter_create.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    lib.escnet_segmenter_destroy.argtypes = [ctypes.c_void_p]
    lib.escnet_segmenter_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t,
                                              ctypes.c_void_p]  # fmt: skip
    lib.escnet_segmenter_set_classes.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t]
    image = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_void_p]
    lib.escnet_segmenter_segment_scores.argtypes = [*image, ctypes.c_void_p]
    return lib


@pytest.fixture(scope="module")
def segmenter(lib, tmp_path_factory):
    artifacts, _ = tiny_artifacts(tmp_path_factory)
    handle = ctypes.c_void_p()
    assert lib.escnet_segmenter_create(str(artifacts).encode(), None, ctypes.byref(handle)) == OK, (
        lib.escnet_last_error()
    )
    yield artifacts, handle
    lib.escnet_segmenter_destroy(handle)


def _cleaned_as_cpp_does(name: str) -> str:
    """The C++ cleaning: no ftfy, only the basic and numeric HTML entities (twice), white space, lower-case."""

    def unescape(text: str) -> str:
        return BASIC.sub(lambda m: html.unescape(m.group(0)), text)

    return " ".join(unescape(unescape(name)).split()).lower()


def test_token_ids_equal_the_python_tokenizer(lib, segmenter):
    artifacts, handle = segmenter
    tok = ClipTokenizer.from_manifest(artifacts, Segmenter(artifacts, disk_cache=False).manifest)
    differ = []
    for name in NAMES:
        ids = np.zeros(tok.context_length, np.int64)
        assert lib.escnet_segmenter_tokenize(handle, name.encode(), ids.ctypes.data, ids.size, None) == OK
        if not np.array_equal(ids, tok.tokenize([name]).ids[0]):
            differ.append(name)
    expected = [n for n in NAMES if clean_text(n) != _cleaned_as_cpp_does(n)]  # where ftfy or HTML5 entities act
    assert differ == expected, f"{len(NAMES)} names, {len(differ)} differ: {differ}"
    assert set(MOJIBAKE) <= set(differ) and not set(differ) & set(ASCII + SCRIPTS + DIGITS + EMOJI)


def test_class_names_give_the_python_runtimes_scores(lib, segmenter):
    artifacts, handle = segmenter
    names = ["sky", "grass", "café", "東京タワー", "42nd street", "😀 smile", "rock'n'roll"]
    encoded = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
    assert lib.escnet_segmenter_set_classes(handle, encoded, len(names)) == OK, lib.escnet_last_error()
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(names)
    for i, (h, w) in enumerate(((64, 90), (128, 128))):
        array = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        labels, scores = np.zeros((h, w), np.int32), np.zeros((len(names), h, w), np.float32)
        status = lib.escnet_segmenter_segment_scores(handle, array.ctypes.data, h, w, w * 3, labels.ctypes.data,
                                                     scores.ctypes.data)  # fmt: skip
        assert status == OK, lib.escnet_last_error()
        want = seg.segment(array, return_scores=True)
        assert float(np.abs(scores - want.scores).max()) <= 1e-4
        assert np.mean(labels == want.labels) >= 0.999
    twice = (ctypes.c_char_p * 2)(b"sky", b" Sky ")
    assert lib.escnet_segmenter_set_classes(handle, twice, 2) == BAD_INPUT
    assert b"duplicate class name" in lib.escnet_last_error()
    assert lib.escnet_segmenter_set_classes(handle, None, 0) == BAD_INPUT


def test_encoded_classes_saved_as_a_vocabulary_file_both_runtimes_read(lib, segmenter, tmp_path):
    artifacts, handle = segmenter
    lib.escnet_segmenter_save_vocabulary.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.escnet_segmenter_set_vocabulary.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    names = ["sky", "straße", "犬"]
    encoded = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
    assert lib.escnet_segmenter_set_classes(handle, encoded, len(names)) == OK, lib.escnet_last_error()
    saved = tmp_path / "cache.escvocab"
    assert lib.escnet_segmenter_save_vocabulary(handle, str(saved).encode()) == OK, lib.escnet_last_error()
    assert [p.name for p in tmp_path.iterdir()] == ["cache.escvocab"]  # no temporary file left
    seg = Segmenter(artifacts, disk_cache=False)
    vocab = read_vocabulary(saved, seg.manifest)
    assert vocab.class_names == tuple(names)
    assert float(np.abs(vocab.embeddings - seg.encode_vocabulary(names)).max()) <= 1e-4
    assert lib.escnet_segmenter_set_vocabulary(handle, str(saved).encode()) == OK, lib.escnet_last_error()


def _scores(lib, handle, count: int, size=(48, 64)) -> tuple[np.ndarray, np.ndarray]:
    h, w = size
    array = np.random.default_rng(7).integers(0, 256, (h, w, 3), dtype=np.uint8)
    labels, scores = np.zeros((h, w), np.int32), np.zeros((count, h, w), np.float32)  # alive across the call
    status = lib.escnet_segmenter_segment_scores(handle, array.ctypes.data, h, w, w * 3, labels.ctypes.data,
                                                 scores.ctypes.data)  # fmt: skip
    assert status == OK, lib.escnet_last_error()
    return array, scores


def test_cached_classes_are_read_back_rewritten_when_stale_and_foreign_files_kept(lib, segmenter, tmp_path):
    """escnet_segmenter_set_classes_cached: the first call encodes and writes the cache (a vocabulary
    file Python reads); a later call with the same names runs the cache's embeddings, not new ones;
    other names rewrite it; a file there that is not a vocabulary file is refused and left as it was."""
    artifacts, handle = segmenter
    cached = lib.escnet_segmenter_set_classes_cached
    cached.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, ctypes.c_char_p]
    names = ["sky", "grass", "road"]
    encoded = (ctypes.c_char_p * len(names))(*[n.encode() for n in names])
    cache = tmp_path / "classes.escvocab"
    assert cached(handle, encoded, len(names), str(cache).encode()) == OK, lib.escnet_last_error()
    seg = Segmenter(artifacts, disk_cache=False)
    vocab = read_vocabulary(cache, seg.manifest)
    assert vocab.class_names == tuple(names)
    assert float(np.abs(vocab.embeddings - seg.encode_vocabulary(names)).max()) <= 1e-4
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]  # no temporary file left
    # Read back, not encoded: a cache of these names holding the classes' embeddings rolled by one runs rolled.
    write_vocabulary(cache, dataclasses.replace(vocab, embeddings=np.roll(vocab.embeddings, 1, axis=0)))
    before = cache.read_bytes()
    assert cached(handle, encoded, len(names), str(cache).encode()) == OK, lib.escnet_last_error()
    assert cache.read_bytes() == before
    array, got = _scores(lib, handle, len(names))
    want = seg.set_vocabulary(names).segment(array, return_scores=True).scores
    assert float(np.abs(got - np.roll(want, 1, axis=0)).max()) <= 1e-4 < float(np.abs(got - want).max())
    other = (ctypes.c_char_p * 2)(b"wall", b"person")
    assert cached(handle, other, 2, str(cache).encode()) == OK, lib.escnet_last_error()
    assert read_vocabulary(cache, seg.manifest).class_names == ("wall", "person")  # stale: encoded, rewritten
    notes = tmp_path / "notes.txt"
    notes.write_text("not a cache\n")
    assert cached(handle, other, 2, str(notes).encode()) == BAD_INPUT
    message = lib.escnet_last_error()
    assert b"not a vocabulary file" in message and b"\n" not in message
    assert notes.read_text() == "not a cache\n"
    assert cached(handle, encoded, len(names), None) == OK  # no cache: set_classes
