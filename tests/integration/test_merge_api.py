"""POST /api/v1/checkpoints/merge through the real app and its gate: admins only, the new checkpoint
is listed by /sdapi/v1/sd-models at once, bad recipes are a 422 (or 409) that says why."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.conftest import build_studio, copy_checkpoint
from webui.server import create_app

ADMIN, BOB = ("admin", "admin-password"), ("bob", "bob-password")
ROUTE = "/api/v1/checkpoints/merge"


@pytest.fixture(scope="module")
def client(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("merge-api")
    copy_checkpoint(checkpoint_store("sd15", seed=1), data_dir / "models" / "Stable-diffusion", "other.safetensors")
    studio = build_studio(data_dir, checkpoint_store, ("sd15", "sdxl-base"), start=False,
                          gradio_auth=":".join(ADMIN))
    studio.users.add(*BOB, role="user")
    # No lifespan (no `with`): the routes need the catalog only, not a loaded model.
    yield TestClient(create_app(studio, with_ui=False), base_url="http://127.0.0.1")
    studio.stop()


def test_admins_merge_and_the_result_is_listed(client):
    recipe = {"primary_model_name": "sd15", "secondary_model_name": "other.safetensors", "multiplier": 0.4,
              "custom_name": "blend"}
    refused = client.post(ROUTE, json=recipe, auth=BOB)
    assert refused.status_code == 403 and "admin" in refused.json()["message"]
    done = client.post(ROUTE, json=recipe, auth=ADMIN)
    assert done.status_code == 200, done.text
    title = done.json()["title"]
    assert title.startswith("blend.safetensors [")
    listed = {m["title"]: m for m in client.get("/sdapi/v1/sd-models", auth=BOB).json()}
    assert title in listed and listed[title]["model_name"] == "blend"
    again = client.post(ROUTE, json=recipe, auth=ADMIN)
    assert again.status_code == 409 and "already exists" in again.json()["message"]


@pytest.mark.parametrize("change, status, words", [
    ({"secondary_model_name": "nope"}, 422, ["not found", "nope"]),
    ({"secondary_model_name": "sdxl-base"}, 422, ["SD 1.x", "SDXL base", "different model families"]),
    ({"discard_weights": "(["}, 422, ["regular expression"]),
    ({"custom_name": "../x"}, 422, ["plain file name"]),
    ({"checkpoint_format": "ckpt"}, 422, ["only safetensors"]),
    ({"interp_method": "Add difference"}, 422, ["tertiary"]),
])
def test_bad_recipes_say_why(client, change, status, words):
    recipe = {"primary_model_name": "sd15", "secondary_model_name": "other", "custom_name": "never", **change}
    response = client.post(ROUTE, json=recipe, auth=ADMIN)
    assert response.status_code == status, response.text
    message = response.json()["message"]
    assert all(w in message for w in words), message
    names = [m["model_name"] for m in client.get("/sdapi/v1/sd-models", auth=ADMIN).json()]
    assert "never" not in names and "x" not in names
