"""OpenAI CLIP's byte-level BPE tokenizer without torch; ids equal open_clip's ``SimpleTokenizer``.

The pipeline, as open_clip's default ("lower") cleaning defines it:
1. clean: ``ftfy.fix_text``, HTML-unescape twice, strip, collapse whitespace, lower-case;
2. split into words with CLIP's regex (special tokens, English contractions, letter runs,
   single digits, runs of other non-space characters);
3. map each word's UTF-8 bytes to printable unicode characters, then merge symbol pairs by BPE rank
   (the last symbol carries the end-of-word marker ``</w>``);
4. frame with start/end-of-text ids; longer than the context: keep the first ``context_length``
   ids and overwrite the last with end-of-text; pad with zeros.
"""

from __future__ import annotations

import gzip
import html
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import ftfy
import numpy as np
import regex

from escnet_runtime.contract import TokenizerSpec
from escnet_runtime.errors import InputError
from escnet_runtime.manifest import Manifest, read_hashed, read_verified

NUM_MERGES = 49152 - 256 - 2  # merges CLIP uses: its vocabulary is 49408 = 2 * 256 bytes + merges + 2 specials
END_OF_WORD = "</w>"
_WORD_CACHE_LIMIT = 200_000
MAX_VOCAB_BYTES = 16 << 20  # decompressed; CLIP's vocabulary is 1.3 MiB


def byte_alphabet() -> dict[int, str]:
    """Every byte value -> one printable unicode character (printable Latin-1 bytes map to themselves)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    # The vocabulary lists the printable bytes first, then the remapped ones, each in byte order.
    return dict(sorted(table.items(), key=lambda kv: (kv[0] not in printable, kv[0])))


def _read_vocabulary(path: Path, data: bytes | None) -> str:
    """The gzipped BPE vocabulary (``data``, or the file ``path``) as text, decompressed while it is
    read and refused as soon as it passes ``MAX_VOCAB_BYTES`` (a small file may inflate to gigabytes)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) if data is not None else gzip.open(path) as f:
            raw = f.read(MAX_VOCAB_BYTES + 1)  # decompresses at most this much
    except (OSError, EOFError, zlib.error) as e:
        raise InputError(f"{path}: unreadable BPE vocabulary ({e})") from None
    if len(raw) > MAX_VOCAB_BYTES:
        raise InputError(
            f"{path}: the BPE vocabulary inflates to more than {MAX_VOCAB_BYTES >> 20} MiB (CLIP's is 1.3 MiB); refused"
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{path}: unreadable BPE vocabulary ({e})") from None


def clean_text(text: str) -> str:
    """open_clip's "lower" cleaning: fix mojibake, unescape HTML twice, collapse whitespace, lower-case."""
    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip().lower()


@dataclass(frozen=True)
class Tokenized:
    """ids (N, context_length) int64; truncated (N,) bool: the text did not fit and was cut."""

    ids: np.ndarray
    truncated: np.ndarray


class ClipTokenizer:
    """CLIP BPE over a ``bpe_simple_vocab_16e6.txt.gz`` merges file."""

    def __init__(self, vocab_path: str | Path, context_length: int = 77, data: bytes | None = None) -> None:
        """``data``: the gzipped vocabulary's bytes (already verified); else it is read from ``vocab_path``."""
        self.vocab_path = Path(vocab_path)
        self.context_length = int(context_length)
        if self.context_length < 2:
            raise InputError(f"context_length is {context_length}; expected at least 2 (start and end of text)")
        lines = _read_vocabulary(self.vocab_path, data).split("\n")
        merges = [tuple(line.split()) for line in lines[1 : NUM_MERGES + 1]]  # line 0 is a version header
        if len(merges) != NUM_MERGES or any(len(m) != 2 for m in merges):
            raise InputError(f"{self.vocab_path}: expected {NUM_MERGES} BPE merges of two symbols each")
        self._bytes = byte_alphabet()
        symbols = list(self._bytes.values())
        vocab = symbols + [s + END_OF_WORD for s in symbols] + ["".join(m) for m in merges]
        self.specials = ("<start_of_text>", "<end_of_text>")
        vocab += list(self.specials)
        self.encoder: dict[str, int] = {tok: i for i, tok in enumerate(vocab)}
        self.ranks: dict[tuple[str, str], int] = {m: i for i, m in enumerate(merges)}
        self.sot_id, self.eot_id = (self.encoder[s] for s in self.specials)
        self.vocab_size = len(self.encoder)
        alternatives = [regex.escape(s) for s in self.specials]
        alternatives += ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", r"[\p{L}]+", r"[\p{N}]", r"[^\s\p{L}\p{N}]+"]
        self._split = regex.compile("|".join(alternatives), regex.IGNORECASE)
        self._words: dict[str, tuple[int, ...]] = {}

    @staticmethod
    def from_spec(folder: str | Path, spec: TokenizerSpec) -> ClipTokenizer:
        """The tokenizer a manifest's spec describes: the vocabulary is read once, inside ``folder``,
        and built from the very bytes whose sha256 matched the spec."""
        data = read_hashed(folder, spec.vocab_file, spec.vocab_sha256)
        return ClipTokenizer(Path(folder) / spec.vocab_file, spec.context_length, data=data)

    @staticmethod
    def from_manifest(folder: str | Path, manifest: Manifest) -> ClipTokenizer:
        """As ``from_spec``, through ``read_verified`` (the vocabulary must be listed in ``files``)."""
        spec = manifest.tokenizer
        data = read_verified(Path(folder), manifest, spec.vocab_file)
        return ClipTokenizer(Path(folder) / spec.vocab_file, spec.context_length, data=data)

    def _merge(self, word: str) -> tuple[int, ...]:
        """One pre-split word (already byte-mapped) -> its BPE token ids."""
        if word in self.specials:
            return (self.encoder[word],)
        parts = [*word[:-1], word[-1] + END_OF_WORD]
        while len(parts) > 1:
            best, best_rank = None, None
            for pair in zip(parts, parts[1:], strict=False):
                rank = self.ranks.get(pair)
                if rank is not None and (best_rank is None or rank < best_rank):
                    best, best_rank = pair, rank
            if best is None:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == best[0] and parts[i + 1] == best[1]:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        return tuple(self.encoder[p] for p in parts)

    def encode(self, text: str) -> list[int]:
        """Text -> BPE ids, without start/end-of-text and without truncation."""
        ids: list[int] = []
        for word in self._split.findall(clean_text(text)):
            mapped = "".join(self._bytes[b] for b in word.encode("utf-8"))
            cached = self._words.get(mapped)
            if cached is None:
                cached = self._merge(mapped)
                if len(self._words) < _WORD_CACHE_LIMIT:
                    self._words[mapped] = cached
            ids.extend(cached)
        return ids

    def tokenize(self, texts: list[str]) -> Tokenized:
        """texts -> ids (N, context_length) int64, zero-padded, framed by start/end-of-text."""
        n = self.context_length
        ids = np.zeros((len(texts), n), dtype=np.int64)
        truncated = np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            row = [self.sot_id, *self.encode(text), self.eot_id]
            if len(row) > n:
                row = row[:n]
                row[-1] = self.eot_id  # CLIP keeps end-of-text last: the text encoder pools at it
                truncated[i] = True
            ids[i, : len(row)] = row
        return Tokenized(ids, truncated)

    def __call__(self, texts: str | list[str]) -> np.ndarray:
        """Like open_clip's tokenizer call: (N, context_length) int64."""
        return self.tokenize([texts] if isinstance(texts, str) else list(texts)).ids
