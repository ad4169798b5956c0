"""The REST API over real HTTP: ``/sdapi/v1`` (A1111-compatible) and ``/api/v1/jobs``.

One live server (``python -m webui``) with tiny random-weight sd15 and sdxl-base checkpoints.
Requests are small (64x64, 2-3 steps) except the one slow job the queue tests need to catch
running; it is interrupted or cancelled as soon as it has shown what the test wants.
"""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.kit.servers import wait_for
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)

TITLE = re.compile(r"^(?P<name>[\w\-./]+\.safetensors) \[(?P<hash>[0-9a-f]{10})\]$")
SMALL = {"prompt": "a red cube", "negative_prompt": "blurry", "steps": 2, "width": 64, "height": 64, "seed": 1234,
         "sampler_name": "Euler"}
SLOW = {"prompt": "slow", "steps": 40, "width": 256, "height": 256, "seed": 7, "sampler_name": "Euler"}



def decode(b64: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(b64)))
    image.load()
    return image


def txt2img(server, **changes) -> dict:
    response = server.post("/sdapi/v1/txt2img", json={**SMALL, **changes})
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int = 422, mentions: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body.get("message"), body
    assert body.get("error"), body
    if mentions:
        assert mentions.lower() in body["message"].lower(), body["message"]
    return body


def titles(server) -> dict[str, str]:
    return {TITLE.match(m["title"]).group("name"): m["title"] for m in server.get("/sdapi/v1/sd-models").json()
            if TITLE.match(m["title"])}


def all_titles(server) -> dict[str, str]:
    """name → title, once the background hashing has given every checkpoint its hash."""
    return wait_for(lambda: (t := titles(server)) and {"sd15.safetensors", "sdxl-base.safetensors"} <= set(t) and t)


# --- txt2img ---------------------------------------------------------------------------------


def test_txt2img_png_carries_the_infotext(live_server):
    body = txt2img(live_server, sampler_name="DPM++ 2M", steps=3, seed=42, width=64, height=72)
    assert len(body["images"]) == 1
    image = decode(body["images"][0])
    assert image.format == "PNG" and image.size == (64, 72)
    params = parse_infotext(image.info["parameters"])
    assert params["Prompt"] == "a red cube"
    assert params["Negative prompt"] == "blurry"
    assert params["Steps"] == 3
    assert params["Sampler"] == "DPM++ 2M"
    assert params["Seed"] == 42
    assert (params["Size-1"], params["Size-2"]) == (64, 72)
    assert body["parameters"]["sampler_name"] == "DPM++ 2M" and body["parameters"]["steps"] == 3

    info = json.loads(body["info"])
    for key in ("prompt", "all_prompts", "negative_prompt", "seed", "all_seeds", "subseed", "all_subseeds",
                "width", "height", "sampler_name", "cfg_scale", "steps", "batch_size", "n_iter", "sd_model_name",
                "sd_model_hash", "infotexts", "index_of_first_image", "job_timestamp", "clip_skip", "styles"):
        assert key in info, key
    assert info["all_seeds"] == [42]
    assert info["infotexts"][0] == image.info["parameters"]
    assert info["notes"] == []


def test_same_seed_same_pixels(live_server):
    first = decode(txt2img(live_server, seed=777)["images"][0])
    second = decode(txt2img(live_server, seed=777)["images"][0])
    other = decode(txt2img(live_server, seed=778)["images"][0])
    assert first.tobytes() == second.tobytes()
    assert first.tobytes() != other.tobytes()


def test_batch_returns_grid_first_then_each_image(live_server):
    body = txt2img(live_server, batch_size=2, seed=500)
    assert len(body["images"]) == 3
    grid, *images = [decode(b) for b in body["images"]]
    assert grid.size == (128, 64) and all(i.size == (64, 64) for i in images)
    info = json.loads(body["info"])
    assert info["all_seeds"] == [500, 501]
    assert info["index_of_first_image"] == 1
    assert len(info["infotexts"]) == 3
    assert [parse_infotext(i.info["parameters"])["Seed"] for i in images] == [500, 501]


