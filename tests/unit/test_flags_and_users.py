"""A1111's command line as its users type it, and the users file behind the logins."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.kit.servers import REPO_ROOT
from webui.app import flag_users
from webui.auth.users import UserError, UserStore
from webui.flags import CommandLine, Paths, UnsupportedFlag, parse_args


def run_webui(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "webui", *args], cwd=REPO_ROOT, input=stdin, capture_output=True,
                          text=True, timeout=120)


# --- flags ----------------------------------------------------------------------------------------


def test_a1111_folder_flags_point_at_an_existing_models_tree(tmp_path):
    a1111 = tmp_path / "stable-diffusion-webui" / "models"
    cmd = parse_args(["--data-dir", str(tmp_path / "data"), "--models-dir", str(a1111),
                      "--lora-dir", str(tmp_path / "loras"), "--ckpt-dir", str(tmp_path / "ckpts")])
    paths = Paths.from_cmd(cmd)
    assert paths.vae_dir == a1111 / "VAE" and paths.hypernetwork_dir == a1111 / "hypernetworks"
    assert paths.ckpt_dir == tmp_path / "ckpts" and paths.lora_dir == tmp_path / "loras"
    assert paths.network_folders()["lora"] == [tmp_path / "loras", a1111 / "LyCORIS"]
    assert paths.network_folders()["embedding"][0] == a1111 / "embeddings"


@pytest.mark.parametrize(("argv", "sentence"), [
    (["--share"], "never opens a public tunnel"),
    (["--ngrok", "token"], "opens no tunnels"),
    (["--disable-safe-unpickle"], "never unpickled"),
    (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    (["--port", "many"], "invalid int value"),
])
def test_flags_we_do_not_take_give_one_sentence(argv, sentence):
    with pytest.raises(UnsupportedFlag, match=sentence):
        parse_args(argv)


def test_a1111_performance_flags_are_accepted_and_said_to_be_ignored(tmp_path):
    cmd = parse_args(["--data-dir", str(tmp_path), "--opt-sdp-attention", "--precision", "full", "--api", "--listen"])
    assert cmd.listen and cmd.data_dir == tmp_path
    assert any("--opt-sdp-attention" in note for note in cmd.notes)
    assert any("--precision" in note for note in cmd.notes)


def test_the_command_line_says_a_refused_flag_in_one_line(tmp_path):
    done = run_webui("--data-dir", str(tmp_path), "--share")
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "--share is not supported" in done.stderr
    assert "usage:" not in done.stderr and "Traceback" not in done.stderr


def test_a_read_only_data_dir_is_a_sentence_at_start():
    parent = Path(tempfile.mkdtemp())  # not under pytest's 0700 folder: "nobody" must reach it
    data_dir = parent / "ro"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    parent.chmod(0o755)
    # root writes anywhere: run the server as "nobody" then
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    try:
        done = subprocess.run([*as_nobody, sys.executable, "-m", "webui", "--data-dir", str(data_dir), "--no-demo-model"],
                              cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(parent)})
    finally:
        data_dir.chmod(0o755)
        shutil.rmtree(parent)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr and "Running on" not in done.stdout
    assert f"the data dir {data_dir} cannot be written" in done.stderr


# --- users ----------------------------------------------------------------------------------------


def test_the_users_file_keeps_salted_hashes_only(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("ann", "correct horse battery")
    store.add("bob", "correct horse battery", role="admin")
    text = (tmp_path / "users.json").read_text()
    assert "correct horse" not in text
    entries = json.loads(text)["users"]
    assert entries["ann"]["salt"] != entries["bob"]["salt"] and entries["ann"]["hash"] != entries["bob"]["hash"]
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    again = UserStore(tmp_path / "users.json")
    assert again.verify("ann", "correct horse battery").role == "user"
    assert again.verify("bob", "correct horse battery").is_admin
    assert again.verify("ann", "wrong") is None and again.verify("nobody", "correct horse battery") is None
    for name, password in (("../x", "long enough"), ("ann", "short")):
        with pytest.raises(UserError):
            store.add(name, password)


def test_a1111_auth_flags_name_admins_and_turn_logins_on(tmp_path):
    (tmp_path / "auth.txt").write_text("eve:pw-from-file\n")
    cmd = CommandLine(data_dir=tmp_path, gradio_auth="ann:pw1,bob:pw:with:colons", gradio_auth_path=tmp_path / "auth.txt",
                      api_auth="api:pw3")
    store = UserStore(tmp_path / "users.json", flag_users(cmd))
    assert store.enabled and store.names() == ["ann", "api", "bob", "eve"]
    assert store.verify("bob", "pw:with:colons").is_admin and store.verify("eve", "pw-from-file").is_admin
    assert not (tmp_path / "users.json").exists()  # flag users live in memory only
    assert not UserStore(tmp_path / "empty.json").enabled


def test_users_are_managed_from_the_command_line(tmp_path):
    added = run_webui("--data-dir", str(tmp_path), "--add-user", "ann", "--admin", stdin="a long password\n")
    assert added.returncode == 0, added.stderr
    assert "a long password" not in added.stdout + added.stderr
    assert UserStore(tmp_path / "users.json").verify("ann", "a long password").is_admin
    short = run_webui("--data-dir", str(tmp_path), "--add-user", "bob", stdin="short\n")
    assert short.returncode == 2 and "at least 8 characters" in short.stderr
    removed = run_webui("--data-dir", str(tmp_path), "--remove-user", "ann")
    assert removed.returncode == 0 and UserStore(tmp_path / "users.json").names() == []
