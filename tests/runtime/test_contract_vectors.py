"""The contract test vectors (tests/support/contract_vectors): the Python runtime refuses each one.

Every vector damages a copy of the tiny artifacts (manifest), of the tiny baked folder (baked
manifest) or of a vocabulary file written for the tiny artifacts; loading it must fail with one
line that names the field the vector names. The C++ runtime's tests run the same vectors.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from escnet_runtime.baked import load_baked_manifest
from escnet_runtime.errors import BackendError, InputError
from escnet_runtime.manifest import ManifestError, load_manifest
from escnet_runtime.segmenter import Segmenter
from escnet_runtime.vocab_file import read_vocabulary, vocabulary_of, write_vocabulary
from support.artifacts import tiny_baked
from support.contract_vectors.apply import VOCAB_CLASSES, apply_vector, load_vectors

VECTORS = load_vectors()
REFUSALS = (ManifestError, InputError, BackendError)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """kind -> the undamaged input the vectors of that kind patch."""
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    vocab = tmp_path_factory.mktemp("contract") / "base.escvocab"
    with Segmenter(artifacts, disk_cache=False) as seg:
        write_vocabulary(vocab, vocabulary_of(seg, VOCAB_CLASSES))
    return {"manifest": artifacts, "baked_manifest": baked, "vocabulary": vocab}


def _load(kind: str, damaged: Path, artifacts: Path) -> None:
    """What a user of the Python runtime does with the input: raises for a refused one."""
    if kind == "manifest":
        Segmenter(damaged, disk_cache=False).close()
    elif kind == "baked_manifest":
        load_baked_manifest(damaged, check_graph=True)
    else:
        read_vocabulary(damaged, load_manifest(artifacts))


def test_the_undamaged_inputs_load(sources: dict[str, Path], tmp_path: Path) -> None:
    """An empty patch changes nothing: each kind's input is accepted (so a refusal is the vector's)."""
    for kind, source in sources.items():
        same = apply_vector({"name": f"same_{kind}", "kind": kind, "patch": {}}, source, tmp_path)
        _load(kind, same, sources["manifest"])
    assert read_vocabulary(sources["vocabulary"]).class_names == VOCAB_CLASSES


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vector_is_refused_naming_the_field(vector: dict, sources: dict[str, Path], tmp_path: Path) -> None:
    damaged = apply_vector(vector, sources[vector["kind"]], tmp_path)
    with pytest.raises(REFUSALS) as caught:
        _load(vector["kind"], damaged, sources["manifest"])
    message = str(caught.value)
    assert "\n" not in message, message
    assert vector["error"] in message, f"{vector['name']}: {message}"


def test_every_kind_has_vectors() -> None:
    kinds = {v["kind"] for v in VECTORS}
    assert kinds == {"manifest", "baked_manifest", "vocabulary"}
    assert len(VECTORS) >= 40
