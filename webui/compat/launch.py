"""A1111's ``launch`` module, as far as extensions' install.py scripts use it.

install.py runs in a subprocess with this folder first on PYTHONPATH, so ``import launch`` lands
here. ``run_pip`` refuses (RuntimeError) any pip command that would move a package pinned in
requirements.lock, and installs with the lock as pip constraints. Everything else A1111's module
has is an AttributeError that says so.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = Path(os.environ.get("SD_STUDIO_REQUIREMENTS_LOCK") or _REPO_ROOT / "requirements.lock")

git = "git"
python = sys.executable
index_url = ""
dir_repos = "repositories"
skip_install = False
args = argparse.Namespace(skip_install=False)


def _guard():
    try:
        return importlib.import_module("webui.plugins.requirements_guard")
    except ImportError:  # webui not importable here: load the module straight from its file
        name = "_sd_studio_requirements_guard"
        path = Path(__file__).resolve().parents[1] / "plugins" / "requirements_guard.py"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the class is built
        spec.loader.exec_module(module)
        return module


def is_installed(package: str) -> bool:
    """Whether a distribution (``opencv-python``) or an importable module (``cv2``) is present."""
    try:
        importlib.metadata.distribution(package)
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def run(command: str, desc: str | None = None, errdesc: str | None = None, custom_env: dict | None = None,
        live: bool = False) -> str:
    """Run a shell command (as A1111's launch.run); RuntimeError with its output when it fails."""
    if desc:
        print(desc, flush=True)
    env = os.environ if custom_env is None else custom_env
    if live:
        done = subprocess.run(command, shell=True, env=env, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{errdesc or 'Error running command'}.\nCommand: {command}\n"
                               f"Error code: {done.returncode}")
        return ""
    done = subprocess.run(command, shell=True, env=env, capture_output=True, check=False)
    out = done.stdout.decode("utf-8", "replace")
    err = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        raise RuntimeError(f"{errdesc or 'Error running command'}.\nCommand: {command}\nError code: {done.returncode}\n"
                           f"stdout: {out or '<empty>'}\nstderr: {err or '<empty>'}")
    return out


def run_pip(command: str, desc: str | None = None, live: bool = False) -> str:
    """``pip <command>``, refused when it would change a locked package (torch, gradio, ...)."""
    guard = _guard()
    words = shlex.split(command)
    conflicts = guard.check_pip_args(words, guard.read_lock(LOCK_FILE))
    if conflicts:
        c = conflicts[0]
        raise RuntimeError(f"pip {command!r} refused by SD Studio: {c.line!r} ({c.package or 'option'}): {c.reason}")
    full = [python, "-m", "pip", *words]
    if words and words[0] == "install":
        full.append("--prefer-binary")
        if LOCK_FILE.is_file():
            full += ["-c", str(LOCK_FILE)]  # pip itself then keeps every locked version
        if index_url:
            full += ["--index-url", index_url]
    if desc:
        print(f"Installing {desc}", flush=True)
    done = subprocess.run(full, capture_output=not live, text=True, check=False)
    if not live:
        print(done.stdout, end="", flush=True)
    if done.returncode != 0:
        raise RuntimeError(f"Couldn't install {desc or command}.\nCommand: {shlex.join(full)}\n"
                           f"Error code: {done.returncode}\n{'' if live else done.stderr}")
    return "" if live else done.stdout


def __getattr__(name: str):
    raise AttributeError(f"launch.{name} is not provided by SD Studio's A1111 compatibility layer; "
                         "see docs/extensions.md")