def test_saved_image_is_sent_as_saved(live_server):
    body = txt2img(live_server, save_images=True, seed=4242)
    sent = base64.b64decode(body["images"][0])
    saved = list(Path(live_server.data_dir, "outputs", "txt2img-images").rglob("*-4242.png"))
    assert saved and any(p.read_bytes() == sent for p in saved)


def test_full_a1111_payload_is_accepted_with_notes(live_server):
    payload = {
        "prompt": "a castle", "negative_prompt": "", "styles": [], "seed": 99, "subseed": -1,
        "subseed_strength": 0, "seed_resize_from_h": -1, "seed_resize_from_w": -1, "sampler_name": "Euler a",
        "scheduler": "Automatic", "batch_size": 1, "n_iter": 1, "steps": 2, "cfg_scale": 7, "width": 64,
        "height": 64, "restore_faces": True, "tiling": False, "do_not_save_samples": False,
        "do_not_save_grid": False, "eta": 0, "denoising_strength": 0.7, "s_min_uncond": 0, "s_churn": 0.5,
        "s_tmax": None, "s_tmin": 0, "s_noise": 1, "override_settings": {"CLIP_stop_at_last_layers": 2,
                                                                          "token_merging_ratio": 0.5},
        "override_settings_restore_afterwards": True, "refiner_checkpoint": "sdxl-base.safetensors",
        "refiner_switch_at": 0.8, "disable_extra_networks": False, "firstpass_image": None, "comments": {},
        "enable_hr": True, "firstphase_width": 0, "firstphase_height": 0, "hr_scale": 2, "hr_upscaler": "Latent",
        "hr_second_pass_steps": 0, "hr_resize_x": 0, "hr_resize_y": 0, "hr_checkpoint_name": None,
        "hr_sampler_name": None, "hr_scheduler": None, "hr_prompt": "", "hr_negative_prompt": "",
        "force_task_id": None, "sampler_index": "Euler", "script_name": None, "script_args": [],
        "send_images": True, "save_images": False,
        "alwayson_scripts": {}, "infotext": None,
        "hr_cfg": 1.0, "some_extension_field": {"x": 1},
    }
    response = live_server.post("/sdapi/v1/txt2img", json=payload)
    assert response.status_code == 200, response.text
    body = response.json()
    info = json.loads(body["info"])
    notes = " | ".join(info["notes"])
    for expected in ("face restoration", "s_churn", "token_merging_ratio", "some_extension_field"):
        assert expected in notes, (expected, notes)
    assert "hires" not in notes.lower() and "refiner" not in notes.lower()  # both are built now
    assert info["clip_skip"] == 2
    image = decode(body["images"][0])
    params = parse_infotext(image.info["parameters"])
    assert params["Sampler"] == "Euler a" and params["Clip skip"] == 2
    assert image.size == (128, 128) and params["Hires upscale"] == 2 and params["Size"] == "64x64"
    assert body["parameters"]["enable_hr"] is True  # echoed as received


def test_sampler_index_is_the_legacy_sampler_field(live_server):
    info = json.loads(txt2img(live_server, sampler_name=None, sampler_index="DPM++ 2M Karras")["info"])
    assert (info["sampler_name"], info["scheduler"]) == ("DPM++ 2M", "Karras")
    body = {k: v for k, v in SMALL.items() if k != "sampler_name"}
    info = json.loads(live_server.post("/sdapi/v1/txt2img", json=body).json()["info"])
    assert info["sampler_name"] == "Euler"  # A1111's API default (sampler_index "Euler")


def test_infotext_field_fills_unset_fields(live_server):
    text = "a blue sphere\nNegative prompt: ugly\nSteps: 3, Sampler: Euler a, CFG scale: 5, Seed: 31, Size: 64x64"
    body = live_server.post("/sdapi/v1/txt2img", json={"infotext": text, "steps": 2}).json()
    info = json.loads(body["info"])
    assert (info["prompt"], info["negative_prompt"], info["seed"], info["cfg_scale"]) == ("a blue sphere", "ugly", 31, 5)
    assert info["steps"] == 2  # set in the body: the body wins
    assert info["sampler_name"] == "Euler a" and (info["width"], info["height"]) == (64, 64)


