"""Extension discovery: folders, metadata.ini, load order, enable/disable, git state, preload.py."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from webui.flags import UnsupportedFlag, parse_args
from webui.plugins.extensions import discover, read_extension

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"]


def make_ext(root: Path, name: str, metadata: str | None = None, files: dict[str, str] | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    if metadata is not None:
        (path / "metadata.ini").write_text(metadata, encoding="utf-8")
    for rel, text in (files or {}).items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text, encoding="utf-8")
    return path


def meta(**fields: str) -> str:
    return "[Extension]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())


def names(exts) -> list[str]:
    return [e.name for e in exts]


@pytest.fixture
def dirs(tmp_path):
    user, builtin = tmp_path / "extensions", tmp_path / "builtin"
    user.mkdir()
    builtin.mkdir()
    return user, builtin


def test_builtins_come_first_then_names_case_insensitively(dirs):
    user, builtin = dirs
    for name in ("zeta", "Beta", "alpha"):
        make_ext(user, name)
    make_ext(builtin, "lora")
    (user / ".hidden").mkdir()
    (user / "not-a-folder.txt").write_text("x")
    exts = discover(user, builtin_dir=builtin)
    assert names(exts) == ["lora", "alpha", "Beta", "zeta"]
    assert [e.builtin for e in exts] == [True, False, False, False]
    assert all(e.enabled and e.errors == [] for e in exts)
    assert discover(user / "missing", builtin_dir=builtin)[0].name == "lora"


def test_before_after_and_requires_reorder_across_groups(dirs):
    user, builtin = dirs
    make_ext(builtin, "core", meta(After="late"))  # a built-in may wait for a user extension
    make_ext(user, "aaa", meta(Requires="zzz"))
    make_ext(user, "late")
    make_ext(user, "mmm", meta(Before="aaa, late"))
    make_ext(user, "zzz", meta(After="nothing-by-that-name"))
    order = names(discover(user, builtin_dir=builtin))
    assert order.index("zzz") < order.index("aaa")
    assert order.index("mmm") < order.index("aaa") and order.index("mmm") < order.index("late")
    assert order.index("late") < order.index("core")
    assert order == ["mmm", "late", "core", "zzz", "aaa"]  # otherwise the stable name order


def test_metadata_name_is_the_title_and_can_be_required(dirs):
    user, builtin = dirs
    make_ext(user, "sd-webui-foo", "[extension]\nNAME = Foo Tools\n")  # keys and section case-insensitive
    make_ext(user, "aaa", meta(Requires="foo tools"))
    exts = {e.name: e for e in discover(user, builtin_dir=builtin)}
    assert exts["sd-webui-foo"].title == "Foo Tools" and exts["aaa"].title == "aaa"
    assert exts["aaa"].enabled and exts["aaa"].requires == ("foo tools",)
    assert names(discover(user, builtin_dir=builtin)) == ["sd-webui-foo", "aaa"]


def test_a_cycle_is_broken_and_reported_on_its_members(dirs):
    user, builtin = dirs
    make_ext(user, "a", meta(After="c"))
    make_ext(user, "b", meta(After="a"))
    make_ext(user, "c", meta(After="b"))
    make_ext(user, "d", meta(After="c"))
    exts = discover(user, builtin_dir=builtin)
    assert names(exts) == ["a", "b", "c", "d"]
    for ext in exts[:3]:
        assert any("cycle" in err and "a is loaded first" in err for err in ext.errors), ext.errors
    assert exts[3].errors == [] and all(e.enabled for e in exts)


def test_missing_requirement_disables_and_cascades(dirs):
    user, builtin = dirs
    make_ext(user, "needs-ghost", meta(Requires="ghost"))
    make_ext(user, "needs-needs", meta(Requires="needs-ghost"))
    make_ext(user, "fine")
    exts = {e.name: e for e in discover(user, builtin_dir=builtin)}
    assert not exts["needs-ghost"].enabled
    assert exts["needs-ghost"].disabled_reason == "requires ghost which is missing"
    assert any("ghost" in err for err in exts["needs-ghost"].errors)
    assert not exts["needs-needs"].enabled
    assert exts["needs-needs"].disabled_reason == "requires needs-ghost which is disabled"
    assert exts["fine"].enabled


def test_disabled_in_settings_extra_and_all(dirs):
    user, builtin = dirs
    make_ext(builtin, "core")
    make_ext(user, "one")
    make_ext(user, "two", meta(Requires="one"))
    def by_name(exts):
        return {e.name: e for e in exts}

    exts = by_name(discover(user, builtin_dir=builtin, disabled=["one"]))
    assert (exts["one"].enabled, exts["one"].disabled_reason) == (False, "disabled in settings")
    assert exts["two"].disabled_reason == "requires one which is disabled" and exts["core"].enabled

    exts = by_name(discover(user, builtin_dir=builtin, disable_all="extra"))
    assert exts["core"].enabled and not exts["one"].enabled
    assert exts["one"].disabled_reason == "--disable-extra-extensions"

    exts = by_name(discover(user, builtin_dir=builtin, disable_all="all"))
    assert not any(e.enabled for e in exts.values())
    assert exts["core"].disabled_reason == "--disable-all-extensions"
    with pytest.raises(ValueError):
        discover(user, builtin_dir=builtin, disable_all="some")


def test_user_extension_named_like_a_builtin_is_listed_but_disabled(dirs):
    user, builtin = dirs
    make_ext(builtin, "Lora")
    make_ext(user, "lora")
    builtin_ext, user_ext = discover(user, builtin_dir=builtin)
    assert builtin_ext.builtin and builtin_ext.enabled
    assert not user_ext.enabled and "same name" in user_ext.disabled_reason
    assert user_ext.errors == ["a built-in extension has the same name"]


def test_broken_metadata_is_an_error_not_an_exception(dirs):
    user, builtin = dirs
    make_ext(user, "broken", "this is not ini\n[Extension\n")
    make_ext(user, "binary").joinpath("metadata.ini").write_bytes(b"\xff\xfe\x00bad")
    exts = discover(user, builtin_dir=builtin)
    assert [e.enabled for e in exts] == [True, True]
    assert all(len(e.errors) == 1 and "metadata.ini" in e.errors[0] for e in exts)
    assert all(e.title == e.name and e.requires == () for e in exts)


def test_git_fields_come_from_a_real_repository(dirs):
    user, builtin = dirs
    path = make_ext(user, "repo", files={"scripts/a.py": ""})
    subprocess.run([*GIT, "init", "-q", str(path)], check=True)
    subprocess.run([*GIT, "-C", str(path), "add", "-A"], check=True)
    subprocess.run([*GIT, "-C", str(path), "commit", "-qm", "first"], check=True)
    subprocess.run([*GIT, "-C", str(path), "remote", "add", "origin", "https://example.invalid/repo.git"], check=True)
    head = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    make_ext(user, "plain")

    plain, repo = discover(user, builtin_dir=builtin)
    assert repo.commit == head and len(head) == 40
    assert repo.branch == "main" and repo.remote == "https://example.invalid/repo.git"
    assert repo.commit_date[:4].isdigit() and "T" in repo.commit_date
    assert repo.version == f"{head[:8]} ({repo.commit_date[:10]})"
    assert (plain.commit, plain.remote, plain.branch, plain.version) == (None, None, None, "")
    assert read_extension(path, read_git=False).commit is None


def test_listings_ignore_files_symlinked_from_outside(tmp_path, dirs):
    user, builtin = dirs
    outside = tmp_path / "secret"
    outside.mkdir()
    for name in ("evil.py", "evil.js", "style.css", "evil.json", "preload.py"):
        (outside / name).write_text("x")
    path = make_ext(user, "ext", files={
        "scripts/b.py": "", "scripts/a.py": "", "scripts/notes.txt": "",
        "javascript/z.js": "", "javascript/m.mjs": "", "localizations/fr.json": "{}",
        "install.py": "", "requirements.txt": "",
    })
    (path / "scripts" / "inner.py").symlink_to(path / "scripts" / "a.py")  # inside: fine
    (path / "scripts" / "evil.py").symlink_to(outside / "evil.py")
    (path / "javascript" / "evil.js").symlink_to(outside / "evil.js")
    (path / "localizations" / "evil.json").symlink_to(outside / "evil.json")
    (path / "style.css").symlink_to(outside / "style.css")
    (path / "preload.py").symlink_to(outside / "preload.py")
    (path / "scripts" / "dir.py").mkdir()

    ext = discover(user, builtin_dir=builtin)[0]
    assert [p.name for p in ext.script_files()] == ["a.py", "b.py", "inner.py"]
    assert [p.name for p in ext.javascript_files()] == ["m.mjs", "z.js"]
    assert [p.name for p in ext.localization_files()] == ["fr.json"]
    assert ext.stylesheet() is None and ext.preload_file() is None
    assert ext.install_script() == path / "install.py" and ext.requirements_file() == path / "requirements.txt"


def test_a_symlinked_extension_folder_is_discovered(tmp_path, dirs):
    user, builtin = dirs
    real = make_ext(tmp_path / "elsewhere", "linked", files={"scripts/s.py": "", "style.css": ""})
    (user / "linked").symlink_to(real, target_is_directory=True)
    ext = discover(user, builtin_dir=builtin)[0]
    assert ext.name == "linked" and [p.name for p in ext.script_files()] == ["s.py"]
    assert ext.stylesheet() is not None


# --- preload.py and the flags ---------------------------------------------------------------------

PRELOAD_FLAG = "def preload(parser):\n    parser.add_argument('--my-flag', type=int, default=3)\n"


def test_preload_flags_end_up_in_extension_flags(tmp_path):
    make_ext(tmp_path / "extensions", "flagger", files={"preload.py": PRELOAD_FLAG})
    cmd = parse_args(["--data-dir", str(tmp_path), "--my-flag", "7", "--port", "9000"])
    assert cmd.extension_flags == {"my_flag": 7} and cmd.port == 9000 and cmd.preload_errors == ()
    assert parse_args(["--data-dir", str(tmp_path)]).extension_flags == {"my_flag": 3}
    hash(cmd)  # still usable as a key


def test_a_raising_preload_is_reported_and_other_flags_still_parse(tmp_path):
    exts = tmp_path / "extensions"
    make_ext(exts, "bad", files={"preload.py": "def preload(parser):\n    raise ValueError('boom\\nagain')\n"})
    make_ext(exts, "exits", files={"preload.py": "import sys\nsys.exit(3)\n"})
    make_ext(exts, "typo", files={"preload.py": "def preload(parser):\n    parser.add_argument('-x', nargs='?', "
                                                  "action='store_true')\n"})
    make_ext(exts, "dupe", files={"preload.py": "def preload(parser):\n    parser.add_argument('--lora-dir')\n"
                                                 "    parser.add_argument('--dupe-ok', action='store_true')\n"})
    make_ext(exts, "good", files={"preload.py": PRELOAD_FLAG})
    cmd = parse_args(["--data-dir", str(tmp_path), "--my-flag", "1", "--dupe-ok"])
    errors = dict(cmd.preload_errors)
    assert errors["bad"] == "ValueError: boom again"
    assert errors["exits"] == "SystemExit: 3"
    assert errors["typo"].startswith("ValueError") or errors["typo"].startswith("TypeError")
    assert set(errors) == {"bad", "exits", "typo"}
    assert cmd.extension_flags == {"my_flag": 1, "dupe_ok": True}
    with pytest.raises(UnsupportedFlag, match="unrecognized arguments: --not-a-flag"):
        parse_args(["--data-dir", str(tmp_path), "--not-a-flag"])


def test_disabled_extensions_add_no_flags(tmp_path):
    make_ext(tmp_path / "extensions", "flagger", files={"preload.py": PRELOAD_FLAG})
    base = ["--data-dir", str(tmp_path)]
    assert parse_args([*base, "--disable-extra-extensions"]).extension_flags == {}
    assert parse_args([*base, "--disable-all-extensions"]).disable_all_extensions
    (tmp_path / "config.json").write_text(json.dumps({"disabled_extensions": ["flagger"]}))
    assert parse_args(base).extension_flags == {}
    (tmp_path / "config.json").write_text(json.dumps({"disable_all_extensions": "extra"}))
    assert parse_args(base).extension_flags == {}
    (tmp_path / "config.json").write_text("{broken")
    assert parse_args(base).extension_flags == {"my_flag": 3}
    with pytest.raises(UnsupportedFlag, match="--my-flag"):
        parse_args([*base, "--disable-all-extensions", "--my-flag", "2"])


def test_extension_flags_and_paths(tmp_path):
    from webui.flags import Paths

    cmd = parse_args(["--data-dir", str(tmp_path), "--skip-install", "--enable-insecure-extension-access"])
    assert cmd.skip_install and cmd.enable_insecure_extension_access
    assert not cmd.disable_all_extensions and not cmd.disable_extra_extensions
    assert Paths.from_cmd(cmd).extensions_dir == tmp_path / "extensions"
