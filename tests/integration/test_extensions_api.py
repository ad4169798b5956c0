"""Managing extensions over real HTTP: A1111's listing, install from a git repository, the LAN
policy and roles, and "apply and restart" re-executing the server with the extension loaded.

Two servers in all (each start costs ~10 s): one on the LAN with --enable-insecure-extension-access
(installs allowed for admins), one on the LAN without it (every change refused).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.kit.servers import LiveServer, start_server, wait_for
from webui.auth.users import UserStore

pytestmark = pytest.mark.timeout(300)

KIT = Path(__file__).resolve().parents[1] / "kit" / "extensions"
ADMIN = ("admin", "admin-password")
BOB = ("bob", "bob-password")  # an ordinary user
A1111_FIELDS = {"name", "remote", "branch", "commit_hash", "version", "commit_date", "enabled"}


def git(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid", *args], cwd=cwd,
                   check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def repos(tmp_path_factory) -> dict[str, Path]:
    """The kit's extensions as local git repositories (one commit on ``main``) to install from."""
    root = tmp_path_factory.mktemp("repos")
    for name in ("native-style", "a1111-style"):
        shutil.copytree(KIT / name, root / name)
        git("init", "-q", "-b", "main", cwd=root / name)
        git("add", "-A", cwd=root / name)
        git("commit", "-q", "-m", "first", cwd=root / name)
    return {name: root / name for name in ("native-style", "a1111-style")}


def lan_server(data_dir: Path, repos: dict[str, Path], *extra: str) -> LiveServer:
    """A --listen server with logins (admin by flag, bob in the users file) and native-style installed."""
    git("clone", "-q", str(repos["native-style"]), str(data_dir / "extensions" / "native-style"))
    UserStore(data_dir / "users.json").add(BOB[0], BOB[1], "user")
    return start_server(data_dir, ["--listen", "--gradio-auth", ":".join(ADMIN), "--no-demo-model", *extra],
                        auth=ADMIN)


@pytest.fixture(scope="module")
def server(tmp_path_factory, repos) -> LiveServer:
    live = lan_server(tmp_path_factory.mktemp("studio"), repos, "--enable-insecure-extension-access")
    yield live
    live.stop()


def listed(live: LiveServer, client: httpx.Client | None = None) -> dict[str, dict]:
    body = (client or live.client).get("/api/v1/extensions").json()
    return {e["name"]: e for e in body["extensions"]}


def test_a1111_listing_and_ours_with_paths_by_role(server, repos):
    items = server.get("/sdapi/v1/extensions").json()
    assert [i["name"] for i in items] == ["native-style"]  # as A1111: git checkouts only, no built-ins
    item = items[0]
    assert set(item) == A1111_FIELDS
    assert item["remote"] == str(repos["native-style"]) and item["branch"] == "main" and item["enabled"] is True
    assert len(item["commit_hash"]) == 40 and item["version"] == item["commit_hash"][:8]
    assert item["commit_date"].isdigit()  # A1111's Unix time (its pydantic-1 model sends it as a string)

    mine = listed(server)["native-style"]
    assert mine["loaded"] and mine["enabled"] and not mine["restart_needed"] and mine["problems"] == []
    assert mine["path"] == str(server.data_dir.resolve() / "extensions" / "native-style")
    with server.as_user(*BOB) as bob:
        assert listed(server, bob)["native-style"]["path"] == "extensions/native-style"
    assert httpx.get(f"{server.base_url}/api/v1/extensions").status_code == 401


