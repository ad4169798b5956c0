"""Random-weight checkpoints: real key layouts, detectable family, deterministic, loadable."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from tests.kit import (
    FAMILIES,
    family_spec,
    write_checkpoint,
    write_ckpt_pickle,
    write_vae,
)

U = "model.diffusion_model."

EXPECTED_TYPE = {
    "sd15": "v1",
    "sd15-inpaint": "inpainting",
    "sd2": "v2",  # diffusers cannot tell eps from v: that is what the sidecar is for
    "sd2-v": "v2",
    "sd2-inpaint": "inpainting_v2",
    "sdxl-base": "xl_base",
    "sdxl-refiner": "xl_refiner",
    "sdxl-inpaint": "xl_inpaint",
}


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Write each family at most once per module (the SD2 ones are ~290 MB)."""
    root = tmp_path_factory.mktemp("ckpt")
    cache: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in cache:
            cache[family] = write_checkpoint(root / f"{family}.safetensors", family)
        return cache[family]

    return get


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_expected_types_cover_all_families() -> None:
    assert set(EXPECTED_TYPE) == set(FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_diffusers_infers_family(written: Callable[[str], Path], family: str) -> None:
    state = load_file(written(family))
    assert sfu.infer_diffusers_model_type(state) == EXPECTED_TYPE[family]
    unet_in = state[f"{U}input_blocks.0.0.weight"].shape[1]
    assert unet_in == (9 if family.endswith("inpaint") else 4)


def test_sd15_layout(written: Callable[[str], Path]) -> None:
    state = load_file(written("sd15"))
    assert state[f"{U}input_blocks.1.1.proj_in.weight"].shape == (32, 32, 1, 1)  # conv proj_in
    assert state[f"{U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"].shape == (32, 64)
    assert state["cond_stage_model.transformer.text_model.encoder.layers.2.mlp.fc1.weight"].shape == (256, 64)
    assert state["cond_stage_model.transformer.text_model.embeddings.position_ids"].dtype == torch.int64
    assert state["first_stage_model.decoder.mid.attn_1.q.weight"].shape == (64, 64, 1, 1)
    # LatentDiffusion's schedule buffers match diffusers' scaled-linear schedule
    expected = DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).alphas_cumprod
    torch.testing.assert_close(state["alphas_cumprod"], expected)
    assert not any(k.startswith("conditioner.") for k in state)


def test_sd2_layout(written: Callable[[str], Path]) -> None:
    state = load_file(written("sd2"))
    m = "cond_stage_model.model."
    assert state[f"{U}input_blocks.1.1.proj_in.weight"].shape == (64, 64)  # linear proj_in
    blocks = {k.split(".")[4] for k in state if k.startswith(f"{m}transformer.resblocks.")}
    assert blocks == {"0", "1", "2"}  # all stored; diffusers runs all but the last
    assert state[f"{m}text_projection"].shape == (1024, 1024)
    assert state[f"{m}logit_scale"].ndim == 0
    assert state[f"{m}transformer.resblocks.0.attn.in_proj_weight"].shape == (3072, 1024)


def test_sdxl_base_layout(written: Callable[[str], Path]) -> None:
    state = load_file(written("sdxl-base"))
    assert state["conditioner.embedders.0.transformer.text_model.final_layer_norm.weight"].shape == (64,)
    assert state["conditioner.embedders.1.model.text_projection"].shape == (128, 128)
    assert state[f"{U}label_emb.0.0.weight"].shape == (256, 128 + 6 * 256)
    assert state[f"{U}input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"].shape == (128, 64 + 128)
    assert f"{U}input_blocks.3.1.transformer_blocks.1.norm1.weight" in state  # depth 2 on the last level
    assert not any(k.startswith(f"{U}input_blocks.1.1.") for k in state)  # level 0 has no attention
    assert "alphas_cumprod" not in state  # sgm checkpoints carry no DDPM buffers


def test_sdxl_refiner_layout(written: Callable[[str], Path]) -> None:
    state = load_file(written("sdxl-refiner"))
    assert not any(k.startswith(("conditioner.embedders.1.", "cond_stage_model.")) for k in state)
    assert state["conditioner.embedders.0.model.text_projection"].shape == (128, 128)
    assert state[f"{U}label_emb.0.0.weight"].shape == (256, 128 + 5 * 256)
    assert state[f"{U}input_blocks.3.1.transformer_blocks.0.attn2.to_k.weight"].shape == (128, 128)


def test_sidecar_only_for_v_by_default(written: Callable[[str], Path], tmp_path: Path) -> None:
    v_path = written("sd2-v")
    config = yaml.safe_load(v_path.with_suffix(".yaml").read_text())
    params = config["model"]["params"]
    assert params["parameterization"] == "v"
    assert params["unet_config"]["params"]["num_head_channels"] == 64
    assert params["unet_config"]["params"]["context_dim"] == 1024
    assert not written("sd2").with_suffix(".yaml").exists()
    eps_path = write_checkpoint(tmp_path / "eps.safetensors", "sd15", sidecar=True)
    assert yaml.safe_load(eps_path.with_suffix(".yaml").read_text())["model"]["params"]["parameterization"] == "eps"


