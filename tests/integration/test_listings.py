"""What the lists offer: refused files marked, networks for another model dimmed or hidden,
same-stem files told apart, a sensible model at start, and warnings for networks that were not used.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from tests.conftest import build_studio, copy_checkpoint
from tests.kit.networks import (
    random_vectors,
    write_a1111_embedding,
    write_kohya_lora,
    write_malicious_pickle,
    write_safetensors_embedding,
)
from webui.models.load import load_checkpoint
from webui.request import GenerationRequest
from webui.ui.network_cards import cards
from webui.ui.settings_tab import checkpoint_choices

SMALL = dict(width=64, height=64, steps=2, seed=3, save_images=False)


def _evil_checkpoint(folder, tmp_path):
    return write_malicious_pickle(folder / "aaa-evil.ckpt", tmp_path / "pwned")


def test_startup_skips_refused_files_and_prefers_a_base_model(tmp_path, checkpoint_store):
    ckpt_dir = tmp_path / "models" / "Stable-diffusion"
    copy_checkpoint(checkpoint_store("sd15-inpaint"), ckpt_dir, "aab-inpainting.safetensors")
    _evil_checkpoint(ckpt_dir, tmp_path)
    (ckpt_dir / "aac-garbage.safetensors").write_bytes(b"\x00" * 64)
    # A readable header whose shapes make no sense (a 1-D conv weight) must not stop the start.
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4)}, str(ckpt_dir / "aad-odd.safetensors"))
    copy_checkpoint(checkpoint_store("sd15"), ckpt_dir, "zzz-base.safetensors")
    studio = build_studio(tmp_path, checkpoint_store, families=(), start=True)
    try:
        assert studio.manager.active.file.name == "zzz-base.safetensors"
        assert not (tmp_path / "pwned").exists()
        # The evil file is never tried at start; once refused by hand it is marked, with the reason.
        with pytest.raises(Exception, match="posix.system|os.system"):
            studio.options.update({"sd_model_checkpoint": "aaa-evil.ckpt"})
        labels = {value: label for label, value in checkpoint_choices(studio)[0]}
        evil = next(title for title in labels if title.startswith("aaa-evil"))
        assert labels[evil].startswith("⛔") and "refused" in labels[evil] and "system" in labels[evil]
        assert "if you trust" not in labels[evil] and "safe_globals" not in labels[evil]  # never torch's advice
        assert labels[next(t for t in labels if t.startswith("zzz-base"))] == next(t for t in labels if t.startswith("zzz"))
        card = next(c for c in cards(studio, "checkpoint") if c.name == "aaa-evil")
        assert card.state == "refused" and "system" in card.note
    finally:
        studio.stop()
    again = build_studio(tmp_path, checkpoint_store, families=(), start=False)
    assert again.catalog.refused.reason(ckpt_dir / "aaa-evil.ckpt")  # remembered across restarts


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("listings")
    studio = build_studio(data_dir, checkpoint_store, ("sd15", "sdxl-base"))
    sd15 = load_checkpoint(checkpoint_store("sd15")).pipe
    sdxl = load_checkpoint(checkpoint_store("sdxl-base")).pipe
    lora_dir = data_dir / "models" / "Lora"
    write_kohya_lora(lora_dir / "for-sd1.safetensors", sd15, seed=1)
    write_kohya_lora(lora_dir / "for-sdxl.safetensors", sdxl, seed=2)
    write_kohya_lora(lora_dir / "unknown.safetensors", sd15, seed=3, metadata={})
    width = sd15.text_encoder.config.hidden_size
    write_a1111_embedding(data_dir / "embeddings" / "twin.pt", random_vectors(1, width, seed=4))
    write_safetensors_embedding(data_dir / "embeddings" / "twin.safetensors", random_vectors(1, width, seed=6))
    studio.networks.refresh()
    yield studio
    studio.stop()


def _states(studio, kind):
    return {c.name: (c.state, c.hidden) for c in cards(studio, kind)}


def test_networks_for_another_version_are_dimmed_or_hidden(studio):
    states = _states(studio, "lora")
    assert states["for-sdxl"] == ("incompatible", False) and states["for-sd1"] == ("", False)
    assert states["unknown"] == ("", False)
    studio.options.update({"lora_show_all": False, "lora_hide_unknown_for_versions": ["SD1"]})
    try:
        states = _states(studio, "lora")
        assert states["for-sdxl"] == ("incompatible", True) and states["unknown"] == ("", True)
        assert states["for-sd1"] == ("", False)
    finally:
        studio.options.update({"lora_show_all": True, "lora_hide_unknown_for_versions": []})


def test_a_lora_for_another_version_is_not_applied_and_says_so(studio):
    plain = studio.generate(GenerationRequest(prompt="a cat", **SMALL))
    result = studio.generate(GenerationRequest(prompt="a cat <lora:for-sdxl:1>", **SMALL))
    assert np.array_equal(np.asarray(plain.images[0].image), np.asarray(result.images[0].image))
    assert result.warnings == ["LoRA for-sdxl: made for SDXL, the loaded model is SD1; not applied"]
    assert "Lora hashes" not in result.images[0].infotext


def test_embeddings_with_one_stem_are_all_listed_and_usable(studio):
    names = {f.name for f in studio.networks.list("embedding")}
    assert {"twin", "twin.safetensors"} <= names
    images = {name: np.asarray(studio.generate(GenerationRequest(prompt=f"a {name} cat", **SMALL)).images[0].image)
              for name in ("twin", "twin.safetensors")}
    assert not np.array_equal(images["twin"], images["twin.safetensors"])
    result = studio.generate(GenerationRequest(prompt="a twin.safetensors cat", **SMALL))
    assert "TI hashes: twin.safetensors:" in result.images[0].infotext.replace('"', "")
    assert "twin: " not in result.images[0].infotext.split("TI hashes")[1]  # only the one named
