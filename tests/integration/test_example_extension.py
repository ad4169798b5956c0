"""The example extension that ships in extensions/: off by default, and when switched on its
setting, always-on script and route work (its tab is built by the UI tests' machinery)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import build_studio
from webui.request import GenerationRequest
from webui.server import create_app

EXAMPLE = Path(__file__).resolve().parents[2] / "extensions" / "sd-studio-example"


def test_the_example_is_off_until_switched_on(tmp_path, checkpoint_store):
    shutil.copytree(EXAMPLE, tmp_path / "extensions" / EXAMPLE.name)
    studio = build_studio(tmp_path, checkpoint_store, ("sd15",), start=False)
    assert [e.name for e in studio.plugins.extensions if not e.enabled] == [EXAMPLE.name]
    loaded_from = {script.extension for script in studio.plugins.scripts["txt2img"].scripts}
    assert EXAMPLE.name not in loaded_from and "xyz-grid" in loaded_from  # built-ins load, the example does not

    (tmp_path / "config.json").write_text(json.dumps({"disabled_extensions": []}))
    studio = build_studio(tmp_path, checkpoint_store, ("sd15",), start=False)
    with TestClient(create_app(studio, with_ui=False), base_url="http://127.0.0.1") as client:  # starts, stops it
        assert client.get("/example/suffix").json() == {"suffix": "highly detailed"}
        result = studio.generate(GenerationRequest(
            prompt="a barn", steps=2, width=64, height=64, save_images=False,
            alwayson_scripts={"example: prompt suffix": {"args": [True]}}))
    assert result.infotexts[0].startswith("a barn, highly detailed\n")
    assert "Example suffix: highly detailed" in result.infotexts[0]
