"""Start the real server (``python -m webui``) in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    base_url: str
    data_dir: Path
    log_file: Path

    auth: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.base_url, timeout=120, auth=self.auth)

    def as_user(self, name: str, password: str) -> httpx.Client:
        """Another client of the same server, logged in with HTTP Basic (close it when done)."""
        return httpx.Client(base_url=self.base_url, timeout=120, auth=(name, password))

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get(path, **kwargs)

    def post(self, path: str, **kwargs) -> httpx.Response:
        return self.client.post(path, **kwargs)

    def delete(self, path: str, **kwargs) -> httpx.Response:
        return self.client.delete(path, **kwargs)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.client.close()
        if self.alive():
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_server(data_dir: Path, extra_args: list[str] | None = None, ready_path: str = "/sdapi/v1/sd-models",
                 timeout: float = 180, auth: tuple[str, str] | None = None) -> LiveServer:
    port = free_port()
    log_file = Path(data_dir) / "server.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    args = [sys.executable, "-m", "webui", "--data-dir", str(data_dir), "--port", str(port), *(extra_args or [])]
    with log_file.open("ab") as log:
        process = subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = LiveServer(process, f"http://127.0.0.1:{port}", Path(data_dir), log_file, auth=auth)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not server.alive():
            raise RuntimeError(f"server exited early:\n{server.log()[-4000:]}")
        try:
            if server.get(ready_path, timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server not ready after {timeout}s:\n{server.log()[-4000:]}")


def add_user(data_dir: Path, name: str, password: str, admin: bool = False) -> subprocess.CompletedProcess:
    """The command-line way: ``python -m webui --data-dir D --add-user NAME [--admin]``, password on stdin."""
    args = [sys.executable, "-m", "webui", "--data-dir", str(data_dir), "--add-user", name, *(["--admin"] if admin else [])]
    return subprocess.run(args, cwd=REPO_ROOT, input=password + "\n", capture_output=True, text=True, timeout=120)


def wait_for(predicate, timeout: float = 120.0, every: float = 0.05):
    """Poll ``predicate`` until it returns something truthy, and return that; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not reached in {timeout:.0f} s")