RAW = "raw"
BAD_REQUESTS = {
    "unknown sampler": ({"sampler_name": "Euler z"}, "sampler_name"),
    "unknown schedule": ({"scheduler": "Wobbly"}, "scheduler"),
    "huge width": ({"width": 10000}, "width"),
    "tiny width": ({"width": 8}, "width"),
    "zero steps": ({"steps": 0}, "steps"),
    "too many steps": ({"steps": 10000}, "steps"),
    "cfg NaN": (RAW + '{"prompt": "x", "steps": 2, "width": 64, "height": 64, "cfg_scale": NaN}', "cfg_scale"),
    "cfg Infinity": (RAW + '{"prompt": "x", "steps": 2, "width": 64, "height": 64, "cfg_scale": Infinity}', "cfg_scale"),
    "malformed JSON": (RAW + '{"prompt": "x", "steps": ', "json"),
    "not an object": (RAW + '["prompt"]', ""),
    "steps as text": ({"steps": "many"}, "steps"),
    "prompt as object": ({"prompt": {"text": "x"}}, "prompt"),
    "seed as float": ({"seed": 1.5}, "seed"),
    "negative batch": ({"batch_size": -1}, "batch_size"),
    "bad clip skip override": ({"override_settings": {"CLIP_stop_at_last_layers": 99}}, "CLIP_stop_at_last_layers"),
    "unknown checkpoint override": ({"override_settings": {"sd_model_checkpoint": "nope.safetensors"}}, "not found"),
}


@pytest.mark.parametrize("name", list(BAD_REQUESTS))
def test_bad_txt2img_input_is_a_422_with_a_message(live_server, name):
    change, mentions = BAD_REQUESTS[name]
    if isinstance(change, str):
        response = live_server.post("/sdapi/v1/txt2img", content=change[len(RAW):],
                                    headers={"content-type": "application/json"})
    else:
        response = live_server.post("/sdapi/v1/txt2img", json={**SMALL, **change})
    body = assert_error(response, 422, mentions)
    assert isinstance(body["detail"], list)


def test_server_still_generates_after_bad_input(live_server):
    live_server.post("/sdapi/v1/txt2img", json={**SMALL, "width": 10000})
    assert len(txt2img(live_server)["images"]) == 1


def test_a_broken_model_in_overrides_is_a_400_and_the_server_keeps_serving(live_server):
    broken = Path(live_server.data_dir, "models", "VAE", "broken.safetensors")
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_bytes(b"this is not a safetensors file")
    try:
        assert live_server.post("/sdapi/v1/refresh-vae").status_code == 200
        assert "broken.safetensors" in [v["model_name"] for v in live_server.get("/sdapi/v1/sd-vae").json()]
        response = live_server.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {"sd_vae": "broken.safetensors"}})
        body = assert_error(response, 400, "broken.safetensors")
        assert body["error"] == "CheckpointError"
        # A checkpoint override applied before the failing VAE override is undone too.
        response = live_server.post("/sdapi/v1/txt2img", json={**SMALL, "override_settings": {
            "sd_model_checkpoint": "sdxl-base", "sd_vae": "broken.safetensors"}})
        assert_error(response, 400)
        assert json.loads(txt2img(live_server)["info"])["sd_model_name"] == "sd15"
    finally:
        broken.unlink()
        live_server.post("/sdapi/v1/refresh-vae")
    assert len(txt2img(live_server)["images"]) == 1


