"""Keep extensions from changing the packages we are locked to (requirements.lock).

An extension's requirements.txt, or its install.py's ``launch.run_pip("install ...")``, is checked
before pip runs: a requirement that would move a locked package (``torch==2.0.0``, ``gradio<4``,
``-U torch``) is a conflict, a package we don't have is fine (a new install). Checks are static,
plus, where pip can resolve offline, a ``pip install --dry-run`` report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

PROTECTED = ("torch", "torchvision", "diffusers", "transformers", "gradio", "gradio-client", "safetensors",
             "accelerate", "peft", "numpy", "pydantic", "fastapi", "huggingface-hub", "xformers")
OFFLINE = "cannot be checked offline"
# pip install options that take a value (the value must not be read as a requirement).
_VALUE_OPTIONS = {"-i", "--index-url", "--extra-index-url", "-f", "--find-links", "-c", "--constraint",
                  "-t", "--target", "--prefix", "--root", "--src", "--upgrade-strategy", "--platform",
                  "--python-version", "--implementation", "--abi", "--progress-bar", "--report",
                  "--global-option", "--config-settings", "-C", "--trusted-host", "--cache-dir",
                  "--log", "--timeout", "--retries", "--proxy", "--only-binary", "--no-binary"}
_ARCHIVES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2")
_COMMENT = re.compile(r"(^|\s)#.*$")
_UPGRADE = {"-U", "--upgrade", "--force-reinstall"}


@dataclass(frozen=True)
class Conflict:
    line: str  # the requirement as written
    package: str  # canonical name ("" when the line could not be read)
    locked: str  # the locked version ("" when not locked)
    reason: str


def read_lock(lock_file: Path) -> dict[str, str]:
    """Canonical name -> version from ``name==version`` lines; {} when the file is missing."""
    try:
        text = Path(lock_file).read_text(encoding="utf-8")
    except OSError:
        return {}
    lock = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        name, sep, version = line.partition("==")
        if sep and name.strip() and version.strip():
            lock[canonicalize_name(name.strip())] = version.strip()
    return lock


def _protected(package: str, lock: Mapping[str, str]) -> bool:
    return package in lock or package in PROTECTED


def _check_line(line: str, lock: Mapping[str, str], upgrade: bool) -> Conflict | None:
    if line.startswith("-"):
        return Conflict(line, "", "", "pip options in a requirements file cannot be checked")
    try:
        req = Requirement(line)
    except InvalidRequirement:
        looks_like_url = "://" in line or line.startswith((".", "/", "~"))
        return Conflict(line, "", "", OFFLINE if looks_like_url else "not a valid requirement")
    package = canonicalize_name(req.name)
    locked = lock.get(package, "")
    if req.url or line.endswith(_ARCHIVES):
        return Conflict(line, package, locked, f"a URL requirement {OFFLINE}")
    if req.marker is not None and not req.marker.evaluate():
        return None  # not for this environment: pip would skip it too
    if locked and req.specifier and not req.specifier.contains(locked, prereleases=True):
        return Conflict(line, package, locked, f"needs {package}{req.specifier}, but {package}=={locked} is locked")
    if upgrade and _protected(package, lock):
        return Conflict(line, package, locked, f"an upgrade would change {package}, which is locked")
    return None  # satisfied by the lock, or a new install


def _requirement_lines(lines: Iterable[str]) -> list[str]:
    stripped = (_COMMENT.sub("", raw).strip() for raw in lines)  # pip's rule: "#" at the start or after space
    return [line for line in stripped if line]


def check_requirements(lines: Iterable[str], lock: Mapping[str, str], *, upgrade: bool = False) -> list[Conflict]:
    """Conflicts of requirements.txt lines with the lock (static: nothing is run)."""
    found = (_check_line(line, lock, upgrade) for line in _requirement_lines(lines))
    return [c for c in found if c is not None]


def check_pip_args(args: str | Sequence[str], lock: Mapping[str, str]) -> list[Conflict]:
    """Conflicts of a pip command line (``install foo==1.2 -U bar``, ``uninstall -y torch``)."""
    words = shlex.split(args) if isinstance(args, str) else list(args)
    command = next((w for w in words if not w.startswith("-")), "")
    rest = words[words.index(command) + 1:] if command else []
    if command == "uninstall":
        names = [w for w in rest if not w.startswith("-")]
        return [Conflict(w, canonicalize_name(w), lock.get(canonicalize_name(w), ""),
                         "would uninstall a locked package")
                for w in names if _protected(canonicalize_name(w), lock)]
    if command != "install":
        return []  # list, show, freeze, download...: nothing in the environment changes
    upgrade = any(w in _UPGRADE for w in rest)
    requirements, conflicts = [], []
    words_iter = iter(rest)
    for word in words_iter:
        option = word.split("=", 1)[0]
        if option in ("-r", "--requirement", "-e", "--editable"):
            value = word.split("=", 1)[1] if "=" in word else next(words_iter, "")
            conflicts.append(Conflict(f"{option} {value}", "", "", f"{option} {value} {OFFLINE}"))
        elif option in _VALUE_OPTIONS:
            if "=" not in word:
                next(words_iter, None)
        elif not word.startswith("-"):
            requirements.append(word)
    return conflicts + check_requirements(requirements, lock, upgrade=upgrade)


def dry_run_conflicts(lines: Iterable[str], lock: Mapping[str, str], *, python: str = sys.executable,
                      timeout: float = 120) -> list[Conflict]:
    """Ask pip what it would install (offline, no index); [] whenever pip cannot tell.

    Catches what the static check cannot: a new package whose dependencies move a locked one.
    """
    requirements = _requirement_lines(lines)
    if not requirements or any(r.startswith("-") for r in requirements):
        return []
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [python, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet", "--disable-pip-version-check",
                   "--report", str(report), *requirements]
        env = {**os.environ, "PIP_NO_INPUT": "1"}
        try:
            done = subprocess.run(command, capture_output=True, check=False, timeout=timeout, env=env, stdin=subprocess.DEVNULL)
            if done.returncode != 0:
                return []
            installs = json.loads(report.read_text(encoding="utf-8")).get("install", [])
        except (OSError, subprocess.SubprocessError, ValueError):
            return []
    conflicts = []
    for item in installs:
        meta = item.get("metadata", {}) if isinstance(item, dict) else {}
        package, version = canonicalize_name(str(meta.get("name", ""))), str(meta.get("version", ""))
        locked = lock.get(package)
        if locked and version != locked:
            conflicts.append(Conflict(f"{package}=={version}", package, locked,
                                      f"pip would install {package} {version} over the locked {locked}"))
    return conflicts
