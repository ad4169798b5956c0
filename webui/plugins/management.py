"""Managing extensions while the server runs: list, enable/disable, install, update, remove, restart.

The REST router (webui/api/extensions_api.py) and the Extensions tab share one manager per
studio (:func:`manager_for`). The manager applies the LAN policy (changes are refused on a
``--listen`` server without ``--enable-insecure-extension-access``); the admin check belongs to
the callers, which know the user. Changes on disk and in config.json take effect at the next
start, which :meth:`ExtensionManager.restart` triggers (webui/restart.py).

Long operations (git, install.py) run on the caller's thread (FastAPI's threadpool for ``def``
routes, Gradio's workers for events) and never under a lock: one at a time is enforced by a
"busy" mark that a second caller sees at once (409) instead of waiting.
"""

from __future__ import annotations

import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TypeVar

from webui import restart
from webui.flags import CommandLine, Paths, relative_to_roots
from webui.plugins.extensions import (
    BUILTIN_DIR,
    DISABLE_ALL_MODES,
    Extension,
    disable_all_mode,
    discover,
    read_git_info,
)
from webui.plugins.installer import ExtensionInstaller, InstallReport, default_name
from webui.plugins.loader import Plugins
from webui.plugins.problems import Problem
from webui.settings import OptionError, Options, OptionSaveError

T = TypeVar("T")

INSECURE_FLAG = "--enable-insecure-extension-access"
AFTER_RESTART = "it takes effect after a restart (Apply and restart UI)"
CHECK_WORKERS = 4  # git fetches at once when checking for updates


@dataclass
class Outcome:
    """What an operation did; ``code`` is the HTTP status the API answers with."""

    code: int
    message: str
    name: str | None = None
    output: str = ""  # git / install.py output
    restarting: bool = False
    details: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.code < 400


@dataclass
class ExtensionView:
    """One extension as found on disk now, with what happened to it in this run."""

    ext: Extension  # from a fresh discovery: ``enabled`` is what the next start will do
    loaded: bool  # its scripts were imported at this start
    problems: list[Problem]
    switched_off: dict[str, str]  # hook -> why
    load_seconds: float | None

    @property
    def restart_needed(self) -> bool:
        return self.ext.enabled != self.loaded

    def status(self) -> str:
        if self.problems or self.ext.errors:
            state = "errors"
        elif self.ext.enabled:
            state = "ok"
        else:
            state = "disabled"
        return f"{state} (restart needed)" if self.restart_needed else state

    def as_dict(self, *, admin: bool, roots: list[Path]) -> dict[str, Any]:
        """The API's view; admins see full paths and tracebacks (they may hold paths on the server)."""
        e = self.ext
        return {
            "name": e.name, "title": e.title, "enabled": e.enabled, "loaded": self.loaded,
            "restart_needed": self.restart_needed, "builtin": e.builtin, "remote": e.remote, "branch": e.branch,
            "commit": e.commit, "commit_date": e.commit_date, "version": e.version,
            "path": str(e.path) if admin else relative_to_roots(e.path, roots),
            "disabled_reason": e.disabled_reason, "errors": list(e.errors),
            "problems": [{"where": p.where, "message": p.message, "count": p.count,
                          **({"traceback": p.traceback} if admin else {})} for p in self.problems],
            "switched_off": [{"hook": k, "reason": v} for k, v in self.switched_off.items()],
            "load_seconds": self.load_seconds, "status": self.status(),
        }


