"""Class names -> text embeddings (T, P, D), through the tokenizer, the text-encoder graph and the cache."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

from escnet_runtime.backends import Backend
from escnet_runtime.cache import ModelIdentity, TextEmbeddingCache
from escnet_runtime.contract import TEXT_EMBEDDINGS, TEXT_ENCODER, TOKEN_IDS
from escnet_runtime.errors import InputError
from escnet_runtime.tokenizer import ClipTokenizer
from escnet_runtime.vocabulary import ClassNameTruncatedWarning, check_class_names, expand


class TextEncoder:
    def __init__(
        self,
        backend: Backend,
        tokenizer: ClipTokenizer,
        templates: Sequence[str],
        identity: ModelIdentity,
        cache: TextEmbeddingCache,
        batch: int,
    ) -> None:
        """``batch``: texts per text-encoder call (the manifest's ``text_batch``)."""
        self.backend = backend
        self.batch = batch
        self.tokenizer = tokenizer
        self.templates = tuple(templates)
        self.identity = identity
        self.cache = cache
        self._check_templates()

    def _check_templates(self) -> None:
        """A template that alone fills CLIP's context leaves no room for any class name: refused
        (a warning per class name would blame the names)."""
        alone = self.tokenizer.tokenize([t.replace("{}", "") for t in self.templates]).truncated
        for i, cut in enumerate(alone):
            if cut:
                t = self.templates[i]
                shown = t if len(t) <= 40 else t[:40] + "..."
                raise InputError(
                    f"templates[{i}]: {shown!r} ({len(t)} characters) alone is longer than CLIP's context of "
                    f"{self.tokenizer.context_length} tokens; no class name would fit"
                )

    def _warn_truncated(self, pairs: Sequence[tuple[str, str]], truncated: np.ndarray) -> None:
        names = sorted({name for (_, name), cut in zip(pairs, truncated, strict=True) if cut})
        for name in names:
            shown = name if len(name) <= 40 else name[:40] + "..."
            warnings.warn(
                f"class name {shown!r} ({len(name)} characters) is longer than CLIP's context of "
                f"{self.tokenizer.context_length} tokens; it was truncated as CLIP truncates",
                ClassNameTruncatedWarning,
                stacklevel=3,
            )

    def _possibly_truncated(self, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
        """Texts that could exceed the context: a token covers at least one UTF-8 byte (cleaning may double it)."""
        limit = (self.tokenizer.context_length - 2) // 2
        return [(t, n) for t, n in pairs if len(t.format(n).encode("utf-8")) > limit]

    def encode(self, names: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """names (T) -> normalised embeddings (T, P, D) float32; only cache misses run the graph."""
        names = check_class_names(names)
        pairs = expand(names, self.templates)  # (T * P) class-major
        keys = [self.identity.key(t, n) for t, n in pairs]
        found = [self.cache.get(k) for k in keys]
        missing = [i for i, v in enumerate(found) if v is None]
        hit_pairs = [pairs[i] for i, v in enumerate(found) if v is not None]
        check = self._possibly_truncated(hit_pairs)
        if check:
            cut = self.tokenizer.tokenize([t.format(n) for t, n in check]).truncated
            self._warn_truncated(check, cut)
        for start in range(0, len(missing), self.batch):
            idx = missing[start : start + self.batch]
            batch = [pairs[i] for i in idx]
            tokens = self.tokenizer.tokenize([t.format(n) for t, n in batch])
            self._warn_truncated(batch, tokens.truncated)
            out = self.backend.run(TEXT_ENCODER, {TOKEN_IDS: tokens.ids})[TEXT_EMBEDDINGS]
            emb = np.asarray(self.backend.to_host(out), dtype=np.float32)  # (n, D)
            for j, i in enumerate(idx):
                self.cache.put(keys[i], emb[j])
                found[i] = emb[j]
            if progress is not None:
                progress(min(start + self.batch, len(missing)), len(missing))
        stacked = np.stack(found)  # (T * P, D)
        return stacked.reshape(len(names), len(self.templates), -1)
