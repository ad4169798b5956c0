"""Install, update and remove extensions (git), and run their install.py in a subprocess.

Expected failures (git missing, a bad URL, a timeout, a requirement that would move a locked
package) come back as an ``InstallReport``, never as an exception: the UI and API show the message.
install.py runs only when it, requirements.txt or the commit changed since its last success
(a fingerprint per extension in a JSON state file), and never with ``--skip-install``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from webui.plugins import requirements_guard as guard
from webui.plugins.extensions import BUILTIN_DIR, Extension, read_extension

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPAT_DIR = REPO_ROOT / "webui" / "compat"  # holds launch.py: install.py's `import launch`
LOCK_ENV = "SD_STUDIO_REQUIREMENTS_LOCK"  # tells the launch shim which lock to guard
MAX_OUTPUT = 64 * 1024
GIT_TIMEOUT_S = 120.0
_REMOTE = re.compile(r"^(https?|ssh|git|file)://\S+$|^[\w.-]+@[\w.-]+:\S+$")


@dataclass
class InstallReport:
    name: str
    ok: bool
    message: str  # one line for the UI/API
    output: str = ""  # install.py / git output (stdout+stderr), capped at MAX_OUTPUT
    ran_install: bool = False


def _cap(text: str) -> str:
    return text if len(text) <= MAX_OUTPUT else "[...]\n" + text[-MAX_OUTPUT:]  # the end says what failed


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def default_name(url: str) -> str:
    """The folder name for a URL: its last path component without ``.git``."""
    tail = re.split(r"[/:\\]", url.strip().rstrip("/\\"))[-1]
    return tail.removesuffix(".git")


def _name_problem(name: str) -> str | None:
    if not name or not name.strip():
        return "the extension name is empty"
    if any(bad in name for bad in ("/", "\\", "..", "\0")) or name.startswith(".") or name != name.strip():
        return f"{name!r} is not an acceptable folder name for an extension"
    return None


def _run(command: list[str], *, cwd: Path | None = None, timeout: float, env: dict[str, str] | None = None
         ) -> tuple[int | None, str]:
    """(exit code, output); exit code None on a timeout. Kills the whole process group on timeout."""
    proc = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # pip started by install.py must die too
        except OSError:
            proc.kill()
        out, _ = proc.communicate()
        return None, _cap(out.decode("utf-8", "replace"))
    return proc.returncode, _cap(out.decode("utf-8", "replace"))


def _git_env() -> dict[str, str]:
    # No password prompts (there is no terminal) and no exotic transports such as ext::.
    return {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": "https:http:ssh:git:file"}


def _on_rm_error(func, path, _exc) -> None:
    os.chmod(path, stat.S_IWRITE)  # git marks its objects read-only (matters on Windows)
    func(path)


class ExtensionInstaller:
    def __init__(self, user_dir: Path, state_file: Path, *, lock_file: Path = REPO_ROOT / "requirements.lock",
                 skip_install: bool = False, python: str = sys.executable, timeout: float = 600,
                 builtin_dir: Path = BUILTIN_DIR) -> None:
        self.user_dir = Path(user_dir)
        self.state_file = Path(state_file)
        self.lock_file = Path(lock_file)
        self.skip_install = skip_install
        self.python = python
        self.timeout = timeout
        self.builtin_dir = Path(builtin_dir)

    # --- git -----------------------------------------------------------------------------------

    def _git(self, *args: str, cwd: Path | None = None) -> tuple[int | None, str]:
        try:
            return _run(["git", *args], cwd=cwd, timeout=min(self.timeout, GIT_TIMEOUT_S), env=_git_env())
        except OSError as e:
            return 127, f"git could not be run: {e}"

    def install_problem(self, url: str, name: str | None = None, branch: str | None = None
                        ) -> tuple[str, str] | None:
        """Why ``install(url, name, branch)`` would be refused before cloning, or None:
        ("invalid", message) for a bad URL, name or branch; ("exists", message) for a taken name."""
        url = (url or "").strip()
        problem = self._url_problem(url)
        name = name if name is not None else (default_name(url) if not problem else "")
        problem = problem or _name_problem(name)
        if problem is None and branch is not None and (
                not branch.strip() or branch.startswith("-") or any(c.isspace() for c in branch)):
            problem = f"{branch!r} is not an acceptable branch name"
        if problem:
            return "invalid", problem
        clash = self._clash(name)
        return ("exists", clash) if clash else None

    def install(self, url: str, name: str | None = None, branch: str | None = None) -> InstallReport:
        """Clone ``url`` into the user folder (through a temporary folder), then run its install.py."""
        url = (url or "").strip()
        name = default_name(url) if name is None else name
        refused = self.install_problem(url, name, branch)
        if refused:
            return InstallReport(name or url, False, refused[1])
        local = not _REMOTE.match(url)
        try:
            self.user_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=self.user_dir))
        except OSError as e:
            return InstallReport(name, False, f"the extensions folder is not writable: {e}")
        command = ["clone", *(() if local else ("--depth=1",)), *(("--branch", branch) if branch else ()),
                   "--", str(Path(url).expanduser().resolve()) if local else url, str(tmp)]
        code, output = self._git(*command)
        target = self.user_dir / name
        if code != 0:
            shutil.rmtree(tmp, onerror=_on_rm_error)
            why = "timed out" if code is None else f"failed: {_last_line(output) or f'exit code {code}'}"
            return InstallReport(name, False, f"git clone of {url} {why}", output)
        try:
            if target.exists() or target.is_symlink():
                raise FileExistsError(f"{target} appeared while cloning")
            os.rename(tmp, target)
        except OSError as e:
            shutil.rmtree(tmp, onerror=_on_rm_error)
            return InstallReport(name, False, f"could not move the clone into place: {e}", output)
        ext = read_extension(target)
        report = self.run_install_if_needed(ext)
        if report is not None and not report.ok:
            # A half-installed extension would load without what it needs: leave nothing behind.
            shutil.rmtree(target, onerror=_on_rm_error)
            return InstallReport(name, False, f"{name} was not installed: {report.message}",
                                 _cap(output + report.output), report.ran_install)
        note = " (install.py skipped: --skip-install)" if self.skip_install and ext.install_script() else ""
        return InstallReport(name, True, f"installed {name} {ext.version}".rstrip() + note,
                             _cap(output + (report.output if report else "")), bool(report and report.ran_install))

    def _url_problem(self, url: str) -> str | None:
        if not url:
            return "no URL given"
        if url.startswith("-") or any(ord(c) < 32 for c in url):
            return f"{url!r} is not an acceptable repository URL"
        if _REMOTE.match(url):
            return None
        if "::" in url or re.match(r"^[a-zA-Z][\w+.-]*://", url):
            return f"{url!r}: only https, http, ssh, git and file URLs, or a local folder, can be installed"
        if Path(url).expanduser().is_dir():
            return None
        return f"{url!r} is neither a repository URL nor a local folder"

    def _clash(self, name: str) -> str | None:
        existing = [p.name.casefold() for d in (self.user_dir, self.builtin_dir) if d.is_dir() for p in d.iterdir()]
        if name.casefold() in existing:
            return f"an extension named {name!r} already exists"
        return None

    def check_for_updates(self, ext: Extension) -> tuple[bool, str]:
        """(update available, message), after a ``git fetch``; compares HEAD with its upstream."""
        if not (ext.path / ".git").exists():
            return False, "not a git repository"
        code, output = self._git("fetch", "--quiet", cwd=ext.path)
        if code != 0:
            return False, "git fetch timed out" if code is None else f"git fetch failed: {_last_line(output)}"
        code, output = self._git("rev-list", "--count", "HEAD..@{u}", cwd=ext.path)
        if code != 0:
            return False, "no upstream branch to compare with"
        behind = int(output.strip() or 0)
        if behind == 0:
            return False, "up to date"
        return True, f"{behind} new commit{'s' if behind != 1 else ''}"

    def update(self, ext: Extension) -> InstallReport:
        """Fast-forward to the upstream branch (nothing else), then run install.py if it changed."""
        if ext.builtin:
            return InstallReport(ext.name, False, "built-in extensions are updated with SD Studio itself")
        if not (ext.path / ".git").exists():
            return InstallReport(ext.name, False, "not a git repository")
        code, output = self._git("status", "--porcelain", "--untracked-files=no", cwd=ext.path)
        if code != 0:
            return InstallReport(ext.name, False, f"git status failed: {_last_line(output)}", output)
        if output.strip():
            return InstallReport(ext.name, False, f"{ext.name} has local changes; commit or discard them first", output)
        code, fetched = self._git("fetch", "--quiet", cwd=ext.path)
        if code != 0:
            return InstallReport(ext.name, False, f"git fetch failed: {_last_line(fetched) or 'timed out'}", fetched)
        code, merged = self._git("merge", "--ff-only", "@{u}", cwd=ext.path)
        if code != 0:
            return InstallReport(ext.name, False, f"cannot fast-forward {ext.name}: {_last_line(merged)}", merged)
        fresh = read_extension(ext.path, builtin=ext.builtin)
        fresh.enabled = ext.enabled
        report = self.run_install_if_needed(fresh)
        message = f"updated {ext.name} to {fresh.version}"
        if report is not None and not report.ok:
            return InstallReport(ext.name, False, f"{message}, but {report.message}", _cap(merged + report.output),
                                 report.ran_install)
        return InstallReport(ext.name, True, message, _cap(merged + (report.output if report else "")),
                             bool(report and report.ran_install))

    def remove(self, ext: Extension) -> InstallReport:
        """Delete a user extension's folder (a symlinked one: only the link)."""
        if ext.builtin:
            return InstallReport(ext.name, False, "built-in extensions cannot be removed")
        user_dir = self.user_dir.resolve()
        path = Path(ext.path)
        try:
            if path.is_symlink() and path.parent.resolve() == user_dir:
                path.unlink()
            elif not path.is_symlink() and path.resolve().parent == user_dir and path.is_dir():
                shutil.rmtree(path, onerror=_on_rm_error)
            else:
                return InstallReport(ext.name, False, f"{path} is not inside the extensions folder {user_dir}")
        except OSError as e:
            return InstallReport(ext.name, False, f"could not remove {ext.name}: {e}")
        state = self._load_state()
        if state.pop(ext.name, None) is not None:
            self._save_state(state)
        return InstallReport(ext.name, True, f"removed {ext.name}")

    # --- install.py ----------------------------------------------------------------------------

    def _fingerprint(self, ext: Extension, script: Path, requirements: Path | None) -> str:
        code, head = self._git("rev-parse", "HEAD", cwd=ext.path) if (ext.path / ".git").exists() else (1, "")
        digest = hashlib.sha256()
        for part in (script.read_bytes(), requirements.read_bytes() if requirements else b"",
                     head.strip().encode() if code == 0 else b""):
            digest.update(len(part).to_bytes(8, "big") + part)  # length-prefixed: no ambiguity
        return digest.hexdigest()

    def _load_state(self) -> dict[str, str]:
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in state.items()} if isinstance(state, dict) else {}

    def _save_state(self, state: dict[str, str]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.state_file.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(state, f, indent=1, sort_keys=True)
            os.replace(tmp, self.state_file)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def run_install_if_needed(self, ext: Extension) -> InstallReport | None:
        """Run install.py when it (or requirements.txt, or the commit) changed; None when nothing ran."""
        script = ext.install_script()
        if script is None or not ext.enabled or self.skip_install:
            return None
        requirements = ext.requirements_file()
        try:
            fingerprint = self._fingerprint(ext, script, requirements)
        except OSError as e:
            return InstallReport(ext.name, False, f"install.py could not be read: {e}")
        state = self._load_state()
        if state.get(ext.name) == fingerprint:
            return None
        if requirements is not None:
            conflict = self._requirements_conflict(requirements)
            if conflict is not None:
                return InstallReport(ext.name, False, f"requirements.txt line {conflict.line!r} is refused: "
                                                      f"{conflict.reason}; install.py was not run")
        env = {**os.environ, LOCK_ENV: str(self.lock_file), "PYTHONPATH": os.pathsep.join(
            [str(COMPAT_DIR), str(ext.path), *filter(None, [os.environ.get("PYTHONPATH")])])}
        try:
            code, output = _run([self.python, str(script)], cwd=ext.path, timeout=self.timeout, env=env)
        except OSError as e:
            return InstallReport(ext.name, False, f"install.py could not be started: {e}")
        if code is None:
            return InstallReport(ext.name, False, f"install.py timed out after {self.timeout:g} s", output, True)
        if code != 0:
            why = _last_line(output)
            return InstallReport(ext.name, False, f"install.py failed with exit code {code}" + (f": {why}" if why else ""),
                                 output, True)
        state = self._load_state()  # re-read: another extension may have been recorded meanwhile
        state[ext.name] = fingerprint
        self._save_state(state)
        return InstallReport(ext.name, True, f"install.py of {ext.name} ran", output, True)

    def _requirements_conflict(self, requirements: Path) -> guard.Conflict | None:
        try:
            lines = requirements.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError as e:
            return guard.Conflict("requirements.txt", "", "", f"it could not be read: {e}")
        lock = guard.read_lock(self.lock_file)
        found = guard.check_requirements(lines, lock) or guard.dry_run_conflicts(lines, lock, python=self.python)
        return found[0] if found else None
