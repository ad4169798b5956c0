"""X/Y/Z plot on real (tiny) models: grids and infotexts, seeds, model loads, the API's 422s, interrupt.

In process: a Studio with two tiny SD1 checkpoints and no RAM cache (each switch reads the file
again unless the plot orders its cells well). Over HTTP: the session's live server.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import build_studio, copy_checkpoint
from webui import infotext
from webui.models import manager as manager_module
from webui.plugins import context
from webui.request import GenerationRequest
from webui.scripts.grid_labels import grid_layout

TINY = dict(prompt="a lighthouse", negative_prompt="", width=64, height=64, steps=1, cfg_scale=5.0,
            sampler_name="Euler", seed=-1)
PLOT = "x/y/z plot"


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("xyz")
    copy_checkpoint(checkpoint_store("sd15", 1), data_dir / "models" / "Stable-diffusion", "other.safetensors")
    (data_dir / "config.json").write_text(json.dumps({"sd_checkpoint_cache": 0, "sd_model_checkpoint": "sd15"}))
    made = build_studio(data_dir, checkpoint_store, ("sd15",))
    yield made
    made.stop()


def _run(studio, **fields: Any):
    context.activate(studio.plugins)
    return studio.generate(GenerationRequest(**{**TINY, **fields}))


def _args(x_type: Any, x_values: str, y_type: Any = 0, y_values: str = "", *, lone: bool = True,
          vary_x: bool = False, legend: bool = True) -> list[Any]:
    return [x_type, x_values, [], y_type, y_values, [], 0, "", [], legend, lone, False, False, vary_x, False, False,
            0, False]


def _params(text: str) -> dict[str, Any]:
    return infotext.parse_infotext(text)


def test_grid_cells_and_fixed_seeds(studio) -> None:
    result = _run(studio, script_name=PLOT, script_args=_args("Steps", "1, 2", "CFG Scale", "3-4 [2]"))
    grid, *cells = result.images
    layout = grid_layout(4, (64, 64), ["Steps: 1", "Steps: 2"], ["CFG Scale: 3.0", "CFG Scale: 4.0"])
    assert grid.load().size == layout.size and layout.top > 0 and layout.left > 0
    assert [g.load().size for g in cells] == [(64, 64)] * 4
    params = [_params(g.infotext) for g in cells]
    assert [(p["Steps"], p["CFG scale"]) for p in params] == [(1, 3.0), (2, 3.0), (1, 4.0), (2, 4.0)]
    seeds = {p["Seed"] for p in params}
    assert len(seeds) == 1 and seeds != {-1}  # -1 became one seed for every cell
    # Each cell of the grid is that image (grid order: X across, Y down).
    for i, cell in enumerate(cells):
        x0, y0, x1, y1 = layout.cell_box(i % 2, i // 2)
        assert grid.load().crop((x0, y0, x1, y1)).tobytes() == cell.load().tobytes()
    # The grid is saved in the grids folder, its infotext naming the plot.
    assert grid.path is not None and "txt2img-grids" in str(grid.path)
    with Image.open(grid.path) as saved:
        saved_params = _params(saved.info["parameters"])
    assert saved_params["Script"] == "X/Y/Z plot" and saved_params["X Type"] == "Steps"
    assert saved_params["X Values"] == "1, 2" and saved_params["Y Type"] == "CFG Scale"

    varied = _run(studio, script_name=PLOT, script_args=_args(4, "1, 2", 6, "3, 4", vary_x=True))
    seeds = [_params(g.infotext)["Seed"] for g in varied.images[1:]]
    assert seeds[1] == seeds[0] + 1 and seeds[2] == seeds[0] and seeds[3] == seeds[0] + 1


def test_one_load_per_checkpoint_and_grid_order_kept(studio, monkeypatch) -> None:
    reads: list[str] = []
    real = manager_module.load_checkpoint

    def counting(path: Path, **kwargs: Any):
        reads.append(Path(path).stem)
        return real(path, **kwargs)

    monkeypatch.setattr(manager_module, "load_checkpoint", counting)
    result = _run(studio, script_name=PLOT, script_args=_args(11, "other, sd15", 1, "7, 8"))
    models = [_params(g.infotext)["Model"] for g in result.images[1:]]
    seeds = [_params(g.infotext)["Seed"] for g in result.images[1:]]
    assert models == ["other", "sd15", "other", "sd15"] and seeds == [7, 7, 8, 8]
    assert reads.count("other") == 1  # both cells of "other" in a row, then the job's model back once
    assert reads.count("sd15") <= 1
    assert studio.manager.active.file.path.stem == "sd15"  # the model before the plot is active again


def _b64_image(data: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(data.split(",", 1)[-1]))).convert("RGB")


@pytest.mark.parametrize(("args", "needle"), [
    (_args(9, "Euler, Nope"), "X axis (Sampler): unknown sampler 'Nope'"),
    (_args(4, "1, many"), "X axis (Steps): 'many' is not a whole number"),
    (_args("Checkpoint name", "no-such-model"), "X axis (Checkpoint name): checkpoint 'no-such-model' not found"),
    (_args(4, "1", 13, "0.5"), "Y axis (Sigma Churn) is not supported"),
    (_args(4, "1-2000"), "'1-2000' makes more than 1000 values"),
])
def test_bad_values_are_a_422_before_anything_runs(live_server, args, needle) -> None:
    body = {**TINY, "script_name": PLOT, "script_args": args}
    response = live_server.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.text


def test_img2img_by_axis_name(live_server) -> None:
    start = Image.new("RGB", (64, 64), (30, 90, 160))
    buffer = io.BytesIO()
    start.save(buffer, format="PNG")
    body = {**TINY, "init_images": [base64.b64encode(buffer.getvalue()).decode()], "script_name": PLOT,
            "script_args": _args("Denoising", "0.3, 0.6", lone=True, legend=False)}
    response = live_server.post("/sdapi/v1/img2img", json=body)
    assert response.status_code == 200, response.text
    images = response.json()["images"]
    assert _b64_image(images[0]).size == (128, 64)  # no legend: just the two cells
    info = json.loads(response.json()["info"])
    assert [_params(t)["Denoising strength"] for t in info["infotexts"][1:]] == [0.3, 0.6]


def test_interrupt_from_another_client_keeps_a_partial_grid(live_server) -> None:
    body = {**TINY, "steps": 20, "seed": 5, "script_name": PLOT,
            "script_args": _args(1, "1, 2, 3", 6, "3, 4, 5", lone=False, legend=False)}
    answer: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: answer.update(r=live_server.post("/sdapi/v1/txt2img", json=body)))
    worker.start()
    seen = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.is_alive():
        progress = live_server.get("/sdapi/v1/progress").json()
        state = progress["state"]
        if state["job_count"] == 9 and state["job_no"] >= 1:
            seen = progress
            break
        time.sleep(0.02)
    assert seen is not None, "the plot never reported its second cell"
    assert seen["progress"] < 0.5  # the whole plot's progress, not the current image's
    assert live_server.post("/sdapi/v1/interrupt").status_code == 200
    worker.join(120)
    response = answer["r"]
    assert response.status_code == 200, response.text
    grid = _b64_image(response.json()["images"][0])
    assert grid.size == (192, 192)  # the whole 3×3 layout, however far it got
    last = grid.crop((128, 128, 192, 192))
    assert last.getextrema() == ((0, 0), (0, 0), (0, 0))  # not made: black
    assert grid.crop((0, 0, 64, 64)).getextrema() != ((0, 0), (0, 0), (0, 0))  # the first cell was made
