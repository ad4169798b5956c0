"""A queue that survives: kill -9 the server with jobs queued and one half done, start it again on
the same data dir, and every job completes exactly once with whole PNGs.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import copy_checkpoint
from tests.kit.servers import start_server, wait_for

pytestmark = pytest.mark.timeout(600)

JOB = {"prompt": "a lighthouse", "steps": 30, "width": 160, "height": 160, "sampler_name": "Euler",
       "n_iter": 3, "save_images": True}


def pngs(data_dir, folder: str = "txt2img-images"):
    return sorted((data_dir / "outputs" / folder).rglob("*.png"))



def test_jobs_survive_kill_9_and_complete_exactly_once(tmp_path, checkpoint_store):
    copy_checkpoint(checkpoint_store("sd15"), tmp_path / "models" / "Stable-diffusion", "sd15.safetensors")
    server = start_server(tmp_path, extra_args=["--no-demo-model"])
    try:
        ids = [server.post("/api/v1/jobs", json={**JOB, "seed": 100 * i}).json()["id"] for i in range(4)]
        # Kill while the first job is part-way: one image saved, more to come.
        wait_for(lambda: len(pngs(tmp_path)) >= 1)
        first = server.get(f"/api/v1/jobs/{ids[0]}").json()
        saved_before = {path: path.stat().st_mtime_ns for path in pngs(tmp_path)}
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=30)
    finally:
        server.stop()
    assert first["state"] == "running" and len(saved_before) < 3, (first["state"], saved_before)

    server = start_server(tmp_path, extra_args=["--no-demo-model"])
    try:
        views = {}
        for job_id in ids:  # the ids survive, and every job runs to the end
            views[job_id] = wait_for(lambda j=job_id: (v := server.get(f"/api/v1/jobs/{j}").json())["state"] == "done"
                                     and v)
        for i, job_id in enumerate(ids):
            view = views[job_id]
            assert len(view["images"]) == 3, view
            assert all(Path(f).is_file() for f in view["files"]) and len(view["files"]) == 3
            assert view["info"]["all_seeds"] == [100 * i, 100 * i + 1, 100 * i + 2]
            for n in range(3):
                response = server.get(f"/api/v1/jobs/{job_id}/images/{n}")
                assert response.status_code == 200
        files = pngs(tmp_path)
        assert len(files) == 12, files  # the half-done job's saved image is kept, not made twice
        # the images finished before the kill are kept as they were, not made again
        assert {path: path.stat().st_mtime_ns for path in saved_before} == saved_before
        seeds = []
        for path in files:
            with Image.open(path) as image:
                image.load()  # a truncated file fails here
                seeds.append(int(image.info["parameters"].split("Seed: ")[1].split(",")[0]))
        assert sorted(seeds) == sorted(100 * i + k for i in range(4) for k in range(3))
        assert len(pngs(tmp_path, "txt2img-grids")) == 4  # one grid per job
        assert not list(tmp_path.rglob("*.tmp"))
        listed = [j["id"] for j in server.get("/api/v1/jobs").json()]
        assert set(ids) <= set(listed)
        # a synchronous A1111 call gets its reply, and its job is stored like any other
        reply = server.post("/sdapi/v1/txt2img", json={**JOB, "n_iter": 1, "steps": 2, "prompt": "sync call"})
        assert len(reply.json()["images"]) == 1
        newest = max(server.get("/api/v1/jobs").json(), key=lambda j: j["created_at"])
        assert newest["state"] == "done" and newest["info"]["prompt"] == "sync call"
    finally:
        server.stop()
    assert json.loads(json.dumps(views[ids[0]]["info"]))["all_seeds"]  # still a plain JSON infotext
