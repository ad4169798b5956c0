"""The extension installer (git, install.py, state), the requirements guard and the ``launch`` shim."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from webui.plugins import requirements_guard as guard
from webui.plugins.extensions import Extension, read_extension
from webui.plugins.installer import ExtensionInstaller, default_name

REPO = Path(__file__).resolve().parents[2]
LOCK_FILE = REPO / "requirements.lock"
LOCK = guard.read_lock(LOCK_FILE)
GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]

# install.py appends a line to a marker file outside the extension, and checks the launch shim.
INSTALL_PY = """\
import sys
from pathlib import Path
import launch
assert launch.is_installed("packaging") and not launch.is_installed("no-such-dist-xyz")
try:
    launch.run_pip("install torch==1.0", "old torch")
except RuntimeError as e:
    assert "torch" in str(e)
else:
    sys.exit("run_pip let torch==1.0 through")
with open({marker!r}, "a") as f:
    f.write("ran\\n")
print("install.py done")
"""


def git(*args: str, cwd: Path) -> str:
    return subprocess.run([*GIT, "-C", str(cwd), *args], check=True, capture_output=True, text=True).stdout


def make_source(root: Path, name: str, marker: Path, requirements: str | None = None, install: str | None = None
                ) -> Path:
    """A git repository standing in for the extension's upstream."""
    src = root / "upstream" / name
    (src / "scripts").mkdir(parents=True)
    (src / "scripts" / "s.py").write_text("# a script\n")
    (src / "install.py").write_text(install if install is not None else INSTALL_PY.format(marker=str(marker)))
    if requirements is not None:
        (src / "requirements.txt").write_text(requirements)
    subprocess.run([*GIT, "init", "-q", str(src)], check=True)
    git("add", "-A", cwd=src)
    git("commit", "-qm", "first", cwd=src)
    return src


def runs(marker: Path) -> int:
    return len(marker.read_text().splitlines()) if marker.exists() else 0


@pytest.fixture
def setup(tmp_path, monkeypatch):
    # Should the guard ever let a pip command through, pip must still change nothing here.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_DRY_RUN", "1")
    user = tmp_path / "extensions"
    builtin = tmp_path / "builtin"
    (builtin / "core").mkdir(parents=True)
    installer = ExtensionInstaller(user, tmp_path / "state.json", lock_file=LOCK_FILE, builtin_dir=builtin, timeout=60)
    return installer, user, tmp_path / "marker.txt"


def leftovers(user: Path) -> list[str]:
    return sorted(p.name for p in user.iterdir() if p.name.startswith(".")) if user.exists() else []


def test_install_from_a_local_path_runs_install_py_once(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "sd-webui-demo.git", marker)
    report = installer.install(str(src))
    assert report.ok, report
    assert report.name == "sd-webui-demo" and report.ran_install and "install.py done" in report.output
    ext = read_extension(user / "sd-webui-demo")
    assert ext.commit == git("rev-parse", "HEAD", cwd=src).strip() and report.message.endswith(ext.version)
    assert runs(marker) == 1 and leftovers(user) == []
    assert installer.run_install_if_needed(ext) is None and runs(marker) == 1
    assert json.loads((tmp_path / "state.json").read_text()).keys() == {"sd-webui-demo"}
    (user / "sd-webui-demo" / "requirements.txt").write_text("packaging\n")  # a new requirement: run again
    assert installer.run_install_if_needed(ext).ok and runs(marker) == 2


def test_install_from_a_file_url_with_a_name_and_branch(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "demo", marker)
    report = installer.install(src.as_uri(), name="renamed", branch="main")
    assert report.ok, report
    assert (user / "renamed" / "scripts" / "s.py").is_file() and runs(marker) == 1
    assert read_extension(user / "renamed").branch == "main"


@pytest.mark.parametrize(("url", "name", "expected"), [
    ("SRC", "../x", "not an acceptable folder name"),
    ("SRC", "a/b", "not an acceptable folder name"),
    ("SRC", ".hidden", "not an acceptable folder name"),
    ("SRC", "", "name is empty"),
    ("SRC", "core", "already exists"),  # a built-in's name
    ("-oProxyCommand=touch /tmp/x", None, "not an acceptable repository URL"),
    ("ext::sh -c touch% /tmp/pwned", None, "only https, http, ssh, git and file URLs"),
    ("ftp://example.invalid/x.git", None, "only https, http, ssh, git and file URLs"),
    ("/no/such/folder", None, "neither a repository URL nor a local folder"),
    ("", None, "no URL given"),
])
def test_bad_names_and_urls_are_refused(setup, tmp_path, url, name, expected):
    installer, user, marker = setup
    src = make_source(tmp_path, "demo", marker)
    report = installer.install(str(src) if url == "SRC" else url, name=name)
    assert not report.ok and expected in report.message
    assert runs(marker) == 0 and leftovers(user) == []


