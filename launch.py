#!/usr/bin/env python3
"""Set up and start SD Studio.

    python3 launch.py            start the web UI (http://127.0.0.1:7860)
    python3 launch.py --test     run the test suite

The first run creates .venv/ next to this file and installs the project with
the exact versions in requirements.lock (a few minutes). Later runs skip the
install unless pyproject.toml or requirements.lock changed. Then the script
re-runs itself with the .venv interpreter and starts `python -m webui` (or
pytest, with --test).

Standard library only: this file runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from webui.offline import apply_offline_env  # stdlib only; importable before the venv exists

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYPROJECT = ROOT / "pyproject.toml"
LOCK = ROOT / "requirements.lock"
STAMP_PREFIX = ".installed-"
MIN_PYTHON = (3, 11)
CHROMIUM = Path("/usr/bin/chromium")

# Nothing is downloaded or reported at run time.

PYTEST_NO_TESTS_COLLECTED = 5


def say(message: str) -> None:
    print(f"[launch] {message}", flush=True)


def fail(message: str, code: int = 1) -> None:
    print(f"[launch] error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


# ---------------------------------------------------------------- arguments


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="launch.py",
        add_help=False,
        allow_abbrev=False,  # never swallow a server flag that merely starts like ours
        description="Set up .venv and start the SD Studio web UI (or its tests).",
        epilog=(
            "Every other flag goes to the server (python -m webui), e.g. "
            "--listen --port 7861 --api --data-dir D --ckpt-dir D --vae-dir D "
            "--medvram --lowvram --no-half. Everything after --test goes to "
            "pytest, e.g. `launch.py --test -k prompts -x`."
        ),
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help (and the server's flags once installed)")
    parser.add_argument("--skip-install", action="store_true",
                        help="start without creating or updating .venv (and without extensions' install.py)")
    parser.add_argument("--reinstall", action="store_true", help="run the dependency install even if nothing changed")
    parser.add_argument("--xformers", action="store_true", help="also install xformers (the 'cuda' extra; NVIDIA GPUs only)")
    parser.add_argument("--test", action="store_true", help="run the test suite instead of the server")
    return parser


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str], list[str]]:
    """Split argv into (launcher options, server args, pytest args).

    Everything after --test belongs to pytest, except --skip-install /
    --reinstall / --xformers, which pytest does not have and are taken out
    wherever they appear.
    """
    launcher_only = {"--skip-install", "--reinstall", "--xformers"}
    if "--test" in argv:
        cut = argv.index("--test")
        before, after = argv[: cut + 1], argv[cut + 1 :]
        before += [a for a in after if a in launcher_only]
        pytest_args = [a for a in after if a not in launcher_only]
    else:
        before, pytest_args = argv, []
    opts, server_args = build_parser().parse_known_args(before)
    if opts.test and server_args:
        fail(f"put pytest arguments after --test (got {' '.join(server_args)} before it)", 2)
    return opts, server_args, pytest_args


# ---------------------------------------------------------------- the venv


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def running_in_venv() -> bool:
    return Path(sys.prefix).resolve() == VENV.resolve()


def check_python() -> None:
    if sys.version_info < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        fail(f"Python {wanted} or newer is needed (this is {sys.version.split()[0]}); run launch.py with python{wanted}")


def ensure_venv() -> None:
    if venv_python().exists():
        return
    started = time.monotonic()
    say("Creating .venv (first run; the install after it takes ~3 min)…")
    # --clear: a .venv without an interpreter is a half-made one; start over.
    run_checked([sys.executable, "-m", "venv", "--clear", str(VENV)], "could not create .venv")
    say(f".venv created in {elapsed(started)}")


def install_fingerprint(extras: str) -> str:
    digest = hashlib.sha256()
    for path in (PYPROJECT, LOCK):
        digest.update(path.read_bytes())
    digest.update(extras.encode())
    return digest.hexdigest()[:16]


def extras_for(opts: argparse.Namespace) -> str:
    return "test,cuda" if opts.xformers else "test"


def ensure_installed(extras: str, force: bool) -> None:
    """pip install -e .[extras] -c requirements.lock, unless the stamp says it is done."""
    for path in (PYPROJECT, LOCK):
        if not path.exists():
            fail(f"{path.name} is missing; is this a complete checkout?")
    stamp = VENV / f"{STAMP_PREFIX}{install_fingerprint(extras)}"
    if stamp.exists() and not force:
        return
    first = not any(VENV.glob(f"{STAMP_PREFIX}*"))
    if first:
        say("Installing dependencies from requirements.lock (first run, ~3 min, ~5 GB with CUDA torch)…")
    else:
        say("Updating .venv (pyproject.toml or requirements.lock changed, or --reinstall)…")
    started = time.monotonic()
    command = [
        str(venv_python()), "-m", "pip", "install",
        "--disable-pip-version-check",
        "-e", f".[{extras}]",
        "-c", str(LOCK),
    ]
    if not first:
        command.append("--quiet")  # an update mostly prints "already satisfied"
    if not sys.stdout.isatty():
        command += ["--progress-bar", "off"]
    run_checked(command, "dependency install failed (see pip's output above)", cwd=ROOT)
    for old in VENV.glob(f"{STAMP_PREFIX}*"):
        old.unlink()
    stamp.write_text(f"pip install -e .[{extras}] -c requirements.lock\n")
    say(f"Dependencies installed in {elapsed(started)}")


def reexec_in_venv(argv: list[str]) -> None:
    python = str(venv_python())
    os.execv(python, [python, str(Path(__file__).resolve()), *argv])


# ---------------------------------------------------------------- actions


def set_runtime_env() -> None:
    apply_offline_env(override=True)


def find_chromium() -> str | None:
    if CHROMIUM.exists():
        return str(CHROMIUM)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def ensure_chromium() -> None:
    """The browser tests need Debian's chromium; without it they skip themselves."""
    if find_chromium():
        return
    if not sys.platform.startswith("linux") or not shutil.which("apt-get"):
        say("No chromium found and no apt-get here: browser tests will be skipped.")
        return
    if os.geteuid() != 0:
        say("No chromium found: browser tests will be skipped. "
            "Install it with `sudo apt-get install chromium` to run them.")
        return
    say("Installing chromium for the browser tests (apt-get, ~1-2 min)…")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    commands = (
        ["apt-get", "update"],
        # Recommends would add printing, samba, perl, ... (~2x the download).
        ["apt-get", "install", "-y", "--no-install-recommends", "chromium", "fonts-liberation"],
    )
    ok = all(subprocess.run(command, env=env).returncode == 0 for command in commands)
    if not ok or not find_chromium():
        say("Could not install chromium: browser tests will be skipped "
            "(the rest of the suite still runs).")