class ExtensionManager:
    def __init__(self, plugins: Plugins, options: Options, paths: Paths, cmd: CommandLine, *,
                 installer: ExtensionInstaller | None = None, builtin_dir: Path = BUILTIN_DIR) -> None:
        self.plugins, self.options, self.paths, self.cmd = plugins, options, paths, cmd
        self.builtin_dir = Path(builtin_dir)
        self.installer = installer or ExtensionInstaller(
            paths.extensions_dir, paths.data_dir / "extensions_state.json", skip_install=cmd.skip_install,
            builtin_dir=self.builtin_dir)
        self._lock = threading.Lock()  # guards _busy and _git_cache; never held while git runs
        self._busy: str | None = None
        self._git_cache: dict[str, tuple[Any, tuple[str | None, ...]]] = {}  # path -> (stamps, git info)

    # --- policy --------------------------------------------------------------------------------

    def lan_refusal(self, what: str) -> str | None:
        """Why ``what`` is refused on this server (None: allowed). A1111's rule: not over the LAN."""
        if self.cmd.listen and not self.cmd.enable_insecure_extension_access:
            return (f"Refused to {what}: this server listens on the network (--listen), and extensions run "
                    f"code on it. Start it with {INSECURE_FLAG} to allow admins to change extensions.")
        return None

    @property
    def changes_allowed(self) -> bool:
        return self.lan_refusal("") is None

    def _alone(self, what: str, work: Callable[[], T]) -> T | Outcome:
        """``work()`` unless another change is under way (then a 409); the busy mark is held
        while it runs, the lock only while the mark is set or cleared."""
        with self._lock:
            if self._busy is not None:
                return Outcome(409, f"Wait: the {self._busy} is still under way.")
            self._busy = what
        try:
            return work()
        finally:
            with self._lock:
                self._busy = None

    def _report(self, what: str, name: str, work: Callable[[], InstallReport]) -> InstallReport | Outcome:
        """An installer call run alone: its report, or an Outcome (busy 409, failed 500)."""
        report = self._alone(what, work)
        if isinstance(report, Outcome):
            return report
        if not report.ok:
            return Outcome(500, report.message, name, report.output)
        return report

    # --- listing -------------------------------------------------------------------------------

    def disable_all_mode(self) -> str:
        """The mode the next start uses: config.json's, raised by --disable-*-extensions."""
        return disable_all_mode(self.options.get("disable_all_extensions"), disable_all=self.cmd.disable_all_extensions,
                                disable_extra=self.cmd.disable_extra_extensions)

    def discover(self, *, read_git: bool = True) -> list[Extension]:
        """The extensions on disk now, as the next start would see them."""
        found = discover(self.paths.extensions_dir, builtin_dir=self.builtin_dir,
                         disabled=self.options.get("disabled_extensions") or (), disable_all=self.disable_all_mode(),
                         read_git=False)
        if read_git:
            for ext in found:
                self._git_info(ext)
        return found

    def _git_info(self, ext: Extension) -> None:
        """read_git_info, cached until the repository's HEAD moves or its config changes: every page
        load lists the extensions, and four git processes per extension add up."""
        git = ext.path / ".git"
        stamps = []
        for name in ("HEAD", "logs/HEAD", "config"):  # logs/HEAD grows at each commit, merge, checkout
            try:
                stamp = (git / name).stat()
                stamps.append((stamp.st_mtime_ns, stamp.st_size))
            except OSError:
                stamps.append(None)
        key = (str(ext.path.resolve()), tuple(stamps))
        with self._lock:
            cached = self._git_cache.get(key[0])
        if cached is not None and cached[0] == key[1]:
            ext.remote, ext.branch, ext.commit, ext.commit_date = cached[1]
            return
        read_git_info(ext)
        with self._lock:
            self._git_cache[key[0]] = (key[1], (ext.remote, ext.branch, ext.commit, ext.commit_date))

    def find(self, name: str, *, read_git: bool = True) -> Extension | None:
        return next((e for e in self.discover(read_git=read_git) if e.name == name), None)

    def views(self) -> list[ExtensionView]:
        found = []
        for ext in self.discover():
            running = self.plugins.extension(ext.name)
            switched = {k: v for k, v in dict(self.plugins.problems.switched_off).items()
                        if k.startswith(f"{ext.name}: ")}
            found.append(ExtensionView(ext, bool(running and running.enabled), self.plugins.problems.of(ext.name),
                                       switched, self.plugins.load_seconds.get(ext.name)))
        return found

    def path_roots(self) -> list[Path]:
        """What users' paths are shown relative to: the data dir, and the program for built-ins."""
        return [self.paths.data_dir, self.builtin_dir.parent]

    def a1111_listing(self) -> list[Extension]:
        """``GET /sdapi/v1/extensions``: as A1111, only extensions that are git checkouts with a remote."""
        return [e for e in self.discover() if e.remote is not None and not e.builtin]

    # --- enable / disable ----------------------------------------------------------------------

    def set_enabled(self, states: dict[str, bool], disable_all: str | None = None) -> Outcome:
        """Save which extensions load (config.json ``disabled_extensions`` / ``disable_all_extensions``)."""
        refused = self.lan_refusal("enable or disable extensions")
        if refused:
            return Outcome(403, refused)
        if disable_all is not None and disable_all not in DISABLE_ALL_MODES:
            return Outcome(422, f"disable_all must be one of {', '.join(DISABLE_ALL_MODES)}, not {disable_all!r}")
        known = {e.name for e in self.discover(read_git=False)}
        unknown = sorted(n for n in states if n not in known)
        if unknown:
            return Outcome(404, f"No extension named {', '.join(map(repr, unknown))} is installed.")
        disabled = set(self.options.get("disabled_extensions") or ())
        disabled |= {n for n, on in states.items() if not on}
        disabled -= {n for n, on in states.items() if on}
        changes: dict[str, Any] = {"disabled_extensions": sorted(disabled)}
        if disable_all is not None:
            changes["disable_all_extensions"] = disable_all
        try:
            changed = self.options.update(changes)
        except OptionSaveError as e:
            return Outcome(507, str(e))
        except OptionError as e:
            return Outcome(422, str(e))
        if not changed:
            return Outcome(200, "Nothing changed.")
        return Outcome(200, f"Saved; {AFTER_RESTART}.")

    def apply(self, disabled: list[str], disable_all: str = "none", *, restart_now: bool = True) -> Outcome:
        """A1111's "Apply and restart UI": exactly ``disabled`` are off, then the server restarts."""
        known = [e.name for e in self.discover(read_git=False)]
        unknown = sorted(set(disabled) - set(known))
        if unknown:
            return Outcome(404, f"No extension named {', '.join(map(repr, unknown))} is installed.")
        saved = self.set_enabled({n: n not in disabled for n in known}, disable_all)
        if not saved.ok or not restart_now:
            return saved
        restarted = self.restart()
        if restarted.code == 503:  # saved all the same: the admin restarts by hand
            return Outcome(200, f"Saved. {restarted.message}")
        if not restarted.ok:
            return Outcome(restarted.code, f"Saved, but not restarted: {restarted.message}")
        return Outcome(200, f"Saved. {restarted.message}", restarting=True)

    def restart(self) -> Outcome:
        refused = self.lan_refusal("restart the server")
        if refused:
            return Outcome(403, refused)
        with self._lock:
            busy = self._busy
        if busy is not None:
            return Outcome(409, f"Wait: the {busy} is still under way; restarting now would cut it off.")
        if not restart.request_restart():
            return Outcome(503, "This server cannot restart itself (it was not started with `python -m webui`); "
                                "restart it by hand for the change to take effect.")
        return Outcome(200, "Restarting: the running job is interrupted and runs again after the restart; "
                            "the page reloads when the server is back.", restarting=True)

    # --- git operations ------------------------------------------------------------------------

    def install(self, url: str, name: str | None = None, branch: str | None = None) -> Outcome:
        """Clone ``url`` (a git URL or a local repository) into the extensions folder, run install.py."""
        refused = self.lan_refusal("install extensions")
        if refused:
            return Outcome(403, refused)
        url, name, branch = (url or "").strip(), (name or "").strip() or None, (branch or "").strip() or None
        # The installer's own checks, asked first so a refusal gets the right status (422 / 409).
        refused = self.installer.install_problem(url, name, branch)
        name = name or default_name(url)
        if refused is not None:
            kind, problem = refused
            if kind == "exists":
                return Outcome(409, f"{problem}; give another folder name", name)
            return Outcome(422, problem, name)
        report = self._report(f"install of {name}", name, lambda: self.installer.install(url, name, branch))
        if isinstance(report, Outcome):
            return report
        return Outcome(200, f"{report.message}; {AFTER_RESTART}.", name, report.output)

    def _user_extension(self, name: str, what: str) -> Extension | Outcome:
        refused = self.lan_refusal(f"{what} extensions")
        if refused:
            return Outcome(403, refused, name)
        ext = self.find(name)
        if ext is None:
            return Outcome(404, f"No extension named {name!r} is installed.", name)
        if ext.builtin:
            return Outcome(422, f"{name} is built in: it cannot be {what}d (it comes with SD Studio).", name)
        return ext

    def update(self, name: str) -> Outcome:
        ext = self._user_extension(name, "update")
        if isinstance(ext, Outcome):
            return ext
        if not (ext.path / ".git").exists():
            return Outcome(422, f"{name} is not a git repository: it cannot be updated.", name)
        report = self._report(f"update of {name}", name, lambda: self.installer.update(ext))
        if isinstance(report, Outcome):
            return report
        return Outcome(200, f"{report.message}; {AFTER_RESTART}.", name, report.output)

    def remove(self, name: str) -> Outcome:
        ext = self._user_extension(name, "remove")
        if isinstance(ext, Outcome):
            return ext
        report = self._report(f"removal of {name}", name, lambda: self.installer.remove(ext))
        if isinstance(report, Outcome):
            return report
        loaded = self.plugins.extension(name)
        note = "; its scripts stay loaded until the restart" if loaded is not None and loaded.enabled else ""
        return Outcome(200, f"{report.message}{note}.", name)

    def check_updates(self) -> Outcome:
        """``git fetch`` every user extension that is a repository; ``details`` per extension."""
        refused = self.lan_refusal("check extensions for updates")
        if refused:
            return Outcome(403, refused)
        candidates = [e for e in self.discover() if not e.builtin and (e.path / ".git").exists()]
        def fetch_all() -> list[tuple[bool, str]]:
            with ThreadPoolExecutor(max_workers=CHECK_WORKERS) as pool:
                return list(pool.map(self.installer.check_for_updates, candidates))

        results = self._alone("check for updates", fetch_all)
        if isinstance(results, Outcome):
            return results
        details = [{"name": e.name, "update_available": available, "message": message}
                   for e, (available, message) in zip(candidates, results)]
        newer = [d["name"] for d in details if d["update_available"]]
        summary = (f"Updates for {', '.join(newer)}." if newer else
                   "Every extension is up to date." if details else "No extension is a git repository.")
        return Outcome(200, summary, details=details)


_managers: weakref.WeakKeyDictionary[Any, ExtensionManager] = weakref.WeakKeyDictionary()
_managers_lock = threading.Lock()


def manager_for(studio: Any) -> ExtensionManager:
    """The one manager of a studio (so the API and the UI share the busy mark)."""
    with _managers_lock:
        found = _managers.get(studio)
        if found is None:
            found = ExtensionManager(studio.plugins, studio.options, studio.paths, studio.cmd)
            _managers[studio] = found
        return found