def test_a_broken_checkpoint_in_overrides_is_a_400_and_the_model_stays(live_server):
    broken = Path(live_server.data_dir, "models", "Stable-diffusion", "cracked.safetensors")
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + b"\x00" * 64)
    try:
        live_server.post("/sdapi/v1/refresh-checkpoints")
        response = live_server.post("/sdapi/v1/txt2img", json={
            **SMALL, "override_settings": {"sd_model_checkpoint": "cracked.safetensors"}})
        assert assert_error(response, 400, "cracked")["error"] == "CheckpointError"
        assert live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sd15")
    finally:
        broken.unlink()
        live_server.post("/sdapi/v1/refresh-checkpoints")
    assert json.loads(txt2img(live_server)["info"])["sd_model_name"] == "sd15"


# --- png-info --------------------------------------------------------------------------------


def test_png_info_reads_back_a_generated_image(live_server):
    b64 = txt2img(live_server, seed=2024)["images"][0]
    for image in (b64, "data:image/png;base64," + b64):
        response = live_server.post("/sdapi/v1/png-info", json={"image": image})
        assert response.status_code == 200, response.text
        body = response.json()
        assert "Seed: 2024" in body["info"]
        assert body["parameters"]["Seed"] == 2024 and body["parameters"]["Prompt"] == "a red cube"
        assert isinstance(body["items"], dict) and "parameters" not in body["items"]


@pytest.mark.parametrize("image", ["%%% not base64 %%%", base64.b64encode(b"just some text").decode(), "data:image/png;base64"])
def test_png_info_bad_image_is_a_422(live_server, image):
    assert_error(live_server.post("/sdapi/v1/png-info", json={"image": image}), 422, "image")


# --- models and options ----------------------------------------------------------------------


def test_sd_models_lists_both_checkpoints_with_a1111_titles(live_server):
    models = {m["model_name"]: m for m in live_server.get("/sdapi/v1/sd-models").json()}
    assert {"sd15", "sdxl-base"} <= set(models)
    found = all_titles(live_server)
    for name, title in found.items():
        match = TITLE.match(title)
        model = next(m for m in live_server.get("/sdapi/v1/sd-models").json() if m["title"] == title)
        assert model["sha256"].startswith(match.group("hash")) and model["hash"] == match.group("hash")
        assert model["filename"].endswith(name)
    assert live_server.post("/sdapi/v1/refresh-checkpoints").status_code == 200


def test_switch_checkpoint_through_options(live_server, restore_options):
    found = all_titles(live_server)
    before = live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    assert before == found["sd15.safetensors"]

    response = live_server.post("/sdapi/v1/options", json={"sd_model_checkpoint": "sdxl-base"})
    assert response.status_code == 200, response.text
    assert live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == found["sdxl-base.safetensors"]
    info = json.loads(txt2img(live_server)["info"])
    assert info["sd_model_name"] == "sdxl-base" and info["model_family"] == "sdxl-base"

    response = live_server.post("/sdapi/v1/options", json={"sd_model_checkpoint": found["sd15.safetensors"]})
    assert response.status_code == 200, response.text
    assert json.loads(txt2img(live_server)["info"])["sd_model_name"] == "sd15"


def test_bad_options_change_nothing(live_server, restore_options):
    before = live_server.get("/sdapi/v1/options").json()
    assert_error(live_server.post("/sdapi/v1/options", json={"sd_model_checkpoint": "missing.safetensors",
                                                              "show_progress_every_n_steps": 3}), 422, "not found")
    assert_error(live_server.post("/sdapi/v1/options", json={"samples_save": False,
                                                              "show_progress_every_n_steps": "often"}), 422,
                 "show_progress_every_n_steps")
    assert live_server.get("/sdapi/v1/options").json() == before
    assert json.loads(txt2img(live_server)["info"])["sd_model_name"] == "sd15"


