"""Shared fixtures: offline guards, tiny real-layout checkpoints, a Studio, a live HTTP server."""

from __future__ import annotations

from webui.offline import apply_offline_env

apply_offline_env(override=True)

import ipaddress
import shutil
import socket
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.kit.servers import LiveServer, start_server

# --- Networking that fails loudly -------------------------------------------------------------

class NetworkAccessError(RuntimeError):
    """A test tried to reach something other than this machine."""


def _is_local(address: object) -> bool:
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, (bytes, bytearray)):
        host = host.decode()
    if not isinstance(host, str) or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost: would need DNS, so not local


_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _guarded_connect(self: socket.socket, address: object):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        raise NetworkAccessError(f"test tried to reach {address!r}; tests run offline")
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: object):
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(address):
        raise NetworkAccessError(f"test tried to reach {address!r}; tests run offline")
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# --- Tiny checkpoints ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def checkpoint_store(tmp_path_factory) -> Callable[..., Path]:
    """``checkpoint_store(family)`` → path of a tiny random-weight checkpoint, written once per session."""
    from webui.models.synthetic import write_checkpoint

    root = tmp_path_factory.mktemp("checkpoints")
    lock = threading.Lock()

    def get(family: str, seed: int = 0) -> Path:
        path = root / f"{family}-{seed}.safetensors"
        with lock:
            if not path.exists():
                write_checkpoint(path, family, seed=seed)
        return path

    return get


def copy_checkpoint(source: Path, folder: Path, name: str | None = None) -> Path:
    """Copy a stored checkpoint (and its sidecar yaml) into a model folder under ``name``."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or source.name)
    shutil.copyfile(source, target)
    sidecar = source.with_suffix(".yaml")
    if sidecar.exists():
        shutil.copyfile(sidecar, target.with_suffix(".yaml"))
    return target


def build_studio(data_dir: Path, checkpoint_store, families: tuple[str, ...] = ("sd15",), start: bool = True, **flags):
    """A Studio over ``data_dir`` with tiny checkpoints named ``<family>.safetensors``."""
    from webui.app import Studio
    from webui.flags import CommandLine

    ckpt_dir = data_dir / "models" / "Stable-diffusion"
    for family in families:
        copy_checkpoint(checkpoint_store(family), ckpt_dir, f"{family}.safetensors")
    studio = Studio(CommandLine(data_dir=data_dir, no_demo_model=not flags.pop("demo", False), **flags))
    if start:
        studio.start()
    return studio


@pytest.fixture
def make_studio(tmp_path: Path, checkpoint_store) -> Iterator[Callable[..., object]]:
    """``make_studio(families=("sd15",), start=True)`` → a Studio over a fresh data dir."""
    made = []

    def make(families: tuple[str, ...] = ("sd15",), start: bool = True, **flags):
        studio = build_studio(tmp_path, checkpoint_store, families, start, **flags)
        made.append(studio)
        return studio

    yield make
    for studio in made:
        studio.stop()


# --- A live server ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def live_server(tmp_path_factory, checkpoint_store) -> Iterator[LiveServer]:
    """One real HTTP server on 127.0.0.1 for the session: sd15 and sdxl-base tiny checkpoints.

    Tests that change options must put them back (see ``restore_options``).
    """
    data_dir = tmp_path_factory.mktemp("server-data")
    ckpt_dir = data_dir / "models" / "Stable-diffusion"
    copy_checkpoint(checkpoint_store("sd15"), ckpt_dir, "sd15.safetensors")
    copy_checkpoint(checkpoint_store("sdxl-base"), ckpt_dir, "sdxl-base.safetensors")
    server = start_server(data_dir, extra_args=["--no-demo-model"])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def restore_options(live_server: LiveServer) -> Iterator[None]:
    """Put the live server's options back as they were after the test."""
    before = live_server.get("/sdapi/v1/options").json()
    yield
    current = live_server.get("/sdapi/v1/options").json()
    changed = {k: v for k, v in before.items() if current.get(k) != v}
    if changed:
        live_server.post("/sdapi/v1/options", json=changed)