def run_tests(pytest_args: list[str]) -> int:
    ensure_chromium()
    chromium = find_chromium()
    if chromium:
        os.environ.setdefault("WEBUI_CHROMIUM", chromium)
    command = [sys.executable, "-m", "pytest", *pytest_args]
    say("Running: " + " ".join(["python", "-m", "pytest", *pytest_args]))
    code = run_interruptible(command)
    if code == PYTEST_NO_TESTS_COLLECTED:
        say("pytest collected no tests: counted as a failure.")
    return code


def start_server(server_args: list[str]) -> None:
    if not (ROOT / "webui" / "__main__.py").exists():
        fail("webui/__main__.py is missing, so there is no server to start yet")
    say("Starting the web UI (python -m webui " + " ".join(server_args) + ")…")
    os.chdir(ROOT)
    os.execv(sys.executable, [sys.executable, "-m", "webui", *server_args])


def show_help() -> None:
    build_parser().print_help()
    installed = venv_python().exists() and any(VENV.glob(f"{STAMP_PREFIX}*"))
    if not installed or not (ROOT / "webui" / "__main__.py").exists():
        print("\nServer flags: see the Flags table in README.md "
              "(after the first run, --help lists them here too).")
        return
    print("\nServer flags (python -m webui --help):\n", flush=True)
    set_runtime_env()
    subprocess.run([str(venv_python()), "-m", "webui", "--help"], cwd=ROOT)


# ---------------------------------------------------------------- helpers


def run_checked(command: list[str], error: str, cwd: Path | None = None) -> None:
    if subprocess.run(command, cwd=cwd).returncode != 0:
        fail(error)


def run_interruptible(command: list[str]) -> int:
    try:
        return subprocess.run(command, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 130


def elapsed(started: float) -> str:
    seconds = int(time.monotonic() - started)
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def main(argv: list[str]) -> int:
    check_python()
    opts, server_args, pytest_args = parse_args(argv)
    if opts.help:
        show_help()
        return 0

    if not opts.skip_install:
        ensure_venv()
        ensure_installed(extras_for(opts), force=opts.reinstall)
    if not running_in_venv():
        if venv_python().exists():
            reexec_in_venv([a for a in argv if a != "--reinstall"])  # does not return
        say("--skip-install and no .venv: using this Python as it is.")

    set_runtime_env()
    if opts.test:
        return run_tests(pytest_args)
    # A1111's --skip-install also means "no extension installs": the server honours it too.
    start_server([*server_args, *(["--skip-install"] if opts.skip_install else [])])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