def test_unloadable_checkpoint_keeps_the_current_model(live_server, restore_options):
    broken = Path(live_server.data_dir, "models", "Stable-diffusion", "broken.safetensors")
    broken.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}garbage")
    try:
        live_server.post("/sdapi/v1/refresh-checkpoints")
        before = live_server.get("/sdapi/v1/options").json()
        body = assert_error(live_server.post("/sdapi/v1/options", json={"sd_model_checkpoint": "broken.safetensors",
                                                                         "samples_save": False}), 400)
        assert "stays loaded" in body["message"]
        assert live_server.get("/sdapi/v1/options").json() == before
        assert json.loads(txt2img(live_server)["info"])["sd_model_name"] == "sd15"
    finally:
        broken.unlink()
        live_server.post("/sdapi/v1/refresh-checkpoints")


def test_options_and_flags_use_a1111_keys(live_server):
    options = live_server.get("/sdapi/v1/options").json()
    for key in ("sd_model_checkpoint", "sd_vae", "CLIP_stop_at_last_layers", "samples_save", "return_grid",
                "show_progress_every_n_steps"):
        assert key in options
    flags = live_server.get("/sdapi/v1/cmd-flags").json()
    assert flags["no_demo_model"] is True and isinstance(flags["data_dir"], str) and "port" in flags


def test_sampler_and_scheduler_lists(live_server):
    samplers = live_server.get("/sdapi/v1/samplers").json()
    names = [s["name"] for s in samplers]
    assert {"Euler a", "Euler", "DPM++ 2M", "DDIM"} <= set(names)
    assert all(set(s) == {"name", "aliases", "options"} for s in samplers)
    schedulers = {s["name"]: s for s in live_server.get("/sdapi/v1/schedulers").json()}
    assert schedulers["karras"]["label"] == "Karras" and schedulers["karras"]["default_rho"] == 7.0
    assert set(schedulers["automatic"]) == {"name", "label", "aliases", "default_rho", "need_inner_model"}


# --- progress, control, memory -----------------------------------------------------------------


def test_progress_when_idle(live_server):
    body = live_server.get("/sdapi/v1/progress").json()
    assert body["progress"] == 0 and body["eta_relative"] == 0 and body["current_image"] is None
    assert set(body["state"]) == {"skipped", "interrupted", "job", "job_count", "job_timestamp", "job_no",
                                  "sampling_step", "sampling_steps"}
    assert body["state"]["job_count"] == 0


def test_interrupt_and_skip_are_accepted_when_idle(live_server):
    assert live_server.post("/sdapi/v1/interrupt").status_code == 200
    assert live_server.post("/sdapi/v1/skip").status_code == 200
    assert len(txt2img(live_server)["images"]) == 1  # nothing left pending


def test_memory(live_server):
    body = live_server.get("/sdapi/v1/memory").json()
    assert body["ram"]["total"] > 0 and body["ram"]["used"] > 0 and "free" in body["ram"]
    assert "error" in body["cuda"] or "system" in body["cuda"]


# --- /api/v1/jobs ------------------------------------------------------------------------------


def submit(server, **changes) -> dict:
    response = server.post("/api/v1/jobs", json={**SMALL, **changes})
    assert response.status_code == 202, response.text
    return response.json()


def job(server, job_id: str) -> dict:
    response = server.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def finished(server, job_id: str, timeout: float = 60) -> dict:
    return wait_for(lambda: (j := job(server, job_id))["state"] in ("done", "failed", "cancelled") and j, timeout)


def test_job_submit_poll_fetch(live_server):
    submitted = submit(live_server, seed=8080, batch_size=2)
    assert submitted["state"] in ("queued", "running") and submitted["id"]
    done = finished(live_server, submitted["id"])
    assert done["state"] == "done" and done["error"] is None and not done["interrupted"]
    assert done["progress"]["fraction"] == 1.0 and done["info"]["all_seeds"] == [8080, 8081]
    assert len(done["images"]) == 2
    for url, seed in zip(done["images"], (8080, 8081)):
        response = live_server.get(url)
        assert response.status_code == 200 and response.headers["content-type"] == "image/png"
        image = Image.open(io.BytesIO(response.content))
        assert parse_infotext(image.info["parameters"])["Seed"] == seed
    assert live_server.get(done["images"][0].replace("/images/0", "/images/9")).status_code == 404
    listed = [j["id"] for j in live_server.get("/api/v1/jobs").json()]
    assert listed[-1] == submitted["id"]
    assert_error(live_server.delete(f"/api/v1/jobs/{submitted['id']}"), 409)


