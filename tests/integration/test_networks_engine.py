"""Extra networks through the real engine: tags in prompts, infotext that parses back, clean next job."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import build_studio
from tests.kit.networks import (
    random_vectors,
    write_a1111_embedding,
    write_hypernetwork,
    write_kohya_lora,
)
from webui import infotext
from webui.request import GenerationRequest

SMALL = dict(width=64, height=64, steps=3, seed=4)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("networks-engine")
    studio = build_studio(data_dir, checkpoint_store, ("sd15",))
    with studio.manager.use() as model:
        write_kohya_lora(data_dir / "models" / "Lora" / "detail.safetensors", model.pipe, seed=1)
        write_kohya_lora(data_dir / "models" / "Lora" / "styles" / "ink.safetensors", model.pipe, seed=2)
    write_a1111_embedding(data_dir / "embeddings" / "shiny.pt", random_vectors(2, 64, seed=3))
    write_hypernetwork(data_dir / "models" / "hypernetworks" / "anime.pt", dims=(32, 64))
    studio.networks.refresh()
    yield studio
    studio.stop()


def pixels(studio, prompt: str, negative: str = "") -> tuple[np.ndarray, str]:
    result = studio.generate(GenerationRequest(prompt=prompt, negative_prompt=negative, **SMALL))
    return np.asarray(result.images[0].image), result.images[0].infotext


def test_each_network_changes_the_image_and_the_next_job_is_clean(studio):
    base, _ = pixels(studio, "a cat")
    for prompt in ("a cat <lora:detail:1>", "a cat <hypernet:anime:1>", "a shiny cat"):
        changed, _ = pixels(studio, prompt)
        assert not np.array_equal(changed, base), prompt
        assert np.array_equal(pixels(studio, "a cat")[0], base), f"{prompt} leaked into the next job"


def test_weight_zero_is_the_base_image(studio):
    base, _ = pixels(studio, "a cat")
    assert np.array_equal(pixels(studio, "a cat <lora:detail:0>")[0], base)
    assert np.array_equal(pixels(studio, "a cat <hypernet:anime:0>")[0], base)


def test_mixed_networks_are_recorded_in_infotext_that_parses_back(studio):
    prompt = "a shiny cat <lora:detail:0.7> <lora:ink:0.4:1> <hypernet:anime:0.5>"
    _, text = pixels(studio, prompt)
    parsed = infotext.parse_infotext(text)
    assert parsed["Prompt"] == prompt  # tags stay in the saved prompt, as A1111 writes it
    assert set(parsed["Lora hashes"].replace(" ", "").split(",")) >= {
        f"detail:{_addnet_hash(studio, 'detail')}", f"ink:{_addnet_hash(studio, 'ink')}",
    }
    assert parsed["TI hashes"].startswith("shiny: ")
    # Re-running the parsed settings gives the same image.
    again = studio.generate(GenerationRequest(prompt=parsed["Prompt"], seed=parsed["Seed"], steps=parsed["Steps"],
                                              width=parsed["Size-1"], height=parsed["Size-2"]))
    assert np.array_equal(np.asarray(again.images[0].image), pixels(studio, prompt)[0])


def test_missing_and_broken_networks_are_warnings_not_errors(studio, tmp_path):
    (studio.paths.data_dir / "models" / "Lora" / "broken.safetensors").write_bytes(b"not a lora")
    studio.networks.refresh()
    result = studio.generate(GenerationRequest(prompt="a cat <lora:nosuch:1> <lora:broken:1>", **SMALL))
    assert "Lora not found: nosuch" in result.warnings
    assert any(w.startswith("LoRA broken: skipped broken.safetensors") for w in result.warnings)
    assert result.info["warnings"] == result.warnings
    assert result.images


def _addnet_hash(studio, name: str) -> str:
    from webui.networks.lora import lora_hash

    return lora_hash(studio.networks.find("lora", name).path)
