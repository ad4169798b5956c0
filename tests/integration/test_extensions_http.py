"""Extensions in a real server: A1111-style and native scripts over the A1111 API, their routes, and
broken extensions that must not take anything else down."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import copy_checkpoint
from tests.kit.servers import start_server

pytestmark = pytest.mark.timeout(600)

FIXTURES = Path(__file__).resolve().parents[1] / "kit" / "extensions"
LOADED = ("a1111-style", "native-style", "broken-import", "broken-ui", "broken-process")
SMALL = {"prompt": "a cat", "steps": 2, "width": 64, "height": 64, "seed": 21, "sampler_name": "Euler"}


def install_fixtures(data_dir: Path, names=LOADED) -> None:
    for name in names:
        shutil.copytree(FIXTURES / name, data_dir / "extensions" / name)


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("extensions-http")
    copy_checkpoint(checkpoint_store("sd15"), data_dir / "models" / "Stable-diffusion", "sd15.safetensors")
    install_fixtures(data_dir)
    server = start_server(data_dir, extra_args=["--no-demo-model"])
    yield server
    server.stop()


def info_of(response) -> dict:
    assert response.status_code == 200, response.text
    return json.loads(response.json()["info"])


def test_scripts_are_listed_as_a1111_lists_them(server):
    listed = server.get("/sdapi/v1/scripts").json()
    for tab in ("txt2img", "img2img"):
        assert {"prompt rewriter", "run twice", "signature", "broken process"} <= set(listed[tab])
    info = {(s["name"], s["is_img2img"]): s for s in server.get("/sdapi/v1/script-info").json()}
    run_twice = info[("run twice", False)]
    assert not run_twice["is_alwayson"] and info[("prompt rewriter", True)]["is_alwayson"]
    assert run_twice["args"] == [{"label": "Seed offset of the second run", "value": 7, "minimum": 1,
                                  "maximum": 1000, "step": 1, "choices": None}]
    assert [a["label"] for a in info[("prompt rewriter", False)]["args"]] == ["Rewrite prompts", "Word to add"]


def test_alwayson_scripts_rewrite_prompts_and_write_infotext(server):
    body = {**SMALL, "batch_size": 2, "alwayson_scripts": {"PROMPT REWRITER": {"args": [True, "zebra"]}}}
    info = info_of(server.post("/sdapi/v1/txt2img", json=body))
    assert info["all_prompts"] == ["a cat, zebra 0", "a cat, zebra 1"]
    first, second = info["infotexts"][-2:]  # the grid's comes first, as A1111
    assert first.startswith("a cat, zebra 0\n") and second.startswith("a cat, zebra 1\n")
    assert "Prompt rewriter: zebra" in first and "Signature: native/2" in first
    # The broken always-on script failed, was noted, and the job went on.
    assert any("broken-process" in note and "process" in note for note in info["notes"])
    # Without args the script takes its ui() defaults: off.
    plain = info_of(server.post("/sdapi/v1/txt2img", json=SMALL))
    assert plain["all_prompts"] == ["a cat"] and "Prompt rewriter" not in plain["infotexts"][0]


def test_a_selectable_script_runs_process_images_twice(server):
    defaults = info_of(server.post("/sdapi/v1/txt2img", json={**SMALL, "script_name": "Run twice"}))
    assert defaults["all_seeds"] == [21, 28]  # the slider's default offset, 7
    response = server.post("/sdapi/v1/txt2img", json={**SMALL, "script_name": "run twice", "script_args": [100]})
    info = info_of(response)
    assert info["all_seeds"] == [21, 121]
    assert info["infotexts"][1].startswith("a cat, again\n")
    images = [Image.open(io.BytesIO(base64.b64decode(i))) for i in response.json()["images"]]
    assert len(images) == 2 and images[0].tobytes() != images[1].tobytes()


def test_img2img_runs_always_on_scripts_too(server):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(buffer, format="PNG")
    body = {**SMALL, "init_images": [base64.b64encode(buffer.getvalue()).decode()], "denoising_strength": 0.5,
            "alwayson_scripts": {"signature": {"args": [True, "img"]}}}
    assert "Signature: img/1" in info_of(server.post("/sdapi/v1/img2img", json=body))["infotexts"][0]


@pytest.mark.parametrize("body, field, words", [
    ({"script_name": "no such script"}, "script_name", "not found"),
    ({"script_name": "Prompt rewriter"}, "script_name", "always-on"),
    ({"alwayson_scripts": {"run twice": {"args": []}}}, "alwayson_scripts", "selectable"),
    ({"alwayson_scripts": {"nope": {"args": []}}}, "alwayson_scripts", "not found"),
    ({"script_name": "run twice", "script_args": [1, 2, 3]}, "script_args", "takes 1"),
])
def test_bad_script_requests_are_422_naming_the_field(server, body, field, words):
    response = server.post("/sdapi/v1/txt2img", json={**SMALL, **body})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", field] and words in response.json()["message"]
    assert server.post("/api/v1/jobs", json={**SMALL, **body}).status_code == 422


def test_extension_routes_and_settings_work(server):
    assert server.get("/a1111-style/hello").json() == {"greeting": "hello", "interrupted": False, "save_image": True}
    assert server.get("/native-style/color").json() == {"color": "teal"}
    options = server.get("/sdapi/v1/options").json()
    assert options["a1111_style_greeting"] == "hello" and options["native_style_color"] == "teal"
    assert server.post("/sdapi/v1/options", json={"native_style_color": "plum"}).status_code == 200
    try:
        assert server.get("/native-style/color").json() == {"color": "plum"}
        refused = server.post("/sdapi/v1/options", json={"native_style_color": "mauve"})
        assert refused.status_code == 422 and "native_style_color" in refused.text
    finally:
        server.post("/sdapi/v1/options", json={"native_style_color": "teal"})
    assert server.alive()


def test_a_scripted_job_stops_on_interrupt_and_cancel_from_a_second_client(server):
    """While "Run twice" runs: an interrupt from a second client ends it with what it made (the
    second process_images stops at once), and a queued one is cancelled."""
    slow = {**SMALL, "steps": 30, "width": 128, "height": 128, "script_name": "run twice"}
    job = server.post("/api/v1/jobs", json=slow).json()["id"]
    queued = server.post("/api/v1/jobs", json=slow).json()["id"]
    with server.as_user("second", "client") as second:  # logins are off: any client is someone else
        wait_running(second, job)
        assert second.delete(f"/api/v1/jobs/{queued}").status_code == 200
        assert second.post("/sdapi/v1/interrupt").status_code == 200
        interrupted = wait_done(second, job)
        assert interrupted["state"] == "done" and interrupted["interrupted"]
        assert second.get(f"/api/v1/jobs/{queued}").json()["state"] == "cancelled"
    assert server.post("/sdapi/v1/txt2img", json=SMALL).status_code == 200  # the queue goes on


def wait_running(client, job_id: str) -> None:
    deadline = time.monotonic() + 120
    while client.get(f"/api/v1/jobs/{job_id}").json()["state"] != "running":
        assert time.monotonic() < deadline, "the job never started"
        time.sleep(0.05)


def wait_done(client, job_id: str) -> dict:
    deadline = time.monotonic() + 300
    while (state := client.get(f"/api/v1/jobs/{job_id}").json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, "the job never ended"
        time.sleep(0.1)
    return state


def test_broken_extensions_are_reported_while_the_rest_runs(server):
    listed = {e["name"]: e for e in server.get("/api/v1/extensions").json()["extensions"]}
    problems = {name: " | ".join(f"{p['where']}: {p['message']}" for p in listed[name]["problems"]) for name in LOADED}
    assert "a_package_that_is_not_installed" in problems["broken-import"]
    assert "ui() of BrokenUi" in problems["broken-ui"] and "broken on purpose" in problems["broken-ui"]
    assert problems["a1111-style"] == "" and problems["native-style"] == ""
    assert all(listed[name]["loaded"] for name in LOADED)  # a broken one is loaded and reported, not fatal
    assert "Traceback" in listed["broken-import"]["problems"][0]["traceback"]  # no logins: everyone is admin