def test_job_bad_body_is_a_422(live_server):
    assert_error(live_server.post("/api/v1/jobs", json={**SMALL, "sampler_name": "Euler z"}), 422, "sampler")


def test_unknown_job_is_a_404(live_server):
    for response in (live_server.get("/api/v1/jobs/nope"), live_server.get("/api/v1/jobs/nope/images/0"),
                     live_server.delete("/api/v1/jobs/nope")):
        assert_error(response, 404, "nope")


def test_queue_progress_preview_cancel_interrupt(live_server):
    slow = submit(live_server, **SLOW)
    running = wait_for(lambda: (j := job(live_server, slow["id"]))["progress"]["step"] > 0 and j)
    assert running["state"] == "running" and running["queue_position"] == 0
    assert running["progress"]["total"] == 40

    queued = submit(live_server, seed=31337)
    assert queued["state"] == "queued" and queued["queue_position"] == 1
    cancelled = live_server.delete(f"/api/v1/jobs/{queued['id']}")
    assert cancelled.status_code == 200 and cancelled.json() == {"id": queued["id"], "state": "cancelled"}

    # A preview every show_progress_every_n_steps steps (default 5), in both progress views.
    with_preview = wait_for(lambda: (j := job(live_server, slow["id"]))["preview"] and j)
    assert decode(with_preview["preview"]).size[0] > 0
    progress = live_server.get("/sdapi/v1/progress").json()
    assert progress["state"]["sampling_step"] > 0 and progress["state"]["sampling_steps"] == 40
    assert 0 < progress["progress"] < 1 and progress["current_image"]
    assert live_server.get("/sdapi/v1/progress", params={"skip_current_image": True}).json()["current_image"] is None

    # /sdapi/v1/interrupt: the job ends "done", interrupted, with what it had.
    assert live_server.post("/sdapi/v1/interrupt").status_code == 200
    stopped = finished(live_server, slow["id"])
    assert stopped["state"] == "done" and stopped["interrupted"] and len(stopped["images"]) == 1
    assert stopped["progress"]["step"] < 40

    never = job(live_server, queued["id"])
    assert never["state"] == "cancelled" and never["started_at"] is None and never["images"] == []

    # Cancelling a running job stops it.
    slow2 = submit(live_server, **SLOW)
    wait_for(lambda: job(live_server, slow2["id"])["progress"]["step"] > 0)
    response = live_server.delete(f"/api/v1/jobs/{slow2['id']}")
    assert response.status_code == 200
    assert finished(live_server, slow2["id"])["state"] == "cancelled"


def test_sync_txt2img_interrupted_returns_what_finished(live_server):
    out: dict = {}
    thread = threading.Thread(target=lambda: out.setdefault("r", httpx.post(
        live_server.base_url + "/sdapi/v1/txt2img", json={**SLOW, "n_iter": 2}, timeout=120)))
    thread.start()
    wait_for(lambda: live_server.get("/sdapi/v1/progress").json()["state"]["sampling_step"] > 0)
    live_server.post("/sdapi/v1/interrupt")
    thread.join(60)
    response = out["r"]
    assert response.status_code == 200, response.text
    info = json.loads(response.json()["info"])
    assert info["interrupted"] is True and len(info["all_seeds"]) == 1 and len(response.json()["images"]) == 1


# --- docs ----------------------------------------------------------------------------------------


def test_docs_and_openapi_are_served(live_server):
    assert live_server.get("/docs").status_code == 200
    schema = live_server.get("/openapi.json").json()
    for path in ("/sdapi/v1/txt2img", "/sdapi/v1/options", "/sdapi/v1/progress", "/api/v1/jobs",
                 "/api/v1/jobs/{job_id}", "/api/v1/jobs/{job_id}/images/{n}"):
        assert path in schema["paths"], path
