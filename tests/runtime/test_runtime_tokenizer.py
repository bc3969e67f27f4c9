"""The torch-free CLIP tokenizer gives open_clip's SimpleTokenizer ids for every input."""

import random

import numpy as np
import pytest
from escnet_runtime.errors import InputError
from escnet_runtime.tokenizer import ClipTokenizer

import escnet  # noqa: F401  (the torchvision shim, before open_clip)

open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")

WORDS = ["cat", "traffic light", "sky-scraper", "person's", "don't", "O'Neil", "t-shirt", "3D", "4x4", "H2O"]
UNICODE = [
    "café",
    "naïve",
    "Ænglish",
    "straße",
    "İstanbul",
    "ΣΊΣΥΦΟΣ",
    "кошка",
    "日本語のテキスト",
    "한국어",
    "مرحبا",
    "עברית",
    "🐈‍⬛ black cat",
    "👍🏽",
    "e\u0301",
    "ﬁsh",
    "①②",
    "٣٤٥",
    "x\u200by",
    "cafÃ©",
    "\ufeffbom",
]
PUNCT = ["&amp;", "&lt;b&gt;", "&#39;", "&amp;amp;", "!!!", "...", "a,b;c", "(x)", "[y]", "{z}", "#1", "@home", "~/$%^"]
SPACES = [" ", "\t", "\n", "\u00a0", "\u3000", "  "]
SPECIAL = ["<start_of_text>", "<end_of_text>", "<|endoftext|>", "<START_OF_TEXT>"]


def generated_names(n: int, seed: int = 0) -> list[str]:
    """Deterministic class names: words, unicode, punctuation, odd spacing, specials, over-long ones."""
    rng = random.Random(seed)
    pools = [WORDS, UNICODE, PUNCT, SPECIAL]
    names = []
    for i in range(n):
        parts = [rng.choice(rng.choice(pools)) for _ in range(rng.randint(1, 4))]
        name = "".join(p + rng.choice(SPACES + [""]) for p in parts)
        if rng.random() < 0.3:
            name = name.upper() if rng.random() < 0.5 else name.title()
        if i % 50 == 0:  # over-long: beyond 77 tokens
            name = " ".join(rng.choice(WORDS + UNICODE) for _ in range(rng.randint(40, 150)))
        if i % 97 == 0:
            name = "".join(chr(rng.randint(0x20, 0x2FFF)) for _ in range(rng.randint(1, 60)))
        names.append(name)
    return names + ["", " ", "a" * 500, "x" * 76, "é" * 80]


@pytest.fixture(scope="module")
def tokenizers():
    ref = open_clip_tokenizer.SimpleTokenizer()
    return ref, ClipTokenizer(open_clip_tokenizer.default_bpe(), context_length=77)


def test_ids_equal_open_clip_on_thousands_of_names(tokenizers):
    ref, mine = tokenizers
    names = generated_names(3000)
    texts = names + [f"A photo of a {n} in the scene." for n in names[:1000]]
    expected = ref(texts).numpy()
    got = mine.tokenize(texts)
    assert got.ids.dtype == np.int64 and got.ids.shape == expected.shape
    bad = np.flatnonzero((got.ids != expected).any(axis=1))
    assert bad.size == 0, f"{bad.size} texts differ, first: {texts[bad[0]]!r}"
    # truncation: exactly the texts whose framed ids exceed the context; end-of-text stays last
    lengths = np.array([len(ref.encode(t)) + 2 for t in texts])
    assert (got.truncated == (lengths > 77)).all() and got.truncated.sum() >= 60
    assert (got.ids[got.truncated, -1] == mine.eot_id).all()


def test_shorter_context_truncates_like_open_clip(tokenizers):
    ref, _ = tokenizers
    short = ClipTokenizer(open_clip_tokenizer.default_bpe(), context_length=16)
    texts = generated_names(300, seed=1)
    assert (short(texts) == ref(texts, context_length=16).numpy()).all()


def test_refuses_a_broken_vocabulary(tmp_path):
    bad = tmp_path / "vocab.txt.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(InputError, match="unreadable BPE vocabulary"):
        ClipTokenizer(bad)