def test_a_clash_with_an_installed_extension_is_refused(setup, tmp_path):
    installer, _, marker = setup
    src = make_source(tmp_path, "demo", marker)
    assert installer.install(str(src)).ok
    again = installer.install(src.as_uri())
    assert not again.ok and "already exists" in again.message and runs(marker) == 1


def test_a_failed_clone_leaves_nothing(setup, tmp_path):
    installer, user, _ = setup
    (tmp_path / "empty").mkdir()
    report = installer.install((tmp_path / "empty").as_uri(), name="x")
    assert not report.ok and "git clone" in report.message
    assert leftovers(user) == [] and not (user / "x").exists()
    not_a_repo = installer.install(str(tmp_path / "empty"))
    assert not not_a_repo.ok and list(user.iterdir()) == []


def test_update_fast_forwards_and_reruns_install_when_requirements_change(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "demo", marker, requirements="packaging\n")
    assert installer.install(src.as_uri()).ok and runs(marker) == 1
    ext = read_extension(user / "demo")
    assert installer.check_for_updates(ext) == (False, "up to date")
    assert installer.update(ext).ok and runs(marker) == 1  # nothing new: install.py not rerun

    (src / "requirements.txt").write_text("packaging\nsomenewpkg>=1\n")
    git("commit", "-qam", "new requirement", cwd=src)
    assert installer.check_for_updates(ext) == (True, "1 new commit")
    report = installer.update(ext)
    assert report.ok and report.ran_install and runs(marker) == 2, report
    fresh = read_extension(user / "demo")
    assert fresh.commit == git("rev-parse", "HEAD", cwd=src).strip()
    assert installer.check_for_updates(fresh) == (False, "up to date")
    assert installer.run_install_if_needed(fresh) is None and runs(marker) == 2


def test_update_refuses_local_changes_and_non_repositories(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "demo", marker)
    assert installer.install(str(src)).ok
    (src / "scripts" / "s.py").write_text("# upstream\n")
    git("commit", "-qam", "upstream change", cwd=src)
    (user / "demo" / "scripts" / "s.py").write_text("# my local edit\n")
    ext = read_extension(user / "demo")
    report = installer.update(ext)
    assert not report.ok and "local changes" in report.message
    assert (user / "demo" / "scripts" / "s.py").read_text() == "# my local edit\n"

    (user / "plain").mkdir()
    plain = read_extension(user / "plain")
    assert installer.check_for_updates(plain) == (False, "not a git repository")
    assert not installer.update(plain).ok


def test_a_requirement_that_moves_a_locked_package_stops_install_py(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "old-torch", marker, requirements="numpy\ntorch==1.13.0  # pinned\n")
    report = installer.install(str(src))
    assert not report.ok and "torch==1.13.0" in report.message and "not run" in report.message
    assert runs(marker) == 0 and not report.ran_install
    assert not (user / "old-torch").exists() and leftovers(user) == []


def test_a_failing_install_py_is_reported_and_retried_next_time(setup, tmp_path):
    installer, user, _ = setup
    path = user / "fails"
    path.mkdir(parents=True)
    (path / "install.py").write_text("print('going wrong')\nraise SystemExit(5)\n")
    ext = read_extension(path)
    report = installer.run_install_if_needed(ext)
    assert not report.ok and "exit code 5" in report.message and "going wrong" in report.output
    assert installer.run_install_if_needed(ext) is not None  # not recorded: runs again
    assert not (tmp_path / "state.json").exists()


def test_skip_install_and_disabled_extensions_do_not_run_install_py(setup, tmp_path):
    _, user, marker = setup
    skipping = ExtensionInstaller(user, tmp_path / "state.json", lock_file=LOCK_FILE, skip_install=True)
    src = make_source(tmp_path, "demo", marker)
    report = skipping.install(str(src))
    assert report.ok and "--skip-install" in report.message and runs(marker) == 0
    ext = read_extension(user / "demo")
    ext.enabled = False
    assert ExtensionInstaller(user, tmp_path / "state.json").run_install_if_needed(ext) is None
    assert runs(marker) == 0


