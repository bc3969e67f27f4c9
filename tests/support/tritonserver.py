"""A real tritonserver on 127.0.0.1: the 2.51 build that ``nvidia-pytriton`` bundles (Python backend only).

Where the binary comes from: an installed ``pytriton`` package, else the ``nvidia-pytriton`` wheel
fetched once with ``pip download --no-deps`` (sha256-pinned) into ``~/.cache/escnet/tritonserver``
and unpacked there. Not ``pip install``: that wheel requires numpy<2 for pytriton's own Python
API, which nothing here uses, and installing it would downgrade the project's NumPy.

The Python backend's stub runs this interpreter: its bin folder leads PATH (the stub's embedded
Python finds ``python3`` there, and so its site-packages) and its libpython leads LD_LIBRARY_PATH.
The server listens on 127.0.0.1 only, on free ports, and is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from escnet_runtime.fileio import sha256_file

PYTRITON = "nvidia-pytriton==0.7.0"
WHEEL = "nvidia_pytriton-0.7.0-py3-none-manylinux_2_35_x86_64.whl"
WHEEL_SHA256 = "21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df"
CACHE = Path(os.environ.get("ESCNET_TRITON_CACHE", Path.home() / ".cache" / "escnet" / "tritonserver"))


@dataclass(frozen=True)
class ServerFiles:
    """The bundled server: bin/tritonserver, backends/python, python_backend_stubs/3.x, and its libs."""

    root: Path  # .../pytriton/tritonserver
    libs: Path  # .../nvidia_pytriton.libs

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    def stub(self) -> Path:
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        return self.root / "python_backend_stubs" / version / "triton_python_backend_stub"


def _installed() -> ServerFiles | None:
    import importlib.util

    spec = importlib.util.find_spec("pytriton")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    files = ServerFiles(package / "tritonserver", package.parent / "nvidia_pytriton.libs")
    return files if files.binary.is_file() else None


def _unpack(wheel: Path, dest: Path) -> None:
    staging = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    with zipfile.ZipFile(wheel) as z:
        for member in z.namelist():
            if member.startswith(("pytriton/tritonserver/", "nvidia_pytriton.libs/")):
                z.extract(member, staging)
    for path in staging.rglob("*"):
        if path.is_file() and ("/bin/" in str(path) or path.name == "triton_python_backend_stub"):
            path.chmod(0o755)
    os.replace(staging, dest)


def server_files() -> ServerFiles:
    """The bundled tritonserver, fetched (once) when pytriton is not installed."""
    found = _installed()
    if found is not None:
        return found
    dest = CACHE / WHEEL.removesuffix(".whl")
    files = ServerFiles(dest / "pytriton" / "tritonserver", dest / "nvidia_pytriton.libs")
    if files.binary.is_file():
        return files
    CACHE.mkdir(parents=True, exist_ok=True)
    wheel = CACHE / WHEEL
    if not wheel.is_file() or sha256_file(wheel) != WHEEL_SHA256:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", PYTRITON]
        subprocess.run([*cmd, "-d", str(CACHE)], check=True, timeout=600)
    if sha256_file(wheel) != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: sha256 differs from the pinned {PYTRITON} wheel")
    _unpack(wheel, dest)
    return files


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    libdir = sysconfig.get_config_var("LIBDIR") or ""
    env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (libdir, env.get("LD_LIBRARY_PATH", "")) if p)
    return env


class TritonServer:
    """``with TritonServer(repo, workdir) as server:`` a started, ready server; ``server.http`` /
    ``server.grpc`` are "127.0.0.1:port"."""

    def __init__(self, repository: Path, workdir: Path, log_verbose: int = 0, options: Sequence[str] = ()) -> None:
        """``options``: more tritonserver options, e.g. ``--http-restricted-api=inference,key=value``."""
        self.repository, self.workdir = Path(repository), Path(workdir)
        self.options = tuple(options)
        self.files = server_files()
        self.ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
        self.http, self.grpc = f"127.0.0.1:{self.ports['http']}", f"127.0.0.1:{self.ports['grpc']}"
        self.log_path = self.workdir / "tritonserver.log"
        self.log_verbose = log_verbose
        self.process: subprocess.Popen[bytes] | None = None

    def _backends(self) -> Path:
        """backends/python: the bundled backend with the stub for this interpreter's Python version."""
        python = self.workdir / "backends" / "python"
        python.mkdir(parents=True, exist_ok=True)
        for item in (self.files.root / "backends" / "python").iterdir():
            shutil.copyfile(item, python / item.name)
        stub = python / "triton_python_backend_stub"
        shutil.copyfile(self.files.stub(), stub)
        stub.chmod(0o755)
        return python.parent

    def command(self) -> list[str]:
        p = self.ports
        return [
            str(self.files.binary),
            f"--model-repository={self.repository}",
            f"--backend-directory={self._backends()}",
            "--http-address=127.0.0.1",
            f"--http-port={p['http']}",
            "--grpc-address=127.0.0.1",
            f"--grpc-port={p['grpc']}",
            "--metrics-address=127.0.0.1",
            f"--metrics-port={p['metrics']}",
            "--exit-timeout-secs=5",
            f"--log-verbose={self.log_verbose}",
            *self.options,
        ]

    def start(self, timeout_s: float = 180.0) -> TritonServer:
        env = _environment()
        env["LD_LIBRARY_PATH"] = f"{self.files.libs}{os.pathsep}{env['LD_LIBRARY_PATH']}"
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.wait_ready(timeout_s)
        return self

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.http}/v2/health/ready", timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"tritonserver exited ({self.process.returncode}): {self.log_tail()}")
            if self.ready():
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"tritonserver not ready after {timeout_s:.0f} s: {self.log_tail()}")

    def pids(self) -> list[int]:
        """The server and its Python-backend stub processes (its children)."""
        if self.process is None:
            return []
        pids = [self.process.pid]
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # after "(comm)": state ppid ...
                if ppid == self.process.pid:
                    pids.append(int(stat.parent.name))
        return pids

    def peak_rss_bytes(self) -> int:
        """Sum over the server and its stubs of each process's peak resident memory (VmHWM)."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
        return total

    def log_tail(self, chars: int = 3000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-chars:]
        return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM to the server's PID, SIGKILL if it has not exited in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
