"""A studio shared on a LAN, tried the way a curious colleague would: two users and an admin over
real HTTP, against one server with logins on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import copy_checkpoint
from tests.kit.servers import add_user, start_server, wait_for

pytestmark = pytest.mark.timeout(600)

SMALL = {"prompt": "a red cube", "steps": 2, "width": 64, "height": 64, "seed": 5, "sampler_name": "Euler"}
SLOW = {"prompt": "slow", "steps": 40, "width": 192, "height": 192, "seed": 7, "sampler_name": "Euler"}
PASSWORDS = {"alice": "alice-secret-1", "bob": "bob-secret-22", "carol": "carol-secret-333"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("lan")
    ckpt_dir = data_dir / "models" / "Stable-diffusion"
    copy_checkpoint(checkpoint_store("sd15"), ckpt_dir, "sd15.safetensors")
    copy_checkpoint(checkpoint_store("sdxl-base"), ckpt_dir, "sdxl-base.safetensors")
    for name, admin in (("alice", True), ("bob", False), ("carol", False)):
        done = add_user(data_dir, name, PASSWORDS[name], admin)
        assert done.returncode == 0, done.stderr
    (data_dir / "styles.csv").write_text("name,prompt,negative_prompt\ndouble,{prompt}{prompt},\n")
    server = start_server(data_dir, extra_args=["--no-demo-model"], auth=("alice", PASSWORDS["alice"]))
    yield server
    server.stop()


@pytest.fixture
def users(server):
    clients = {name: server.as_user(name, password) for name, password in PASSWORDS.items()}
    clients["nobody"] = httpx.Client(base_url=server.base_url, timeout=60)
    yield clients
    for client in clients.values():
        client.close()



def test_the_users_file_holds_no_password(server):
    text = (server.data_dir / "users.json").read_text()
    assert all(password not in text for password in PASSWORDS.values())
    assert json.loads(text)["users"]["alice"]["role"] == "admin"
    assert oct((server.data_dir / "users.json").stat().st_mode & 0o777) == "0o600"


def test_basic_auth_cookie_login_and_logout(users, server):
    nobody = users["nobody"]
    response = nobody.get("/sdapi/v1/sd-models")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Basic")
    assert users["bob"].get("/sdapi/v1/sd-models").status_code == 200
    with httpx.Client(base_url=server.base_url, timeout=60, auth=("bob", "wrong")) as wrong:
        assert wrong.get("/sdapi/v1/sd-models").status_code == 401
    page = nobody.get("/", headers={"accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    assert "<form" in nobody.get("/login").text and nobody.get("/health").json()["logins"] is True
    login = nobody.post("/login", data={"username": "bob", "password": PASSWORDS["bob"], "next": "//evil.example/"})
    assert login.status_code == 303 and login.headers["location"] == "/"  # no open redirect
    assert nobody.get("/sdapi/v1/options").status_code == 200  # the session cookie now
    nobody.get("/logout")
    assert nobody.get("/sdapi/v1/options").status_code == 401


def test_each_user_sees_and_stops_only_their_own_jobs(users):
    bob, carol, alice = users["bob"], users["carol"], users["alice"]
    job = bob.post("/api/v1/jobs", json=SLOW).json()
    wait_for(lambda: bob.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "running")
    assert carol.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert carol.delete(f"/api/v1/jobs/{job['id']}").status_code == 404
    assert job["id"] not in [j["id"] for j in carol.get("/api/v1/jobs").json()]
    assert carol.get("/sdapi/v1/progress").json()["state"]["sampling_steps"] == 0  # nothing of hers runs
    carol.post("/sdapi/v1/interrupt")
    carol.post("/sdapi/v1/skip")
    time.sleep(0.5)
    assert bob.get(f"/api/v1/jobs/{job['id']}").json()["state"] == "running"
    assert job["id"] in [j["id"] for j in alice.get("/api/v1/jobs").json()]  # an admin sees all
    bob.post("/sdapi/v1/interrupt")  # A1111's global interrupt: the caller's own running job
    finished = wait_for(lambda: (j := bob.get(f"/api/v1/jobs/{job['id']}").json())["state"] == "done" and j)
    assert finished["interrupted"] is True and finished["info"]["prompt"] == "slow"


def test_the_queue_is_fair_across_users(users):
    bob, carol = users["bob"], users["carol"]
    blocker = bob.post("/api/v1/jobs", json={**SLOW, "steps": 20}).json()
    bobs = [bob.post("/api/v1/jobs", json={**SMALL, "seed": i}).json() for i in range(3)]
    carols = carol.post("/api/v1/jobs", json=SMALL).json()
    # Bob was served last (his running job): the round goes on with carol, not with bob's three.
    assert carols["queue_position"] == 1
    assert [bob.get(f"/api/v1/jobs/{j['id']}").json()["queue_position"] for j in bobs] == [2, 3, 4]
    ids = [blocker["id"], *(j["id"] for j in bobs)]
    wait_for(lambda: all(bob.get(f"/api/v1/jobs/{i}").json()["state"] == "done" for i in ids), 120)
    started = {j["id"]: j["started_at"] for j in users["alice"].get("/api/v1/jobs").json()}
    assert started[blocker["id"]] < started[carols["id"]] < started[bobs[0]["id"]]


def test_settings_are_for_admins_and_users_pick_their_own_model(users):
    bob, alice = users["bob"], users["alice"]
    response = bob.post("/sdapi/v1/options", json={"samples_save": False})
    assert response.status_code == 403 and "admin" in response.json()["message"]
    mine = bob.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {"sd_model_checkpoint": "sdxl-base"}})
    assert json.loads(mine.json()["info"])["sd_model_name"] == "sdxl-base"
    kept = bob.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {"sd_model_checkpoint": "sdxl-base"},
                                               "override_settings_restore_afterwards": False})
    assert json.loads(kept.json()["info"])["sd_model_name"] == "sdxl-base"
    assert any("only an admin" in note for note in json.loads(kept.json()["info"])["notes"])
    assert alice.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sd15")  # not switched for all
    assert alice.post("/sdapi/v1/options", json={"send_seed": False}).status_code == 200
    assert alice.get("/sdapi/v1/options").json()["send_seed"] is False
    alice.post("/sdapi/v1/options", json={"send_seed": True})


def test_users_see_paths_relative_to_the_models_folder(users, server):
    bob_view = users["bob"].get("/sdapi/v1/sd-models").json()
    alice_view = users["alice"].get("/sdapi/v1/sd-models").json()
    assert {m["filename"] for m in bob_view} == {"sd15.safetensors", "sdxl-base.safetensors"}
    assert all(Path(m["filename"]).is_absolute() for m in alice_view)
    job = users["bob"].post("/api/v1/jobs", json={**SMALL, "save_images": True}).json()
    mine = wait_for(lambda: (j := users["bob"].get(f"/api/v1/jobs/{job['id']}").json())["state"] == "done" and j)
    seen_by_admin = users["alice"].get(f"/api/v1/jobs/{job['id']}").json()
    assert mine["files"][0].startswith("outputs/txt2img-images/")  # where the image is, not the disk layout
    assert seen_by_admin["files"][0] == str(server.data_dir.resolve() / mine["files"][0])


def test_no_response_echoes_a_password(users):
    flags = users["bob"].get("/sdapi/v1/cmd-flags").json()
    text = json.dumps(flags)
    assert all(password not in text for password in PASSWORDS.values())


def test_only_our_host_and_our_pages_may_change_things(users, server):
    alice = users["alice"]
    assert alice.get("/sdapi/v1/options", headers={"host": "attacker.example"}).status_code == 400
    cross_site = alice.post("/sdapi/v1/interrupt", headers={"origin": "http://attacker.example"})
    assert cross_site.status_code == 403
    no_origin = alice.post("/sdapi/v1/interrupt", headers={"sec-fetch-site": "cross-site"})
    assert no_origin.status_code == 403
    same = alice.post("/sdapi/v1/interrupt", headers={"origin": server.base_url})
    assert same.status_code == 200


def test_output_folders_stay_inside_and_the_ui_never_serves_other_files(users, server, tmp_path):
    alice = users["alice"]
    for folder in (str(tmp_path), "../../..", "/etc"):
        response = alice.post("/sdapi/v1/options", json={"outdir_txt2img_samples": folder, "save_to_dirs": False})
        assert response.status_code == 422 and "outside" in response.json()["message"], folder
    assert alice.get("/sdapi/v1/options").json()["outdir_txt2img_samples"] == "outputs/txt2img-images"
    alice.post("/sdapi/v1/txt2img", json={**SMALL, "save_images": True})
    for secret in (server.data_dir / "config.json", server.data_dir / "users.json", server.log_file):
        for route in (f"/gradio_api/file={secret}", f"/file={secret}"):
            assert alice.get(route).status_code in (403, 404), route


@pytest.mark.parametrize(("body", "mentions"), [
    ({"prompt": "x" * 1_000_000}, "at most 200000 characters"),  # the hard cap, checked while parsing
    ({"prompt": "x" * 100_000}, "limit_prompt_chars"),
    ({"prompt": "(" * 5000 + "cat" + ")" * 5000}, "limit_prompt_depth"),
    ({"width": 2048, "height": 2048, "batch_size": 64, "n_iter": 100, "steps": 150}, "limit_images_per_job"),
    ({"width": 2048, "height": 2048, "batch_size": 8, "steps": 150}, "limit_work_per_job"),
    ({"prompt": "cat \ud800"}, "surrogate"),  # sent as the JSON escape \ud800
    ({"styles": ["double"] * 12}, "limit_prompt_chars"),  # styles apply in the worker: checked before too
    ({"infotext": "a " * 40_000}, "infotext"),  # capped before A1111's (once quadratic) parameter regex
])
def test_requests_over_a_limit_are_refused_before_queuing(users, body, mentions):
    content = json.dumps({**SMALL, **body})  # ensure_ascii: a lone surrogate travels as \ud800
    response = users["bob"].post("/sdapi/v1/txt2img", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert mentions in response.json()["message"]


def test_an_undecodable_password_is_a_failed_login_not_a_crash(users):
    for name in ("bob", "mallory"):
        body = json.dumps({"username": name, "password": "\ud800"})  # ensure_ascii: sent as \ud800
        response = users["nobody"].post("/login", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 401, response.text


def test_uploads_are_capped_in_size_but_allowed(users):
    bob = users["bob"]
    small = bob.post("/gradio_api/upload", files={"files": ("a.png", b"\x89PNG small", "image/png")})
    assert small.status_code == 200, small.text
    big = bob.post("/gradio_api/upload", files={"files": ("b.png", b"\0" * (51 * 2**20), "image/png")})
    assert big.status_code == 413, big.status_code  # over the 50 MiB per file, under the 64 MiB body cap


def test_the_queue_has_caps_per_user(users):
    alice, bob = users["alice"], users["bob"]
    assert alice.post("/sdapi/v1/options", json={"queue_max_per_user": 2}).status_code == 200
    try:
        blocker = bob.post("/api/v1/jobs", json=SLOW).json()
        wait_for(lambda: bob.get(f"/api/v1/jobs/{blocker['id']}").json()["state"] == "running")
        queued = [bob.post("/api/v1/jobs", json=SMALL) for _ in range(3)]
        assert [r.status_code for r in queued] == [202, 202, 429]
        assert "2 jobs waiting" in queued[2].json()["message"]
        assert users["carol"].post("/api/v1/jobs", json=SMALL).status_code == 202  # her own cap
        bob.delete(f"/api/v1/jobs/{blocker['id']}")
    finally:
        alice.post("/sdapi/v1/options", json={"queue_max_per_user": 20})


@pytest.mark.parametrize(("content", "mentions"), [
    (b'{"prompt": "\xff\xfe"}', "not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
])
def test_undecodable_bodies_are_422_in_the_documented_shape(users, content, mentions):
    response = users["bob"].post("/sdapi/v1/txt2img", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "ValidationError" and mentions in body["message"]


@pytest.mark.parametrize("changes", [
    {"some_unknown_key": 1},
    {"send_seed": "yes"},
    {"jpeg_quality": float("nan")},
    {"font": "x" * 2_000_000},
])
def test_option_writes_are_checked(users, changes):
    body = json.dumps(changes, allow_nan=True)
    response = users["alice"].post("/sdapi/v1/options", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    options = users["alice"].get("/sdapi/v1/options").json()
    assert "some_unknown_key" not in options and options["send_seed"] is True


def test_options_list_a1111s_settings_with_its_defaults(users):
    options = users["bob"].get("/sdapi/v1/options").json()
    assert (options["send_seed"], options["samples_format"], options["CLIP_stop_at_last_layers"]) == (True, "png", 1)


# --- every route needs a login -------------------------------------------------------------------


def route_table(data_dir: Path) -> list[tuple[str, str]]:
    """(method, path) for every route of the app the server builds, Gradio's mounted ones included."""
    from starlette.routing import Mount

    from webui.app import Studio
    from webui.flags import CommandLine
    from webui.server import create_app

    def walk(router, prefix: str):
        for route in router.routes:
            if isinstance(route, Mount):
                yield from walk(route.app, prefix + route.path)
            elif hasattr(route, "original_router"):  # FastAPI's include_router keeps the router whole
                yield from walk(route.original_router, prefix + (route.include_context.prefix or ""))
            elif hasattr(route, "path"):
                for method in getattr(route, "methods", None) or {"GET"}:
                    yield method, prefix + route.path

    guard = create_app(Studio(CommandLine(data_dir=data_dir, no_demo_model=True, gradio_auth="x:y")))
    return sorted(set(walk(guard.app, "")))