def test_changes_are_for_admins_and_known_names(server, repos):
    with server.as_user(*BOB) as bob:
        for method, path, body in [("POST", "/api/v1/extensions/install", {"url": str(repos["a1111-style"])}),
                                   ("POST", "/api/v1/extensions/apply", {"disabled": []}),
                                   ("POST", "/api/v1/server/restart", None),
                                   ("DELETE", "/api/v1/extensions/native-style", None)]:
            response = bob.request(method, path, json=body)
            assert response.status_code == 403 and "admin" in response.json()["message"], (path, response.text)
    assert server.delete("/api/v1/extensions/nope").status_code == 404
    assert server.post("/api/v1/extensions/nope/update").status_code == 404
    assert server.post("/api/v1/extensions/apply", json={"disabled": ["nope"]}).status_code == 404
    assert server.post("/api/v1/extensions/install", json={"url": "ftp://example.invalid/x"}).status_code == 422
    assert server.post("/api/v1/extensions/install", json={"url": str(repos["a1111-style"]),
                                                           "name": "../outside"}).status_code == 422
    clash = server.post("/api/v1/extensions/install", json={"url": str(repos["native-style"])})
    assert clash.status_code == 409, clash.text
    assert not (server.data_dir / "outside").exists()


def test_install_then_apply_restarts_the_process_with_the_new_set(server, repos):
    assert server.get("/native-style/color").json() == {"color": "teal"}  # the extension's own route
    done = server.post("/api/v1/extensions/install", json={"url": str(repos["a1111-style"])})
    assert done.status_code == 200, done.text
    assert done.json()["name"] == "a1111-style" and "restart" in done.json()["message"]
    assert (server.data_dir / "extensions" / "a1111-style" / "scripts" / "prompt_tools.py").is_file()
    fresh = listed(server)["a1111-style"]
    assert fresh["enabled"] and not fresh["loaded"] and fresh["restart_needed"]

    pid = server.process.pid
    applied = server.post("/api/v1/extensions/apply", json={"disabled": ["native-style"], "disable_all": "none"})
    assert applied.status_code == 200 and applied.json()["restarting"] is True, applied.text

    def restarted() -> dict | None:
        try:
            found = listed(server)
        except (httpx.TransportError, ValueError):
            return None  # down, or starting
        return found if found.get("a1111-style", {}).get("loaded") else None

    after = wait_for(restarted, timeout=180, every=0.5)
    assert server.alive() and server.process.pid == pid  # re-executed in place, not a new child
    assert "Restarting" in server.log()
    assert after["a1111-style"]["problems"] == [] and not after["native-style"]["loaded"]
    assert not after["native-style"]["enabled"] and not after["native-style"]["restart_needed"]
    states = {i["name"]: i["enabled"] for i in server.get("/sdapi/v1/extensions").json()}
    assert states == {"a1111-style": True, "native-style": False}
    assert server.get("/native-style/color").status_code == 404  # its route went with it
    config = json.loads((server.data_dir / "config.json").read_text())
    assert "native-style" in config["disabled_extensions"] and "a1111-style" not in config["disabled_extensions"]
    assert config.get("disable_all_extensions", "none") == "none"


def test_lan_server_without_the_flag_refuses_every_change(tmp_path, repos):
    live = lan_server(tmp_path, repos)
    try:
        assert [i["name"] for i in live.get("/sdapi/v1/extensions").json()] == ["native-style"]
        assert live.get("/api/v1/extensions").json()["changes_allowed"] is False
        for method, path, body in [("POST", "/api/v1/extensions/install", {"url": str(repos["a1111-style"])}),
                                   ("POST", "/api/v1/extensions/apply", {"disabled": ["native-style"]}),
                                   ("POST", "/api/v1/extensions/check-updates", None),
                                   ("POST", "/api/v1/extensions/native-style/update", None),
                                   ("DELETE", "/api/v1/extensions/native-style", None),
                                   ("POST", "/api/v1/server/restart", None)]:
            response = live.client.request(method, path, json=body)
            assert response.status_code == 403, (path, response.text)
            assert "--enable-insecure-extension-access" in response.json()["message"]
        assert not (tmp_path / "extensions" / "a1111-style").exists()
        assert (tmp_path / "extensions" / "native-style").is_dir()
    finally:
        live.stop()
