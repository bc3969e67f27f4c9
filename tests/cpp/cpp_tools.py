"""Building and running the C++ runtime in tests: CMake against the openvino and nlohmann-json
wheels, the tool's one-line errors."""

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE = ROOT / "runtime" / "cpp"
TOOL = "escnet-segment-cpp"
BUILD_TIMEOUT_S = 1800


def cmake_configure_args(build: Path, *extra: str) -> list[str]:
    """`cmake -S runtime/cpp -B build` with the wheels' CMake config and headers."""
    import nlohmann_json
    import openvino

    ov_cmake = Path(openvino.__file__).parent / "cmake"
    return [
        "-S", str(SOURCE), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
        f"-DOpenVINO_DIR={ov_cmake}", f"-DNLOHMANN_JSON_INCLUDE_DIR={nlohmann_json.get_include()}", *extra,
    ]  # fmt: skip


def build_tree(build: Path, *extra: str, targets: tuple[str, ...] = ()) -> Path:
    """Configure and build runtime/cpp into ``build`` (only ``targets`` when given); assert both pass."""
    cmake = shutil.which("cmake")
    assert cmake, "cmake is needed to build runtime/cpp (pip install cmake, or the system's)"
    jobs = str(os.cpu_count() or 2)
    only = ["--target", *targets] if targets else []
    for cmd in ([cmake, *cmake_configure_args(build, *extra)], [cmake, "--build", str(build), "-j", jobs, *only]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
        assert proc.returncode == 0, f"{' '.join(cmd[:3])}: {proc.stdout[-3000:]}{proc.stderr[-3000:]}"
    return build


def run_tool(tool: Path, *args: object, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(tool), *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd)


def one_line_error(proc: subprocess.CompletedProcess, code: int = 2) -> str:
    """The tool's one error line (asserting exit ``code`` and nothing else on stderr)."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{TOOL}: error: "), proc.stderr
    return lines[0]
