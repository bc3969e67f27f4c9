"""The C++ runtime's build, shared by every test in tests/cpp: configured and built once per
session with CMake (against the openvino and nlohmann-json wheels, the system's libpng and ICU)
and reused. A failed build fails the tests; nothing is skipped for a missing dependency.

ESCNET_CPP_BUILD=<folder> builds there instead of a fresh temporary folder (incremental builds
across sessions while working on runtime/cpp).
"""

import os
from pathlib import Path

import pytest
from cpp_tools import TOOL, build_tree


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory) -> Path:
    """The build folder (libescnet, escnet-segment-cpp, the C example), once per session."""
    where = os.environ.get("ESCNET_CPP_BUILD")
    return build_tree(Path(where) if where else tmp_path_factory.mktemp("cpp-build"))


@pytest.fixture(scope="session")
def tool(cpp_build) -> Path:
    return cpp_build / TOOL
