"""The CMake package: `cmake --install` of the session's build writes escnetConfig.cmake, its
version file and the escnet::escnet target; a separate project (tests/cpp/consumer, its own
CMakeLists.txt) finds it with find_package(escnet CONFIG REQUIRED), builds, runs, and its labels
equal the Python runtime's."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cpp_tools import BUILD_TIMEOUT_S
from escnet_runtime import Segmenter
from support.artifacts import BAKED_NAMES, tiny_baked

CONSUMER = Path(__file__).parent / "consumer"


def _run(cmd: list, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd[:3]))}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(cpp_build, tmp_path_factory) -> Path:
    prefix = tmp_path_factory.mktemp("escnet-prefix")
    _run([shutil.which("cmake"), "--install", cpp_build, "--prefix", prefix])
    return prefix


def test_install_writes_the_package(installed):
    package = installed / "lib" / "cmake" / "escnet"
    names = {p.name for p in package.iterdir()}
    assert {"escnetConfig.cmake", "escnetConfigVersion.cmake", "escnetTargets.cmake"} <= names
    assert 'PACKAGE_VERSION "0.1.0"' in (package / "escnetConfigVersion.cmake").read_text()
    assert "escnet::escnet" in (package / "escnetTargets.cmake").read_text()
    assert (installed / "include" / "escnet" / "escnet.h").is_file()
    assert (installed / "include" / "escnet" / "segmenter.hpp").is_file()


def test_a_consumer_project_builds_against_the_package_and_matches_python(installed, tmp_path_factory, tmp_path):
    baked, artifacts, _ = tiny_baked(tmp_path_factory)
    cmake = shutil.which("cmake")
    build = tmp_path / "consumer-build"
    _run([cmake, "-S", CONSUMER, "-B", build, f"-DCMAKE_PREFIX_PATH={installed}", "-DCMAKE_BUILD_TYPE=Release"])
    _run([cmake, "--build", build])
    seg = Segmenter(artifacts, disk_cache=False).set_vocabulary(list(BAKED_NAMES))
    for h, w in ((45, 70), (96, 33)):
        array = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
        raw, out = tmp_path / "image.rgb", tmp_path / "labels.i32"
        raw.write_bytes(array.tobytes())
        proc = _run([build / "consumer", baked, raw, h, w, out])
        assert proc.stdout.strip() == f"{len(BAKED_NAMES)} classes"
        got = np.fromfile(out, dtype="<i4").reshape(h, w)
        assert np.mean(got == seg.segment(array).labels) >= 0.999
