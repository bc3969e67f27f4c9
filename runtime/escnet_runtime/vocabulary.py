"""Class-name checks and template expansion, as the PyTorch model's ``check_class_names`` does."""

from __future__ import annotations

import re
from collections.abc import Sequence

from escnet_runtime.errors import InputError

MAX_CLASSES = 65535  # labels are written as 16-bit PNGs beyond 256 classes
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no class name holds one; a legend line could not show it


class ClassNameTruncatedWarning(UserWarning):
    """A class name (inside its template) is longer than CLIP's context and was cut."""


def check_class_names(names: object) -> list[str]:
    """A non-empty list of distinct (case- and space-insensitive), non-blank strings without control characters."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InputError("class names must be a list of strings, e.g. ['cat', 'sky']")
    names = list(names)
    if not names:
        raise InputError("the class list is empty; expected at least one class name")
    if len(names) > MAX_CLASSES:
        raise InputError(f"{len(names)} class names; at most {MAX_CLASSES} are supported")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise InputError(f"class name {i + 1} is {name!r}; expected a non-blank string")
        if _CONTROL.search(name):
            shown = name if len(name) <= 40 else name[:40] + "..."
            raise InputError(
                f"class name {i + 1} {shown!r} holds a control character (a line break, tab, ...); "
                "give one name per line in --classes-file, or separate them with commas"
            )
        key = name.strip().lower()
        if key in seen:
            raise InputError(
                f"duplicate class name {name!r} (names {seen[key] + 1} and {i + 1}); expected distinct names"
            )
        seen[key] = i
    return names


def parse_class_list(text: str, separator: str = ",") -> list[str]:
    """``"cat, dog ,sky"`` -> ["cat", "dog", "sky"]; blank items are kept (and then refused)."""
    return [part.strip() for part in text.split(separator)]


def expand(names: Sequence[str], templates: Sequence[str]) -> list[tuple[str, str]]:
    """Every class through every template, class-major: [(template, name), ...] (T * P)."""
    return [(tpl, name) for name in names for tpl in templates]