def concrete(path: str) -> str:
    """/api/v1/jobs/{job_id}/images/{n} → /api/v1/jobs/1/images/1; {p:path} → a file-like path."""
    import re

    return re.sub(r"\{[^}:]+:path\}", "some/file.png", re.sub(r"\{[^}:]+\}", "1", path))


def test_every_route_refuses_a_request_without_credentials(server, tmp_path):
    routes = route_table(tmp_path)
    paths = {path for _, path in routes}
    # The walk reaches our routers and Gradio's internals alike.
    assert {"/sdapi/v1/options", "/api/v1/jobs/{job_id}", "/gradio_api/file={path_or_url:path}",
            "/gradio_api/queue/join", "/openapi.json", "/docs", "/"} <= paths, paths
    public = {"/health", "/login", "/logout"}
    open_routes = []
    with httpx.Client(base_url=server.base_url, timeout=30) as nobody:
        for method, path in routes + [("GET", "/no/such/route"), ("GET", "/file=/etc/passwd")]:
            if path in public:
                continue
            url = concrete(path)
            for accept in ("application/json", "text/html"):
                response = nobody.request(method, url, headers={"accept": accept, "origin": server.base_url})
                refused = response.status_code == 401 or (
                    response.status_code == 303 and response.headers["location"].startswith("/login"))
                if not refused:
                    open_routes.append((method, url, accept, response.status_code))
    assert not open_routes, open_routes
    with httpx.Client(base_url=server.base_url, timeout=30) as nobody:
        assert nobody.get("/health").status_code == 200
        assert nobody.get("/login").status_code == 200
