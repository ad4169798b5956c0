"""A model switch, an override and a second client while a job runs: nothing may hang or mix up.

Every wait has a timeout, so a deadlock fails the test instead of hanging the suite.
"""

from __future__ import annotations

import threading

import httpx
import pytest

from tests.kit.servers import wait_for
from webui.jobs import JobState
from webui.request import GenerationRequest

LONG = dict(prompt="a slow job", width=128, height=128, steps=40, save_images=False)
SMALL = dict(prompt="x", width=64, height=64, steps=2, save_images=False)



def in_thread(fn, *args) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = fn(*args)
        except Exception as e:  # reported by the test
            outcome["error"] = e

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def test_switch_during_a_job_waits_for_it_and_nothing_hangs(make_studio):
    studio = make_studio(("sd15", "sdxl-base"))
    job = studio.submit(GenerationRequest(**LONG))
    wait_for(lambda: job.progress.step >= 2)

    switch, outcome = in_thread(studio.options.update, {"sd_model_checkpoint": "sdxl-base.safetensors"})
    # While the switch waits for the job, options stay readable and the job keeps stepping.
    reader, read = in_thread(studio.options.get, "emphasis")
    reader.join(timeout=5)
    assert read.get("value") == "Original", "reading an option blocked behind a waiting switch"
    step = job.progress.step
    wait_for(lambda: job.progress.step > step or job.finished, timeout=30)

    assert studio.queue.wait(job.id, timeout=120).state is JobState.DONE
    assert job.result.info["model_family"] == "sd15"  # the job kept its model to the end
    switch.join(timeout=60)
    assert not switch.is_alive() and "error" not in outcome
    assert studio.manager.active.file.name == "sdxl-base.safetensors"
    assert studio.generate(GenerationRequest(**SMALL)).info["model_family"] == "sdxl-base"


def test_an_override_checkpoint_stays_for_its_job_when_a_switch_arrives(make_studio, monkeypatch):
    studio = make_studio(("sd15", "sdxl-base"))
    manager = studio.manager
    activate = manager._activate
    switches: list[threading.Thread] = []

    def activate_then_switch(file, vae):
        model = activate(file, vae)
        if file.name == "sdxl-base.safetensors" and not switches:
            # Another client switches right after the override model was loaded for the job.
            thread, _ = in_thread(studio.options.update, {"sd_model_checkpoint": "sd15.safetensors"})
            switches.append(thread)
            thread.join(timeout=2)  # it must wait for the job, so this times out
        return model

    monkeypatch.setattr(manager, "_activate", activate_then_switch)
    result = studio.generate(GenerationRequest(override_settings={"sd_model_checkpoint": "sdxl-base.safetensors"},
                                               **SMALL))
    assert result.info["model_family"] == "sdxl-base"
    switches[0].join(timeout=60)
    assert manager.active.file.name == "sd15.safetensors"


@pytest.mark.usefixtures("restore_options")
def test_switch_from_a_second_client_during_a_job(live_server):
    job = live_server.post("/api/v1/jobs", json={**LONG, "sampler_name": "Euler"}).json()
    status = lambda: live_server.get(f"/api/v1/jobs/{job['id']}").json()  # noqa: E731
    wait_for(lambda: status()["progress"]["step"] >= 2)

    with httpx.Client(base_url=live_server.base_url, timeout=120) as other:
        switch, outcome = in_thread(lambda: other.post("/sdapi/v1/options",
                                                       json={"sd_model_checkpoint": "sdxl-base.safetensors"}))
        # The page keeps polling: progress answers at once and keeps moving while the switch waits.
        with httpx.Client(base_url=live_server.base_url, timeout=5) as poller:
            step = poller.get("/sdapi/v1/progress").json()["state"]["sampling_step"]
            wait_for(lambda: poller.get("/sdapi/v1/progress").json()["state"]["sampling_step"] != step, timeout=30)
        wait_for(lambda: status()["state"] == "done", timeout=120)
        switch.join(timeout=120)
    assert not switch.is_alive() and outcome["value"].status_code == 200, outcome
    assert status()["info"]["sd_model_name"] == "sd15"  # the job finished on its own model
    assert live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"].startswith("sdxl-base.safetensors")
