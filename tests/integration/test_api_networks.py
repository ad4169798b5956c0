"""Styles and extra-network listings over real HTTP: /sdapi/v1/prompt-styles, embeddings, loras,
hypernetworks and their refresh endpoints, and txt2img's ``styles``.

Its own server (the session's live_server starts before these files exist): a fresh data dir with
the tiny sd15 checkpoint (CLIP width 64), a styles.csv written as A1111 writes it, and small
network files whose headers carry the shapes the endpoints report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import copy_checkpoint
from tests.kit.servers import LiveServer, start_server
from webui.infotext import parse_infotext

pytestmark = pytest.mark.timeout(300)

STYLES_CSV = (
    "\ufeffname,prompt,negative_prompt\r\n"
    'cinematic,"cinematic still of {prompt}, film grain","cartoon, ""drawing"""\r\n'
    'sharp,"sharp focus, 8k",\r\n'
)
SMALL = {"prompt": "a red cube", "negative_prompt": "blurry", "steps": 2, "width": 64, "height": 64, "seed": 1234,
         "sampler_name": "Euler"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("networks-server")
    copy_checkpoint(checkpoint_store("sd15"), data / "models" / "Stable-diffusion", "sd15.safetensors")
    (data / "styles.csv").write_bytes(STYLES_CSV.encode("utf-8"))
    embeddings = data / "embeddings"
    embeddings.mkdir()
    save_file({"emb_params": torch.zeros(3, 64)}, embeddings / "fits-sd15.safetensors")
    save_file({"emb_params": torch.zeros(2, 768)}, embeddings / "real-sd1.safetensors")
    save_file({"clip_l": torch.zeros(4, 768), "clip_g": torch.zeros(4, 1280)}, embeddings / "sdxl-pair.safetensors")
    torch.save({"string_to_token": {"*": 265}, "string_to_param": {"*": torch.zeros(5, 64, requires_grad=True)},
                "name": "a1111-pt", "step": 1500, "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "sd15"},
               embeddings / "a1111-pt.pt")
    lora = data / "models" / "Lora"
    lora.mkdir(parents=True)
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, lora / "detail.safetensors",
              metadata={"ss_output_name": "detail_tweaker", "ss_network_dim": "4",
                        "ss_tag_frequency": json.dumps({"set": {"tag": 3}}), "note": "{not json"})
    save_file({"lora_unet_x.lora_down.weight": torch.zeros(4, 8)}, lora / "plain.safetensors")
    hyper = data / "models" / "hypernetworks"
    hyper.mkdir(parents=True)
    (hyper / "anime.pt").write_bytes(b"\x80not really loaded by the listing")
    srv = start_server(data, extra_args=["--no-demo-model"])
    try:
        yield srv
    finally:
        srv.stop()


def test_prompt_styles_lists_styles_csv(server):
    body = server.get("/sdapi/v1/prompt-styles").json()
    assert body == [
        {"name": "cinematic", "prompt": "cinematic still of {prompt}, film grain", "negative_prompt": 'cartoon, "drawing"'},
        {"name": "sharp", "prompt": "sharp focus, 8k", "negative_prompt": ""},
    ]


def test_txt2img_infotext_has_the_styled_prompt(server):
    response = server.post("/sdapi/v1/txt2img", json={**SMALL, "styles": ["sharp", "cinematic"]})
    info = json.loads(response.json()["info"])
    params = parse_infotext(info["infotexts"][0])
    assert params["Prompt"] == "cinematic still of a red cube, sharp focus, 8k, film grain"
    assert params["Negative prompt"] == 'blurry, cartoon, "drawing"'
    assert info["all_prompts"] == ["cinematic still of a red cube, sharp focus, 8k, film grain"]
    assert info["styles"] == ["sharp", "cinematic"]


def test_unknown_style_is_422_naming_it(server):
    response = server.post("/sdapi/v1/txt2img", json={**SMALL, "styles": ["sharp", "No Such Style"]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert "No Such Style" in body["message"] and "sharp" in body["message"]  # the names that exist


def test_embeddings_loaded_or_skipped_by_width(server):
    body = server.get("/sdapi/v1/embeddings").json()
    assert set(body) == {"loaded", "skipped"}
    assert body["loaded"]["fits-sd15"] == {"step": None, "sd_checkpoint": None, "sd_checkpoint_name": None,
                                           "shape": 64, "vectors": 3}
    assert body["loaded"]["a1111-pt"] == {"step": 1500, "sd_checkpoint": "abcdef12", "sd_checkpoint_name": "sd15",
                                          "shape": 64, "vectors": 5}
    assert body["skipped"]["real-sd1"]["shape"] == 768 and body["skipped"]["real-sd1"]["vectors"] == 2
    assert body["skipped"]["sdxl-pair"]["shape"] == 768 + 1280 and body["skipped"]["sdxl-pair"]["vectors"] == 4
    assert set(body["loaded"]) | set(body["skipped"]) == {"fits-sd15", "a1111-pt", "real-sd1", "sdxl-pair"}


def test_refresh_embeddings_sees_new_files(server):
    new = server.data_dir / "models" / "embeddings" / "added-later.safetensors"
    save_file({"emb_params": torch.zeros(1, 64)}, new)
    try:
        assert "added-later" not in server.get("/sdapi/v1/embeddings").json()["loaded"]
        assert server.post("/sdapi/v1/refresh-embeddings").status_code == 200
        assert server.get("/sdapi/v1/embeddings").json()["loaded"]["added-later"]["vectors"] == 1
    finally:
        new.unlink()
        server.post("/sdapi/v1/refresh-embeddings")


def test_loras_with_metadata_and_refresh(server):
    body = {item["name"]: item for item in server.get("/sdapi/v1/loras").json()}
    assert set(body) == {"detail", "plain"}
    detail = body["detail"]
    assert detail["alias"] == "detail_tweaker"  # ss_output_name, as A1111
    assert Path(detail["path"]) == server.data_dir / "models" / "Lora" / "detail.safetensors"
    assert detail["metadata"]["ss_network_dim"] == "4"
    assert detail["metadata"]["ss_tag_frequency"] == {"set": {"tag": 3}}  # JSON values parsed
    assert detail["metadata"]["note"] == "{not json"  # left as text when it is not JSON
    assert body["plain"] == {"name": "plain", "alias": "plain", "path": body["plain"]["path"], "metadata": {}}

    new = server.data_dir / "models" / "Lora" / "sub" / "later.safetensors"
    new.parent.mkdir()
    save_file({"x": torch.zeros(1)}, new)
    assert "later" not in {i["name"] for i in server.get("/sdapi/v1/loras").json()}
    assert server.post("/sdapi/v1/refresh-loras").status_code == 200
    assert "later" in {i["name"] for i in server.get("/sdapi/v1/loras").json()}


def test_hypernetworks_listed(server):
    body = server.get("/sdapi/v1/hypernetworks").json()
    assert body == [{"name": "anime", "path": str(server.data_dir / "models" / "hypernetworks" / "anime.pt")}]


def test_preview_route_resolves_names_never_paths(server):
    lora = server.data_dir / "models" / "Lora"
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(lora / "detail.preview.png")
    server.post("/sdapi/v1/refresh-loras")
    response = server.get("/extra-networks/preview", params={"kind": "lora", "name": "detail"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    for params in ({"kind": "lora", "name": "plain"}, {"kind": "lora", "name": "../../config.json"},
                   {"kind": "lora", "name": str(lora / "detail.preview.png")}, {"kind": "secrets", "name": "x"}):
        assert server.get("/extra-networks/preview", params=params).status_code == 404, params
