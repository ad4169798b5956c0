"""Checkpoint merger on tiny real-layout checkpoints: the arithmetic checked tensor by tensor against
the inputs, fp16, discarded weights, a baked-in VAE, A1111's recipe metadata, and refusals."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors import safe_open
from safetensors.torch import save_file

from webui.models.catalog import Catalog
from webui.models.hashes import HashCache
from webui.models.merge import MergeError, MergeRecipe, merge_checkpoints, merged_title
from webui.models.safe_load import load_state_dict
from webui.models.synthetic import write_vae

CONV_IN = "model.diffusion_model.input_blocks.0.0.weight"
POSITION_IDS = "cond_stage_model.transformer.text_model.embeddings.position_ids"


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, checkpoint_store) -> Catalog:
    root = tmp_path_factory.mktemp("merge")
    ckpt_dir, vae_dir = root / "Stable-diffusion", root / "VAE"
    ckpt_dir.mkdir()
    for name, family, seed in [("a", "sd15", 0), ("b", "sd15", 1), ("xl", "sdxl-base", 0),
                               ("inpaint", "sd15-inpaint", 0)]:
        shutil.copyfile(checkpoint_store(family, seed), ckpt_dir / f"{name}.safetensors")
    # C: A's tensors with other random values (cheaper than writing a third checkpoint)
    gen = torch.Generator().manual_seed(7)
    a = load_state_dict(ckpt_dir / "a.safetensors")
    save_file({k: torch.randn(v.shape, generator=gen) if v.dtype.is_floating_point else v for k, v in a.items()},
              str(ckpt_dir / "c.safetensors"))
    write_vae(vae_dir / "tuned.vae.safetensors", seed=5)
    return Catalog(ckpt_dir, vae_dir, HashCache(root / "hashes.json"))


def tensors(catalog: Catalog, name: str) -> dict[str, torch.Tensor]:
    return load_state_dict(catalog.ckpt_dir / name)


def merged(catalog: Catalog, **fields) -> tuple[Path, dict[str, torch.Tensor]]:
    path = merge_checkpoints(MergeRecipe(**fields), catalog)
    return path, load_state_dict(path)


def mismatched(out: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], tolerance: float = 1e-5) -> list[str]:
    """Keys whose output differs from the expected tensor in dtype or value (fast: no per-key report)."""
    return [k for k, v in expected.items() if out[k].dtype != v.dtype
            or not torch.allclose(out[k].float(), v.float(), rtol=tolerance, atol=tolerance / 10)]


def is_merged(key: str, tensor: torch.Tensor) -> bool:
    """The tensors A1111 merges: names with "model", floating point, not the CLIP position ids."""
    return "model" in key and key != POSITION_IDS and tensor.dtype.is_floating_point


@pytest.mark.parametrize("half", [False, True])
def test_weighted_sum_is_a_times_one_minus_m_plus_b_times_m(catalog, half):
    path, out = merged(catalog, primary_model_name="a", secondary_model_name="b.safetensors", multiplier=0.25,
                       save_as_half=half, custom_name=f"ws-{half}")
    a, b = tensors(catalog, "a.safetensors"), tensors(catalog, "b.safetensors")
    assert path.name == f"ws-{half}.safetensors" and out.keys() == a.keys()
    expected = {k: a[k] * 0.75 + b[k] * 0.25 if is_merged(k, v) else v for k, v in a.items()}
    if half:
        expected = {k: v.half() if v.dtype == torch.float32 else v for k, v in expected.items()}
    assert mismatched(out, expected, 1e-3 if half else 1e-5) == []  # fp16 rounding: ~1e-3 relative
    assert not torch.equal(out[CONV_IN].float(), a[CONV_IN])  # the merge did something


def test_add_difference_is_a_plus_m_times_b_minus_c(catalog):
    path, out = merged(catalog, primary_model_name="a", secondary_model_name="b", tertiary_model_name="c",
                       interp_method="Add difference", multiplier=0.6)
    a, b, c = (tensors(catalog, f"{n}.safetensors") for n in "abc")
    assert path.name == "a + 0.6(b - c).safetensors"  # A1111's derived name
    expected = {k: a[k] + (b[k] - c[k]) * 0.6 if is_merged(k, v) else v for k, v in a.items()}
    assert out.keys() == a.keys() and mismatched(out, expected) == []


def test_no_interpolation_copies_a_and_a_derived_name_is_a1111s(catalog):
    path, out = merged(catalog, primary_model_name="b", secondary_model_name="xl", interp_method="No interpolation",
                       save_as_half=True, custom_name="b-fp16.safetensors")
    b = tensors(catalog, "b.safetensors")
    assert path.name == "b-fp16.safetensors"  # B of the recipe (an SDXL) is not used at all
    assert out.keys() == b.keys()
    assert mismatched(out, {k: v.half() if v.dtype == torch.float32 else v for k, v in b.items()}) == []
    assert out[POSITION_IDS].dtype == torch.int64


def test_discarded_weights_are_left_out(catalog):
    _, out = merged(catalog, primary_model_name="a", secondary_model_name="b", custom_name="no-text",
                    discard_weights=r"^cond_stage_model\.|alphas")
    a = tensors(catalog, "a.safetensors")
    kept = {k for k in a if not k.startswith("cond_stage_model.") and "alphas" not in k}
    assert set(out) == kept and any(k.startswith("cond_stage_model.") for k in a)
    with pytest.raises(ValidationError, match="regular expression"):
        MergeRecipe(primary_model_name="a", discard_weights="(unclosed")


def test_a_baked_in_vae_replaces_first_stage_model(catalog):
    _, out = merged(catalog, primary_model_name="a", interp_method="No interpolation", custom_name="a-vae",
                    bake_in_vae="tuned.vae.safetensors")
    vae, a = load_state_dict(catalog.vae_dir / "tuned.vae.safetensors"), tensors(catalog, "a.safetensors")
    assert vae and all(torch.equal(out["first_stage_model." + k], v) for k, v in vae.items())
    assert not torch.equal(out["first_stage_model.decoder.conv_out.weight"], a["first_stage_model.decoder.conv_out.weight"])
    assert torch.equal(out[CONV_IN], a[CONV_IN])
    with pytest.raises(MergeError, match="VAE not found"):
        merge_checkpoints(MergeRecipe(primary_model_name="a", interp_method="No interpolation", bake_in_vae="nope.pt",
                                      custom_name="x"), catalog)


def test_recipe_metadata_parses_back_with_the_inputs_hashes(catalog):
    path, _ = merged(catalog, primary_model_name="a", secondary_model_name="b", multiplier=0.5, custom_name="meta")
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    recipe, models = json.loads(metadata["sd_merge_recipe"]), json.loads(metadata["sd_merge_models"])
    sha = {n: hashlib.sha256((catalog.ckpt_dir / f"{n}.safetensors").read_bytes()).hexdigest() for n in "ab"}
    assert metadata["format"] == "pt"
    assert recipe["type"] == "webui" and recipe["interp_method"] == "Weighted sum" and recipe["multiplier"] == 0.5
    assert (recipe["primary_model_hash"], recipe["secondary_model_hash"]) == (sha["a"], sha["b"])
    assert recipe["tertiary_model_hash"] is None and recipe["is_inpainting"] is False
    assert models[sha["a"]]["name"] == "a.safetensors" and models[sha["b"]]["name"] == "b.safetensors"
    assert len(models[sha["a"]]["legacy_hash"]) == 8


def test_different_families_are_refused_naming_both(catalog):
    before = sorted(p.name for p in catalog.ckpt_dir.iterdir())
    with pytest.raises(MergeError) as refused:
        merge_checkpoints(MergeRecipe(primary_model_name="a", secondary_model_name="xl"), catalog)
    assert "SD 1.x" in str(refused.value) and "SDXL base" in str(refused.value)
    assert sorted(p.name for p in catalog.ckpt_dir.iterdir()) == before


def test_an_inpainting_a_takes_b_on_its_first_four_input_channels(catalog):
    path, out = merged(catalog, primary_model_name="inpaint", secondary_model_name="a", multiplier=0.25)
    inpaint, a = tensors(catalog, "inpaint.safetensors"), tensors(catalog, "a.safetensors")
    assert path.name == "0.75(inpaint) + 0.25(a).inpainting.safetensors"
    torch.testing.assert_close(out[CONV_IN][:, :4], inpaint[CONV_IN][:, :4] * 0.75 + a[CONV_IN] * 0.25)
    assert torch.equal(out[CONV_IN][:, 4:], inpaint[CONV_IN][:, 4:])
    with pytest.raises(MergeError, match="A must be the inpainting model"):
        merge_checkpoints(MergeRecipe(primary_model_name="a", secondary_model_name="inpaint"), catalog)


def test_the_result_loads_and_is_listed(catalog):
    from webui.models.load import load_checkpoint

    path = merge_checkpoints(MergeRecipe(primary_model_name="a", secondary_model_name="c", custom_name="loads",
                                         save_as_half=True), catalog)
    title = merged_title(catalog, path)
    assert title.startswith("loads.safetensors [") and catalog.find_checkpoint(title).path == path.resolve()
    assert load_checkpoint(path).spec.family == "sd15"


def test_names_stay_in_the_folder_and_files_are_not_overwritten_unasked(catalog):
    for bad in ("../x", "sub/x", "..", ".hidden", "x.ckpt"):
        with pytest.raises(ValidationError):
            MergeRecipe(primary_model_name="a", custom_name=bad)
    with pytest.raises(ValidationError, match="only safetensors"):
        MergeRecipe(primary_model_name="a", checkpoint_format="ckpt")
    b_bytes = (catalog.ckpt_dir / "b.safetensors").read_bytes()
    with pytest.raises(MergeError, match="already exists") as taken:
        merge_checkpoints(MergeRecipe(primary_model_name="a", interp_method="No interpolation", custom_name="b"),
                          catalog)
    assert taken.value.code == 409 and (catalog.ckpt_dir / "b.safetensors").read_bytes() == b_bytes


def test_a_failure_mid_write_leaves_no_file(catalog):
    before = sorted(p.name for p in catalog.ckpt_dir.iterdir())
    calls = []

    def fail_halfway(done: int, total: int) -> None:
        calls.append(done)
        if done == total // 2:
            raise OSError(28, "No space left on device")

    with pytest.raises(MergeError, match="could not write half.safetensors: No space left"):
        merge_checkpoints(MergeRecipe(primary_model_name="a", secondary_model_name="b", custom_name="half"),
                          catalog, progress=fail_halfway)
    assert calls and sorted(p.name for p in catalog.ckpt_dir.iterdir()) == before  # no half file, no temp file
    assert catalog.find_checkpoint("half") is None


def test_the_tab_merges_for_admins_only(catalog):
    from types import SimpleNamespace

    from webui.ui.merger_tab import run_merge

    view = SimpleNamespace(catalog=catalog)  # run_merge reads the catalog only
    values = {"primary_model_name": "a", "secondary_model_name": "b", "custom_name": "from-tab"}
    assert "only an admin" in run_merge(view, values, admin=False)
    assert not (catalog.ckpt_dir / "from-tab.safetensors").exists()
    assert "regular expression" in run_merge(view, {**values, "discard_weights": "(["}, admin=True)
    shown = run_merge(view, values, admin=True)
    assert "Checkpoint saved" in shown and "from-tab.safetensors [" in shown
