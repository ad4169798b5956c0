"""A shared studio under load: 8 users × 10 jobs each through HTTP with logins on.

Run: .venv/bin/python bench/load.py [--users 8] [--jobs 10] [--size 128] [--steps 8]

A real server (``python -m webui``) with a users file of 8 users and one tiny random-weight SD 1.5
checkpoint. Each user is a thread with its own HTTP Basic client that submits all its jobs at once
to ``POST /api/v1/jobs`` (the users start 50 ms apart, in order), then polls each job until it
ends. Checked: every job is done, each of the 80 images was saved as a whole PNG whose infotext
carries its seed, no image is missing or twice on disk. Reported: the spread of per-user waits
(queued → started), as the fair queue promises round-robin service, and the throughput.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run_user(base_url: str, name: str, password: str, jobs: list[dict], views: dict, errors: list) -> None:
    import httpx

    with httpx.Client(base_url=base_url, auth=(name, password), timeout=120) as client:
        ids = []
        for body in jobs:
            response = client.post("/api/v1/jobs", json=body)
            if response.status_code != 202:
                errors.append(f"{name}: submit → {response.status_code} {response.text[:200]}")
                continue
            ids.append(response.json()["id"])
        for job_id in ids:
            while True:
                view = client.get(f"/api/v1/jobs/{job_id}").json()
                if view["state"] in ("done", "failed", "cancelled"):
                    views[job_id] = view
                    break
                time.sleep(0.05)


def saved_seeds(outputs: Path) -> list[int]:
    """The seed in each saved PNG's infotext (opening every file whole)."""
    from PIL import Image

    seeds = []
    for path in sorted(outputs.rglob("*.png")):
        with Image.open(path) as image:
            image.load()  # a truncated file fails here
            seeds.append(int(image.info["parameters"].split("Seed: ")[1].split(",")[0]))
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()

    from tests.kit.servers import add_user, start_server
    from webui.models.synthetic import write_checkpoint

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        write_checkpoint(data_dir / "models" / "Stable-diffusion" / "bench.safetensors", "sd15")
        users = {f"user{i}": f"password-{i:04d}" for i in range(args.users)}
        late = ("latecomer", "password-late")  # one image, asked for once the queue is long
        for name, password in [*users.items(), late]:
            assert add_user(data_dir, name, password).returncode == 0
        assert add_user(data_dir, "admin", "admin-password", admin=True).returncode == 0
        server = start_server(data_dir, extra_args=["--no-demo-model"], auth=("admin", "admin-password"))
        try:
            work = {name: [{"prompt": f"load test, {name}, job {j}", "seed": 1000 * i + j, "steps": args.steps,
                            "width": args.size, "height": args.size, "sampler_name": "Euler", "save_images": True}
                           for j in range(args.jobs)]
                    for i, name in enumerate(users)}
            views: dict[str, dict] = {}
            errors: list[str] = []
            threads = [threading.Thread(target=run_user, args=(server.base_url, name, users[name], work[name],
                                                               views, errors)) for name in users]
            started = time.perf_counter()
            for thread in threads:
                thread.start()
                time.sleep(0.05)
            time.sleep(2.0)
            late_job = [{**work["user0"][0], "prompt": "one image, late", "seed": 999_999}]
            waiting_then = len([t for t in threads if t.is_alive()])
            late_thread = threading.Thread(target=run_user, args=(server.base_url, *late, late_job, views, errors))
            late_thread.start()
            threads.append(late_thread)
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - started
        finally:
            server.stop()

        expected = sorted([body["seed"] for bodies in work.values() for body in bodies] + [999_999])
        on_disk = saved_seeds(data_dir / "outputs" / "txt2img-images")
        done = [v for v in views.values() if v["state"] == "done" and len(v["images"]) == 1]
        infotexts_ok = all(f"Seed: {v['info']['seed']}," in v["info"]["infotexts"][0] for v in done)

        by_user: dict[str, list[dict]] = {}
        for view in views.values():
            by_user.setdefault(view["owner"], []).append(view)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, CPU only")
        print(f"{args.users} users × {args.jobs} jobs, {args.size}×{args.size}, {args.steps} steps, Euler")
        print(f"jobs done: {len(done)}/{len(expected)}; refused at submit: {len(errors)}; "
              f"PNGs on disk: {len(on_disk)} (seeds match: {sorted(on_disk) == expected}, "
              f"duplicates: {len(on_disk) - len(set(on_disk))}); infotexts carry their seeds: {infotexts_ok}")
        print(f"wall time {elapsed:.1f} s, {len(done) / elapsed:.2f} jobs/s")
        print("| user | mean wait | max wait | last job done after |")
        print("|---|---|---|---|")
        means = []
        for name in users:
            jobs = sorted(by_user.get(name, []), key=lambda v: v["created_at"])
            waits = [v["started_at"] - v["created_at"] for v in jobs if v["started_at"]]
            means.append(statistics.mean(waits))
            last = max(v["finished_at"] for v in jobs) - min(v["created_at"] for v in views.values())
            print(f"| {name} | {statistics.mean(waits):.1f} s | {max(waits):.1f} s | {last:.1f} s |")
        jain = sum(means) ** 2 / (len(means) * sum(m * m for m in means))
        print(f"mean wait per user: min {min(means):.1f} s, max {max(means):.1f} s "
              f"(max/min {max(means) / min(means):.2f}); Jain's fairness index {jain:.3f}")
        latecomer = by_user["latecomer"][0]
        ahead = sum(1 for v in views.values() if v["owner"] != "latecomer" and v["created_at"] < latecomer["created_at"]
                    and v["started_at"] > latecomer["created_at"])
        ran_before = sum(1 for v in views.values() if v["owner"] != "latecomer"
                         and latecomer["created_at"] < v["started_at"] < latecomer["started_at"])
        print(f"latecomer ({waiting_then} users busy): {ahead} jobs were waiting when it asked; {ran_before} ran "
              f"before it; it waited {latecomer['started_at'] - latecomer['created_at']:.1f} s")
        for error in errors:
            print("error:", error)


if __name__ == "__main__":
    main()