def test_same_seed_same_bytes(written: Callable[[str], Path], tmp_path: Path) -> None:
    again = write_checkpoint(tmp_path / "again.safetensors", "sd15", seed=0)
    other = write_checkpoint(tmp_path / "other.safetensors", "sd15", seed=1)
    assert _sha256(again) == _sha256(written("sd15"))
    assert _sha256(other) != _sha256(again)


def test_fp16_and_metadata(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "half.safetensors", "sd15", dtype=torch.float16)
    state = load_file(path)
    floats = {v.dtype for v in state.values() if v.is_floating_point()}
    assert floats == {torch.float16}
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["sd_studio.synthetic"] == "random-weights"


def test_ckpt_pickle_loads_weights_only(written: Callable[[str], Path], tmp_path: Path) -> None:
    path = write_ckpt_pickle(tmp_path / "legacy.ckpt", "sd15")
    loaded = torch.load(path, weights_only=True, map_location="cpu")
    reference = load_file(written("sd15"))
    assert loaded["state_dict"].keys() == reference.keys()
    assert all(torch.equal(loaded["state_dict"][k], reference[k]) for k in reference)


def test_standalone_vae(tmp_path: Path) -> None:
    spec = family_spec("sd15")
    sd_vae = load_file(write_vae(tmp_path / "a.vae.safetensors", "sd"))
    xl_vae = load_file(write_vae(tmp_path / "b.vae.safetensors", "sdxl"))
    assert "encoder.conv_in.weight" in sd_vae and not any(k.startswith("first_stage_model.") for k in sd_vae)
    assert sd_vae.keys() == xl_vae.keys()
    assert not torch.equal(sd_vae["decoder.conv_out.weight"], xl_vae["decoder.conv_out.weight"])
    vae = AutoencoderKL(**spec.vae)
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(sd_vae, spec.vae), strict=True)


# --------------------------------------------------------------------------- loadability


def _load_unet(state: dict[str, torch.Tensor], config: dict) -> UNet2DConditionModel:
    unet = UNet2DConditionModel(**config)
    unet.load_state_dict(sfu.convert_ldm_unet_checkpoint(state, config), strict=True)
    return unet.eval()


def _load_vae(state: dict[str, torch.Tensor], config: dict) -> AutoencoderKL:
    vae = AutoencoderKL(**config)
    vae.load_state_dict(sfu.convert_ldm_vae_checkpoint(state, config), strict=True)
    return vae.eval()


def _load_clip(state: dict[str, torch.Tensor], config: dict, prefix: str) -> CLIPTextModel:
    converted = sfu.convert_ldm_clip_checkpoint({k: v for k, v in state.items() if k.startswith(prefix)})
    converted = {k.removeprefix("text_model."): v for k, v in converted.items()}
    position_ids = converted.pop("embeddings.position_ids")  # real files carry it; transformers 5 does not
    assert torch.equal(position_ids, torch.arange(77).unsqueeze(0))
    model = CLIPTextModel(CLIPTextConfig(**config))
    model.load_state_dict(converted, strict=True)
    return model.eval()


def _load_open_clip(state: dict[str, torch.Tensor], config: dict, prefix: str) -> CLIPTextModelWithProjection:
    model = CLIPTextModelWithProjection(CLIPTextConfig(**config))
    model.load_state_dict(sfu.convert_open_clip_checkpoint(model, state, prefix=prefix), strict=True)
    return model.eval()


@torch.no_grad()
def test_sd15_components_load_and_run(written: Callable[[str], Path]) -> None:
    spec = family_spec("sd15")
    state = load_file(written("sd15"))
    text = _load_clip(state, spec.text_encoders[0].config, "cond_stage_model.")
    tokens = torch.randint(0, 49408, (1, 77))
    context = text(tokens).last_hidden_state
    unet = _load_unet(state, spec.unet)
    out = unet(torch.randn(1, 4, 8, 8), 10, encoder_hidden_states=context).sample
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()
    image = _load_vae(state, spec.vae).decode(out).sample
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()


@torch.no_grad()
def test_sdxl_base_components_load_and_run(written: Callable[[str], Path]) -> None:
    spec = family_spec("sdxl-base")
    state = load_file(written("sdxl-base"))
    clip_spec, bigg_spec = spec.text_encoders
    clip_l = _load_clip(state, clip_spec.config, "conditioner.embedders.0.")
    bigg = _load_open_clip(state, bigg_spec.config, "conditioner.embedders.1.model.")
    tokens = torch.randint(0, 49408, (1, 77))
    hidden_l = clip_l(tokens, output_hidden_states=True).hidden_states[-2]
    out_g = bigg(tokens, output_hidden_states=True)
    context = torch.cat([hidden_l, out_g.hidden_states[-2]], dim=-1)
    added = {"text_embeds": out_g.text_embeds, "time_ids": torch.tensor([[64.0, 64.0, 0.0, 0.0, 64.0, 64.0]])}
    unet = _load_unet(state, spec.unet)
    out = unet(torch.randn(1, 4, 8, 8), 10, encoder_hidden_states=context, added_cond_kwargs=added).sample
    assert out.shape == (1, 4, 8, 8) and torch.isfinite(out).all()


def test_sdxl_sidecar_refused_before_writing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SD1/SD2"):
        write_checkpoint(tmp_path / "xl.safetensors", "sdxl-base", sidecar=True)
    assert not (tmp_path / "xl.safetensors").exists()


def test_unknown_family_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        write_checkpoint(tmp_path / "x.safetensors", "sd3")
