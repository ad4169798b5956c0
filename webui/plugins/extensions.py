"""Extensions on disk: which folders are extensions, their metadata.ini, git state and load order.

Only discovery lives here: nothing is imported or run. The Script API loader consumes the
``Extension`` objects; the installer (installer.py) changes what is on disk.
"""

from __future__ import annotations

import configparser
import heapq
import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "extensions_builtin"
DISABLE_ALL_MODES = ("none", "extra", "all")
GIT_TIMEOUT_S = 5.0


def disable_all_mode(configured: object, *, disable_all: bool = False, disable_extra: bool = False) -> str:
    """The mode a start uses: config.json's ``disable_all_extensions``, raised by
    ``--disable-all-extensions`` / ``--disable-extra-extensions``."""
    mode = str(configured or "none")
    mode = mode if mode in DISABLE_ALL_MODES else "none"
    if disable_all:
        return "all"
    if disable_extra and mode == "none":
        return "extra"
    return mode


@dataclass
class Extension:
    name: str  # the folder name
    path: Path
    builtin: bool
    enabled: bool = True  # after config and flags
    requires: tuple[str, ...] = ()  # metadata.ini [Extension] Requires
    before: tuple[str, ...] = ()  # ... Before: this loads before the named ones
    after: tuple[str, ...] = ()  # ... After: the named ones load first
    title: str = ""  # metadata.ini [Extension] Name, else the folder name
    remote: str | None = None  # git remote "origin" URL (None when not a git repo)
    branch: str | None = None
    commit: str | None = None  # full hash of HEAD
    commit_date: str | None = None  # ISO date of HEAD
    errors: list[str] = field(default_factory=list)
    disabled_reason: str | None = None

    @property
    def version(self) -> str:
        """Short commit and date, e.g. ``1a2b3c4d (2024-05-01)``; "" when not a git repository."""
        if not self.commit:
            return ""
        return f"{self.commit[:8]} ({self.commit_date[:10]})" if self.commit_date else self.commit[:8]

    def disable(self, reason: str) -> None:
        if self.enabled:  # keep the first reason: it is the root cause
            self.enabled, self.disabled_reason = False, reason

    # Files are listed only when they really live inside the extension: a symlink pointing
    # elsewhere on the machine must not smuggle that file into the UI or the loader.
    def _inside(self, path: Path) -> bool:
        try:
            resolved, root = path.resolve(), self.path.resolve()
        except OSError:
            return False
        return path.is_file() and root in resolved.parents

    def _listing(self, folder: str, suffixes: tuple[str, ...]) -> list[Path]:
        directory = self.path / folder
        if not directory.is_dir():
            return []
        found = [p for p in directory.iterdir() if p.suffix in suffixes and self._inside(p)]
        return sorted(found, key=lambda p: p.name)

    def _root_file(self, name: str) -> Path | None:
        path = self.path / name
        return path if self._inside(path) else None

    def script_files(self) -> list[Path]:
        return self._listing("scripts", (".py",))

    def javascript_files(self) -> list[Path]:
        return self._listing("javascript", (".js", ".mjs"))

    def stylesheet(self) -> Path | None:
        return self._root_file("style.css")

    def localization_files(self) -> list[Path]:
        return self._listing("localizations", (".json",))

    def preload_file(self) -> Path | None:
        return self._root_file("preload.py")

    def install_script(self) -> Path | None:
        return self._root_file("install.py")

    def requirements_file(self) -> Path | None:
        return self._root_file("requirements.txt")


def _names(value: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in value.split(",") if n.strip())


def _read_metadata(ext: Extension) -> None:
    """Fill title/requires/before/after from metadata.ini; a broken file is an error on the extension."""
    ext.title = ext.name
    path = ext.path / "metadata.ini"
    if not ext._inside(path):
        return
    parser = configparser.ConfigParser(interpolation=None)  # keys are case-insensitive, as in A1111
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except (configparser.Error, OSError, UnicodeDecodeError) as e:
        ext.errors.append(f"metadata.ini could not be read: {' '.join(str(e).split())}")
        return
    section = next((s for s in parser.sections() if s.lower() == "extension"), None)
    if section is None:
        return
    values = parser[section]
    ext.title = values.get("name", "").strip() or ext.name
    ext.requires = _names(values.get("requires", ""))
    ext.before = _names(values.get("before", ""))
    ext.after = _names(values.get("after", ""))


def _git(path: Path, *args: str) -> str | None:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    try:
        done = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, check=False,
                              timeout=GIT_TIMEOUT_S, env=env, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    out = done.stdout.strip()
    return out if done.returncode == 0 and out else None


def read_git_info(ext: Extension) -> None:
    """remote/branch/commit/commit_date from git; all None when the folder is not a repository."""
    if not (ext.path / ".git").exists():  # don't let git walk up into a parent repository
        return
    ext.commit = _git(ext.path, "rev-parse", "HEAD")
    ext.commit_date = _git(ext.path, "log", "-1", "--format=%cI") if ext.commit else None
    branch = _git(ext.path, "rev-parse", "--abbrev-ref", "HEAD")
    ext.branch = None if branch in (None, "HEAD") else branch  # "HEAD": detached
    ext.remote = _git(ext.path, "config", "--get", "remote.origin.url")


