"""Prompt matrix and Prompts from file or textbox over the A1111 API (the built-in prompt-tools
extension), on the session's live server: images, their infotext, the labelled grid, refusals."""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image

from webui import infotext

SMALL = {"steps": 2, "width": 64, "height": 64, "seed": 11, "sampler_name": "Euler", "cfg_scale": 5}


def images_of(response) -> tuple[list[Image.Image], dict]:
    assert response.status_code == 200, response.text
    body = response.json()
    images = [Image.open(io.BytesIO(base64.b64decode(data))) for data in body["images"]]
    for image in images:
        image.load()
    return images, json.loads(body["info"])


def test_prompt_matrix_makes_every_combination_and_a_labelled_grid(live_server):
    body = {**SMALL, "prompt": "a house|red roof|snow", "script_name": "prompt matrix",
            "script_args": [False, False, "positive", "comma", 4]}
    images, info = images_of(live_server.post("/sdapi/v1/txt2img", json=body))
    grid, cells = images[0], images[1:]  # the grid first, as A1111 returns it
    prompts = [infotext.parse_infotext(image.info["parameters"])["Prompt"] for image in cells]
    assert prompts == ["a house", "a house, red roof", "a house, snow", "a house, red roof, snow"]
    assert info["all_seeds"] == [11, 11, 11, 11]  # one seed for the whole matrix
    assert cells[0].tobytes() != cells[3].tobytes()
    # 2x2 cells of 64 with a 4 px margin, plus a label band on top and one on the left
    assert grid.width > 2 * 64 + 4 and grid.height > 2 * 64 + 4
    band_left, band_top = grid.width - (2 * 64 + 4), grid.height - (2 * 64 + 4)
    assert band_left == 64 * 3 // 4 and 10 < band_top < 64
    # the cells sit at the bottom right, in combination order
    assert grid.crop((grid.width - 64, grid.height - 64, grid.width, grid.height)).tobytes() == \
        cells[3].convert("RGB").tobytes()
    label_band = grid.crop((band_left, 0, grid.width, band_top)).convert("L")
    assert label_band.getextrema()[0] < 100  # text drawn on the white band


def test_prompt_matrix_on_the_negative_prompt_with_parts_first_and_seeds_apart(live_server):
    body = {**SMALL, "prompt": "a boat", "negative_prompt": "blur|noise", "script_name": "Prompt matrix",
            "script_args": [True, True, "negative", "space", 0]}
    images, info = images_of(live_server.post("/sdapi/v1/txt2img", json=body))
    params = [infotext.parse_infotext(image.info["parameters"]) for image in images[1:]]
    assert [p["Negative prompt"] for p in params] == ["blur", "noise blur"]
    assert [p["Prompt"] for p in params] == ["a boat", "a boat"]
    assert info["all_seeds"] == [11, 12]
    assert images[0].size == (2 * 64, 64 + (images[0].height - 64))  # one row of two, labels on top only


def test_prompts_from_file_runs_each_line_as_its_own_job(live_server):
    lines = "\n".join([
        "a plain prompt line",
        "",
        '--prompt "a red car" --negative_prompt dull grey --steps 3 --cfg_scale 6.5 --batch_size 2',
        "--prompt tiny --width 72 --height 64 --seed 99",
    ])
    body = {**SMALL, "prompt": "", "script_name": "prompts from file or textbox",
            "script_args": [True, False, "start", lines]}
    images, info = images_of(live_server.post("/sdapi/v1/txt2img", json=body))
    assert len(images) == 4  # 1 + 2 + 1, and no grid
    params = [infotext.parse_infotext(image.info["parameters"]) for image in images]
    assert [p["Prompt"] for p in params] == ["a plain prompt line", "a red car", "a red car", "tiny"]
    assert params[1]["Negative prompt"] == "dull grey" and params[1]["Steps"] == 3 and params[1]["CFG scale"] == 6.5
    assert images[3].size == (72, 64) and params[3]["Seed"] == 99
    # "Iterate seed every line": the second line starts after the first line's image
    assert [p["Seed"] for p in params[:3]] == [11, 12, 13]
    assert info["all_prompts"] == ["a plain prompt line", "a red car", "a red car", "tiny"]


def test_prompts_from_file_puts_line_prompts_around_the_tabs(live_server):
    body = {**SMALL, "prompt": "oil painting", "script_name": "Prompts from file or textbox",
            "script_args": [False, True, "end", "a cat\na dog"]}
    images, _ = images_of(live_server.post("/sdapi/v1/txt2img", json={**body, "seed": -1}))
    params = [infotext.parse_infotext(image.info["parameters"]) for image in images]
    assert [p["Prompt"] for p in params] == ["oil painting a cat", "oil painting a dog"]
    assert params[0]["Seed"] == params[1]["Seed"]  # "Use same random seed for all lines"


@pytest.mark.parametrize("text, words", [
    ("a cat\n--prompt dog --steps many", "line 2, --steps: expects a whole number"),
    ("--prompt dog --colour red", "line 1, --colour: unknown option"),
    ("ok\n\n--prompt x --outpath_samples /tmp/elsewhere", "line 3, --outpath_samples: refused"),
    ("--prompt x --outpath_grids ../../", "--outpath_grids: refused"),
    ("--prompt x --sd_model nope.safetensors", "line 1, --sd_model: checkpoint not found"),
    ("--prompt x --steps 0", "line 1: --steps"),
    ("--prompt x --sampler_name Bogus", "line 1, --sampler_name: unknown sampler"),
    ("\n\n", "empty"),
])
def test_bad_lines_are_a_422_naming_the_line_and_the_option(live_server, text, words):
    body = {**SMALL, "prompt": "p", "script_name": "prompts from file or textbox", "script_args": [False, False,
                                                                                                  "start", text]}
    response = live_server.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "script_args"]
    assert words in response.json()["message"]


def test_bad_matrix_args_are_a_422(live_server):
    body = {**SMALL, "prompt": "a|b", "script_name": "prompt matrix", "script_args": [False, False, "both"]}
    response = live_server.post("/sdapi/v1/txt2img", json=body)
    assert response.status_code == 422 and "prompt type" in response.json()["message"]
    assert live_server.post("/api/v1/jobs", json=body).status_code == 422  # the jobs API checks the same
    many = {**SMALL, "prompt": "a" + "|x" * 20, "script_name": "prompt matrix"}
    response = live_server.post("/sdapi/v1/txt2img", json=many)
    assert response.status_code == 422 and "combinations" in response.json()["message"]


def test_sd_model_switches_the_checkpoint_for_that_line_only(live_server):
    before = live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"]
    other = next(m["title"] for m in live_server.get("/sdapi/v1/sd-models").json() if m["title"] != before)
    body = {**SMALL, "script_name": "prompts from file or textbox",
            "script_args": [False, False, "start", f'--prompt "a tree" --sd_model "{other}"']}
    images, _ = images_of(live_server.post("/sdapi/v1/txt2img", json=body))
    model = infotext.parse_infotext(images[0].info["parameters"])["Model"]
    assert model in other and model not in before
    assert live_server.get("/sdapi/v1/options").json()["sd_model_checkpoint"] == before  # not everyone's model
