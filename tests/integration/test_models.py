"""Identification, loading, switching, caching and bad files, on tiny real-layout checkpoints."""

from __future__ import annotations

import os
import pickle
import struct
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import copy_checkpoint
from webui.models.catalog import Catalog
from webui.models.hashes import HashCache, sha256_of_file
from webui.models.load import identify_file, load_checkpoint
from webui.models.manager import ModelManager
from webui.models.safe_load import (
    CheckpointError,
    load_state_dict,
    read_safetensors_header,
)
from webui.models.synthetic import FAMILIES, write_ckpt_pickle, write_vae
from webui.request import GenerationRequest

EXPECTED_CONTEXT = {
    "sd15": 64, "sd15-inpaint": 64, "sd2": 1024, "sd2-v": 1024, "sd2-inpaint": 1024,
    "sdxl-base": 192, "sdxl-inpaint": 192, "sdxl-refiner": 128,
}


@pytest.mark.parametrize("family", FAMILIES)
def test_family_identified_from_shapes_not_names(family, checkpoint_store, tmp_path):
    # The stored file is named after its family; a copy with a misleading name must not matter.
    source = checkpoint_store(family)
    misleading = copy_checkpoint(source, tmp_path, "sdxl-v1-5-pruned-768-v-ema.safetensors")
    spec = identify_file(misleading)
    assert spec.family == family
    assert spec.unet.context_dim == EXPECTED_CONTEXT[family]
    assert spec.is_inpaint == family.endswith("inpaint")
    if family == "sd2-v":
        assert (spec.prediction_type, spec.prediction_source) == ("v_prediction", "sidecar")


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_loads_offline_and_generates(family, checkpoint_store, tmp_path):
    from webui.engine.runner import Engine

    manager = _manager_with(tmp_path, checkpoint_store(family))
    loaded = manager.active.checkpoint
    assert loaded.spec.family == family
    assert not any(p.is_meta for p in loaded.pipe.unet.parameters())
    assert loaded.pipe.scheduler.config.prediction_type == loaded.spec.prediction_type
    engine = Engine(manager, _options(tmp_path), None)
    result = engine.run(GenerationRequest(prompt="a red fox", steps=2, width=64, height=64, seed=3, save_images=False))
    image = np.asarray(result.images[0].image)
    assert image.shape == (64, 64, 3)
    assert image.std() > 0  # not a blank frame


def test_sd2_without_sidecar_is_probed(checkpoint_store, tmp_path):
    plain = copy_checkpoint(checkpoint_store("sd2"), tmp_path, "model.safetensors")
    loaded = load_checkpoint(plain)
    assert loaded.spec.prediction_source == "probe"
    assert loaded.spec.family in ("sd2", "sd2-v")
    assert loaded.pipe.scheduler.config.prediction_type == loaded.spec.prediction_type


def test_sidecar_overrides_prediction(checkpoint_store, tmp_path):
    # The v sidecar next to an otherwise identical eps file makes it v-prediction.
    eps = copy_checkpoint(checkpoint_store("sd2"), tmp_path, "model.safetensors")
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    parameterization: v\n")
    spec = identify_file(eps)
    assert (spec.family, spec.prediction_type, spec.prediction_source) == ("sd2-v", "v_prediction", "sidecar")


def test_sidecar_head_count_is_used(checkpoint_store, tmp_path):
    path = copy_checkpoint(checkpoint_store("sd15"), tmp_path, "model.safetensors")
    assert identify_file(path).unet.heads == (8, 8)
    (tmp_path / "model.yaml").write_text("model:\n  params:\n    unet_config:\n      params:\n        num_head_channels: 16\n")
    assert identify_file(path).unet.heads == (2, 4)


def test_legacy_ckpt_loads_the_same_weights(checkpoint_store, tmp_path):
    ckpt = write_ckpt_pickle(tmp_path / "model.ckpt", "sd15")
    a = load_state_dict(ckpt)
    b = load_state_dict(checkpoint_store("sd15"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_checkpoint(ckpt).spec.family == "sd15"


# --- bad files ---------------------------------------------------------------------------------

class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_ckpt_that_would_run_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _RunsCode(marker)}, evil)
    with pytest.raises(CheckpointError, match="refused") as info:
        load_state_dict(evil)
    assert "system" in str(info.value)
    assert not marker.exists()