def read_extension(path: Path, *, builtin: bool = False, read_git: bool = True) -> Extension:
    """One extension folder, read (metadata and git state) but not judged against the others."""
    ext = Extension(name=path.name, path=path, builtin=builtin)
    _read_metadata(ext)
    if read_git:
        read_git_info(ext)
    return ext


def _folders(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    # is_dir() follows symlinks on purpose: A1111 users symlink extension folders in.
    found = [p for p in directory.iterdir() if not p.name.startswith(".") and p.is_dir()]
    return sorted(found, key=lambda p: (p.name.casefold(), p.name))


def discover(user_dir: Path, *, builtin_dir: Path = BUILTIN_DIR, disabled: Iterable[str] = (),
             disable_all: str = "none", read_git: bool = True) -> list[Extension]:
    """Every extension in load order, with ``enabled``/``disabled_reason`` settled.

    ``disabled`` are folder names (config.json's ``disabled_extensions``); ``disable_all`` is
    one of DISABLE_ALL_MODES. ``read_git=False`` skips the git calls (the start-up preload pass).
    """
    if disable_all not in DISABLE_ALL_MODES:
        raise ValueError(f"disable_all must be one of {DISABLE_ALL_MODES}, not {disable_all!r}")
    builtins = [read_extension(p, builtin=True, read_git=read_git) for p in _folders(Path(builtin_dir))]
    users = [read_extension(p, read_git=read_git) for p in _folders(Path(user_dir))]

    builtin_names = {e.name.casefold() for e in builtins}
    for ext in users:
        if ext.name.casefold() in builtin_names:
            ext.errors.append("a built-in extension has the same name")
            ext.disable("a built-in extension has the same name")

    off = set(disabled)
    for ext in builtins + users:
        if disable_all == "all":
            ext.disable("--disable-all-extensions")
        elif disable_all == "extra" and not ext.builtin:
            ext.disable("--disable-extra-extensions")
        if ext.name in off:
            ext.disable("disabled in settings")

    ordered = _load_order(builtins + users)
    _check_requirements(ordered)
    return ordered


def _lookup(extensions: list[Extension]) -> dict[str, Extension]:
    """Names other extensions may use for this one: folder name first, then metadata Name (A1111)."""
    table: dict[str, Extension] = {}
    for ext in extensions:
        table.setdefault(ext.title.casefold(), ext)
    for ext in reversed(extensions):  # the first (a built-in) wins a folder-name clash
        table[ext.name.casefold()] = ext
    return table


def _check_requirements(extensions: list[Extension]) -> None:
    """Disable extensions whose Requires are missing or disabled, until nothing changes (cascade)."""
    table = _lookup(extensions)
    changed = True
    while changed:
        changed = False
        for ext in extensions:
            if not ext.enabled:
                continue
            for name in ext.requires:
                needed = table.get(name.casefold())
                if needed is ext:
                    continue
                if needed is None:
                    ext.errors.append(f"requires {name}, which is not installed")
                    ext.disable(f"requires {name} which is missing")
                elif not needed.enabled:
                    ext.disable(f"requires {name} which is disabled")
                else:
                    continue
                changed = True
                break


def _load_order(extensions: list[Extension]) -> list[Extension]:
    """Stable topological sort: the given order, except where Requires/After/Before say otherwise.

    A cycle is broken by loading its earliest member first; every member gets an error.
    """
    table = _lookup(extensions)
    index = {id(e): i for i, e in enumerate(extensions)}
    preds: list[set[int]] = [set() for _ in extensions]
    for i, ext in enumerate(extensions):
        for name in ext.requires + ext.after:
            other = table.get(name.casefold())
            if other is not None and other is not ext:
                preds[i].add(index[id(other)])
        for name in ext.before:
            other = table.get(name.casefold())
            if other is not None and other is not ext:
                preds[index[id(other)]].add(i)

    waiting = [set(p) for p in preds]
    succs: list[set[int]] = [set() for _ in extensions]
    for i, p in enumerate(preds):
        for j in p:
            succs[j].add(i)
    ready = [i for i, p in enumerate(waiting) if not p]
    heapq.heapify(ready)
    done: list[int] = []
    placed: set[int] = set()
    while len(done) < len(extensions):
        if not ready:
            ready = [_break_cycle(extensions, waiting, placed)]
        i = heapq.heappop(ready)
        if i in placed:
            continue
        placed.add(i)
        done.append(i)
        for j in succs[i]:
            waiting[j].discard(i)
            if not waiting[j] and j not in placed:
                heapq.heappush(ready, j)
    return [extensions[i] for i in done]


def _break_cycle(extensions: list[Extension], waiting: list[set[int]], placed: set[int]) -> int:
    """Find a cycle among the unplaced extensions, record it on its members, return one to place."""
    node = min(i for i in range(len(extensions)) if i not in placed)
    path: list[int] = []
    while node not in path:  # every unplaced node still waits on an unplaced one: this walk loops
        path.append(node)
        node = min(waiting[node])
    cycle = path[path.index(node):]
    first = min(cycle)
    names = " -> ".join(extensions[i].name for i in reversed(cycle)) + f" -> {extensions[cycle[-1]].name}"
    for i in cycle:
        extensions[i].errors.append(f"load order cycle ({names}); {extensions[first].name} is loaded first")
    waiting[first].clear()
    return first