def test_remove_deletes_user_extensions_only(setup, tmp_path):
    installer, user, marker = setup
    src = make_source(tmp_path, "demo", marker)
    assert installer.install(str(src)).ok
    report = installer.remove(read_extension(user / "demo"))
    assert report.ok and not (user / "demo").exists()
    assert "demo" not in json.loads((tmp_path / "state.json").read_text())

    core = Extension(name="core", path=tmp_path / "builtin" / "core", builtin=True)
    assert not installer.remove(core).ok and (tmp_path / "builtin" / "core").is_dir()
    outside = Extension(name="upstream", path=tmp_path / "upstream", builtin=False)
    refused = installer.remove(outside)
    assert not refused.ok and "not inside" in refused.message and (tmp_path / "upstream").is_dir()

    (user / "linked").symlink_to(src, target_is_directory=True)
    assert installer.remove(read_extension(user / "linked")).ok
    assert not (user / "linked").exists() and src.is_dir()  # only the link went


def test_default_name():
    assert default_name("https://github.com/a/sd-webui-x.git") == "sd-webui-x"
    assert default_name("git@github.com:a/b.git") == "b"
    assert default_name("/some/path/ext/") == "ext"


# --- the requirements guard ----------------------------------------------------------------------

@pytest.mark.parametrize(("line", "conflict"), [
    (f"torch=={LOCK['torch']}", None),
    ("torch>=2", None),
    ("torch>=3", "is locked"),
    ("torch==1.13.0", "is locked"),
    ("gradio<4", "is locked"),
    ("Transformers==4.30", "is locked"),
    (f"Gradio_Client=={LOCK['gradio-client']}", None),
    ("diffusers[torch]>=0.20", None),
    ("somenewpkg", None),
    ("somenewpkg==1.0", None),
    ("torch==1.0; sys_platform == 'nonexistent-os'", None),
    ("git+https://github.com/a/b.git", "cannot be checked offline"),
    ("pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl", "cannot be checked offline"),
    ("./vendor/pkg", "cannot be checked offline"),
    ("-r other.txt", "pip options"),
    ("--extra-index-url https://x", "pip options"),
    ("not a requirement !!", "not a valid requirement"),
])
def test_requirement_lines_against_the_real_lock(line, conflict):
    found = guard.check_requirements([line, "", "# a comment"], LOCK)
    if conflict is None:
        assert found == []
    else:
        assert len(found) == 1 and conflict in found[0].reason and found[0].line == line


@pytest.mark.parametrize(("args", "package"), [
    ("install -U torch", "torch"),
    ("install --upgrade gradio", "gradio"),
    ("install torch==1.0 --extra-index-url https://example.invalid/whl", "torch"),
    ("uninstall -y transformers", "transformers"),
    ("install -r requirements.txt", ""),
    ("install -U somenewpkg", None),
    (f"install --index-url https://example.invalid torch=={LOCK['torch']} insightface==0.7.3", None),
    ("list", None),
])
def test_pip_command_lines(args, package):
    found = guard.check_pip_args(args, LOCK)
    assert (found[0].package if found else None) == package


def test_the_pip_dry_run_report_is_read_and_pip_failures_are_ignored(tmp_path):
    fake = tmp_path / "fake-python"
    report = json.dumps({"install": [{"metadata": {"name": "Torch", "version": "9.9"}},
                                     {"metadata": {"name": "newpkg", "version": "1.0"}}]})
    fake.write_text(f"#!/bin/sh\nwhile [ \"$1\" != --report ]; do shift; done\necho '{report}' > \"$2\"\n")
    fake.chmod(0o755)
    found = guard.dry_run_conflicts(["newpkg"], LOCK, python=str(fake))
    assert [(c.package, c.locked) for c in found] == [("torch", LOCK["torch"])]
    assert guard.dry_run_conflicts(["surely-not-on-this-machine-pkg"], LOCK, python=sys.executable) == []
    assert guard.read_lock(tmp_path / "missing.lock") == {}


# --- the A1111 `launch` shim ---------------------------------------------------------------------

@pytest.fixture
def launch():
    spec = importlib.util.spec_from_file_location("sd_test_launch", REPO / "webui" / "compat" / "launch.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_launch_shim(launch, monkeypatch):
    calls = []
    monkeypatch.setattr(launch.subprocess, "run", lambda *a, **k: calls.append(a) or None)
    with pytest.raises(RuntimeError, match="'torch==1.0' \\(torch\\)"):
        launch.run_pip("install torch==1.0 pillow")
    assert calls == []  # pip never ran
    with pytest.raises(AttributeError, match="launch.prepare_environment is not provided"):
        launch.prepare_environment  # noqa: B018
    assert launch.is_installed("packaging") and not launch.is_installed("no-such-dist-xyz")
    assert launch.git == "git" and launch.python == sys.executable and launch.index_url == ""


def test_launch_run(launch):
    assert launch.run("echo hi").strip() == "hi"
    with pytest.raises(RuntimeError, match="my step failed"):
        launch.run("exit 3", errdesc="my step failed")