def test_plain_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(_RunsCode(marker), protocol=2))
    with pytest.raises(CheckpointError):
        load_state_dict(evil)
    assert not marker.exists()


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _header_only(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    target.write_bytes(data[: 8 + length])
    return target


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda src, p: (p.write_bytes(os.urandom(4096)), p)[1], "not a safetensors file|corrupt"),
        (lambda src, p: (p.write_bytes(b""), p)[1], "not a safetensors file"),
        (_truncated, "truncated"),
        (_header_only, "truncated"),
        (lambda src, p: (p.write_bytes(struct.pack("<Q", 2) + b"{}"), p)[1], "no tensors"),
    ],
    ids=["garbage", "empty", "truncated", "header-only", "no-tensors"],
)
def test_bad_safetensors_fail_with_a_clear_message(make, message, checkpoint_store, tmp_path):
    bad = make(checkpoint_store("sd15"), tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(bad)


def test_vae_or_lora_in_the_checkpoint_folder_is_named(tmp_path):
    vae = write_vae(tmp_path / "some.vae.safetensors")
    with pytest.raises(CheckpointError, match="looks like a VAE"):
        identify_file(vae)


def test_failed_load_keeps_the_current_model_working(checkpoint_store, tmp_path):
    folder = tmp_path / "ckpt"
    copy_checkpoint(checkpoint_store("sd15"), folder, "good.safetensors")
    _truncated(checkpoint_store("sdxl-base"), folder / "broken.safetensors")
    manager = ModelManager(Catalog(folder, tmp_path / "vae", HashCache(tmp_path / "cache.json")))
    manager.load("good.safetensors")
    with pytest.raises(CheckpointError, match="truncated"):
        manager.load("broken.safetensors")
    assert manager.active.file.name == "good.safetensors"
    from webui.engine.runner import Engine

    result = Engine(manager, _options(tmp_path), None).run(
        GenerationRequest(steps=1, width=64, height=64, seed=1, save_images=False)
    )
    assert result.images


# --- switching, cache, VAE ---------------------------------------------------------------------

def test_switching_and_ram_cache(checkpoint_store, tmp_path):
    folder = tmp_path / "ckpt"
    a = copy_checkpoint(checkpoint_store("sd15"), folder, "a.safetensors")
    copy_checkpoint(checkpoint_store("sdxl-base"), folder, "b.safetensors")
    manager = ModelManager(Catalog(folder, tmp_path / "vae", HashCache(tmp_path / "cache.json")), ram_cache=1)
    manager.load("a")
    manager.load("b.safetensors")
    assert manager.active.spec.family == "sdxl-base"
    assert [t.split(" [")[0] for t in manager.cached_titles()] == ["a.safetensors"]
    # Served from RAM: the file can even be gone.
    a.unlink()
    manager.load("a.safetensors")
    assert manager.active.spec.family == "sd15"

    manager.set_ram_cache(0)
    assert manager.cached_titles() == []


def test_title_has_a1111_short_hash_after_load(checkpoint_store, tmp_path):
    folder = tmp_path / "ckpt"
    path = copy_checkpoint(checkpoint_store("sd15"), folder, "m.safetensors")
    manager = ModelManager(Catalog(folder, tmp_path / "vae", HashCache(tmp_path / "cache.json")))
    model = manager.load("m.safetensors")
    assert model.file.title == f"m.safetensors [{sha256_of_file(path)[:10]}]"
    assert manager.catalog.find_checkpoint(model.file.title) is not None


def test_catalog_lists_without_hashing(tmp_path, checkpoint_store):
    folder = tmp_path / "ckpt"
    for i in range(30):
        copy_checkpoint(checkpoint_store("sd15"), folder / f"sub{i % 3}", f"model{i}.safetensors")
    hashes = HashCache(tmp_path / "cache.json")
    started = time.perf_counter()
    files = Catalog(folder, tmp_path / "vae", hashes).checkpoints
    listing = time.perf_counter() - started
    assert len(files) == 30 and files[0].name == "sub0/model0.safetensors"
    assert listing < 5  # generous: hashing 30 copies synchronously would read ~1 GB
    # Hashes arrive in the background and persist across restarts.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and hashes.cached(files[-1].path) is None:
        time.sleep(0.1)
    assert HashCache(tmp_path / "cache.json").cached(files[-1].path) == sha256_of_file(files[-1].path)


def test_vae_override_and_back(checkpoint_store, tmp_path):
    from webui.engine.runner import Engine

    folder, vae_dir = tmp_path / "ckpt", tmp_path / "vae"
    copy_checkpoint(checkpoint_store("sd15"), folder, "m.safetensors")
    write_vae(vae_dir / "other.safetensors", seed=7)
    manager = ModelManager(Catalog(folder, vae_dir, HashCache(tmp_path / "cache.json")))
    manager.load("m.safetensors")
    options = _options(tmp_path)
    engine = Engine(manager, options, None)  # a job applies the sd_vae option it starts with
    request = GenerationRequest(steps=2, width=64, height=64, seed=5, save_images=False)
    base = np.asarray(engine.run(request).images[0].image)
    options.update({"sd_vae": "other.safetensors"})
    other = engine.run(request)
    assert not np.array_equal(base, np.asarray(other.images[0].image))
    vae_hash = sha256_of_file(vae_dir / "other.safetensors")[:10]
    assert f"VAE hash: {vae_hash}, VAE: other.safetensors" in other.images[0].infotext
    options.update({"sd_vae": "None"})
    assert np.array_equal(base, np.asarray(engine.run(request).images[0].image))
    assert manager.active.vae_file is None


def test_header_reader_never_reads_the_tensors(checkpoint_store):
    header = read_safetensors_header(checkpoint_store("sd15"))
    assert "model.diffusion_model.input_blocks.0.0.weight" in header


# --- helpers -----------------------------------------------------------------------------------

def _options(folder):
    """Options at their defaults, persisted in the test's folder."""
    from webui.settings import Options

    return Options(folder / "config.json")


def _manager_with(tmp_path: Path, checkpoint: Path) -> ModelManager:
    """A manager over a folder holding a copy of ``checkpoint``, with that model active."""
    folder = tmp_path / "ckpt"
    copy_checkpoint(checkpoint, folder, "model.safetensors")
    manager = ModelManager(Catalog(folder, tmp_path / "vae", HashCache(tmp_path / "cache.json")))
    manager.load("model.safetensors")
    return manager
