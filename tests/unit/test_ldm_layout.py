"""diffusers -> original layout converters: diffusers' own inverse must give the input back exactly."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils as sfu
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from webui.models.ldm_layout import (
    clip_to_ldm,
    open_clip_to_ldm,
    unet_to_ldm,
    vae_to_ldm,
)

UNET_CASES: dict[str, dict[str, Any]] = {
    # SD1-like: conv proj_in, last level without attention, upsampler at output_blocks.N.1.conv
    "sd1-like": dict(
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=48,
        attention_head_dim=8,
    ),
    # SDXL-like: no attention on level 0, per-level depth, linear proj, text_time embedding
    "sdxl-like": dict(
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        transformer_layers_per_block=(1, 2, 3),
        attention_head_dim=(1, 2, 2),
        use_linear_projection=True,
        cross_attention_dim=96,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=32 + 6 * 8,
    ),
    # Attention everywhere, uniform depth 2, three resnets per up level
    "all-attention": dict(
        block_out_channels=(32, 32, 64),
        layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",) * 3,
        up_block_types=("CrossAttnUpBlock2D",) * 3,
        transformer_layers_per_block=2,
        attention_head_dim=4,
        cross_attention_dim=32,
    ),
}


def _assert_same(back: dict[str, torch.Tensor], original: dict[str, torch.Tensor]) -> None:
    assert back.keys() == original.keys(), (sorted(original.keys() - back.keys()), sorted(back.keys() - original.keys()))
    for key, tensor in original.items():
        assert back[key].shape == tensor.shape, key
        assert torch.equal(back[key], tensor), key


@pytest.mark.parametrize("case", sorted(UNET_CASES))
def test_unet_round_trip(case: str) -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(norm_num_groups=32, **UNET_CASES[case])
    original = unet.state_dict()
    ldm = unet_to_ldm(original, unet.config)
    assert all(k.startswith("model.diffusion_model.") for k in ldm)
    assert len(ldm) == len(original)
    _assert_same(sfu.convert_ldm_unet_checkpoint(ldm, dict(unet.config)), original)


def test_unet_layout_details() -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(norm_num_groups=32, **UNET_CASES["sdxl-like"])
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    p = "model.diffusion_model."
    # level 0: two resnets, then the downsampler in its own input block
    assert f"{p}input_blocks.3.0.op.weight" in ldm
    assert f"{p}input_blocks.1.0.in_layers.0.weight" in ldm and f"{p}input_blocks.1.1.norm.weight" not in ldm
    # level 1 has depth 2, level 2 depth 3; the middle block follows the last level
    assert f"{p}input_blocks.4.1.transformer_blocks.1.ff.net.0.proj.weight" in ldm
    assert f"{p}middle_block.1.transformer_blocks.2.attn2.to_k.weight" in ldm
    assert f"{p}label_emb.0.0.weight" in ldm and f"{p}time_embed.2.bias" in ldm
    # up level 0 has attention, so its upsampler sits in slot 2; the last level has none
    assert f"{p}output_blocks.2.2.conv.weight" in ldm
    assert not any(k.startswith(f"{p}output_blocks.8.2.") for k in ldm)
    assert f"{p}out.2.weight" in ldm and f"{p}out.0.bias" in ldm


def test_unet_upsampler_without_attention_uses_slot_1() -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(norm_num_groups=32, **UNET_CASES["sd1-like"])
    ldm = unet_to_ldm(unet.state_dict(), unet.config)
    assert "model.diffusion_model.output_blocks.1.1.conv.weight" in ldm
    assert ldm["model.diffusion_model.input_blocks.1.1.proj_in.weight"].ndim == 4  # conv proj_in kept as-is


def test_unet_unknown_key_fails_loudly() -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(norm_num_groups=32, **UNET_CASES["sd1-like"])
    state = dict(unet.state_dict())
    state["some_new_module.weight"] = torch.zeros(1)
    with pytest.raises(KeyError, match="some_new_module"):
        unet_to_ldm(state, unet.config)


@pytest.mark.parametrize(
    ("channels", "layers"),
    [((32, 32, 64, 64), 1), ((32, 64), 2)],
)
def test_vae_round_trip(channels: tuple[int, ...], layers: int) -> None:
    torch.manual_seed(0)
    n = len(channels)
    vae = AutoencoderKL(
        block_out_channels=channels,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        layers_per_block=layers,
        norm_num_groups=32,
    )
    original = vae.state_dict()
    ldm = vae_to_ldm(original)
    assert not any(k.startswith("first_stage_model.") for k in ldm)
    # diffusers' converter works with or without the full-checkpoint prefix
    _assert_same(sfu.convert_ldm_vae_checkpoint(ldm, dict(vae.config)), original)
    prefixed = {f"first_stage_model.{k}": v for k, v in ldm.items()}
    _assert_same(sfu.convert_ldm_vae_checkpoint(prefixed, dict(vae.config)), original)


def test_vae_layout_details() -> None:
    torch.manual_seed(0)
    vae = AutoencoderKL(
        block_out_channels=(32, 32, 64, 64),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=32,
    )
    ldm = vae_to_ldm(vae.state_dict())
    for part in ("encoder", "decoder"):
        for name in ("q", "k", "v", "proj_out"):
            assert ldm[f"{part}.mid.attn_1.{name}.weight"].shape == (64, 64, 1, 1)
        assert f"{part}.mid.block_2.conv2.weight" in ldm and f"{part}.norm_out.weight" in ldm
    # decoder levels are numbered from the full-resolution end: up.0 is the 32-channel one
    assert ldm["decoder.up.0.block.0.conv1.weight"].shape[0] == 32
    assert ldm["decoder.up.3.block.0.conv1.weight"].shape[0] == 64
    assert "decoder.up.0.upsample.conv.weight" not in ldm and "decoder.up.1.upsample.conv.weight" in ldm
    assert "encoder.down.2.block.0.nin_shortcut.weight" in ldm  # 32 -> 64 channels
    assert "encoder.down.2.downsample.conv.weight" in ldm and "encoder.down.3.downsample.conv.weight" not in ldm
    assert ldm["quant_conv.weight"].shape == (8, 8, 1, 1) and "post_quant_conv.bias" in ldm


def _clip_config(**extra: Any) -> CLIPTextConfig:
    return CLIPTextConfig(
        hidden_size=64,
        num_attention_heads=2,
        num_hidden_layers=3,
        intermediate_size=256,
        vocab_size=1000,
        max_position_embeddings=77,
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        **extra,
    )


@pytest.mark.parametrize("prefix", ["cond_stage_model.", "conditioner.embedders.0."])
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "text_model"])
def test_clip_round_trip(prefix: str, nested: bool) -> None:
    torch.manual_seed(0)
    original = CLIPTextModel(_clip_config(hidden_act="quick_gelu")).state_dict()
    given = {f"text_model.{k}": v for k, v in original.items()} if nested else original
    ldm = clip_to_ldm(given, prefix)
    assert f"{prefix}transformer.text_model.embeddings.token_embedding.weight" in ldm
    assert f"{prefix}transformer.text_model.encoder.layers.2.mlp.fc2.bias" in ldm
    back = sfu.convert_ldm_clip_checkpoint(ldm)
    _assert_same({k.removeprefix("text_model."): v for k, v in back.items()}, original)


def test_clip_rejects_projection() -> None:
    state = CLIPTextModelWithProjection(_clip_config(projection_dim=32)).state_dict()
    with pytest.raises(KeyError, match="text_projection"):
        clip_to_ldm(state, "cond_stage_model.")


@pytest.mark.parametrize(
    ("prefix", "with_projection"),
    [
        ("cond_stage_model.", False),  # SD2 (diffusers' CLIPTextModel has no projection)
        ("conditioner.embedders.1.", True),  # SDXL base bigG
        ("conditioner.embedders.0.", True),  # SDXL refiner bigG
    ],
)
def test_open_clip_round_trip(prefix: str, with_projection: bool) -> None:
    torch.manual_seed(0)
    # projection_dim != width, so a missing transpose cannot go unnoticed
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    model = cls(_clip_config(hidden_act="gelu", projection_dim=48))
    original = model.state_dict()
    ldm = open_clip_to_ldm(original, prefix)
    m = f"{prefix}model."
    assert ldm[f"{m}transformer.resblocks.2.attn.in_proj_weight"].shape == (3 * 64, 64)
    assert ldm[f"{m}transformer.resblocks.2.attn.in_proj_bias"].shape == (3 * 64,)
    assert ldm[f"{m}positional_embedding"].shape == (77, 64)
    assert ldm[f"{m}logit_scale"].ndim == 0
    if with_projection:
        assert ldm[f"{m}text_projection"].shape == (64, 48)
    back = sfu.convert_open_clip_checkpoint(model, ldm, prefix=m)
    if not with_projection:  # flat transformers>=5 CLIPTextModel
        back = {k.removeprefix("text_model."): v for k, v in back.items()}
    _assert_same(back, original)


def test_open_clip_fuses_qkv_in_order() -> None:
    torch.manual_seed(0)
    state = CLIPTextModel(_clip_config(hidden_act="gelu")).state_dict()
    ldm = open_clip_to_ldm(state, "cond_stage_model.", logit_scale=None)
    fused = ldm["cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight"]
    for i, name in enumerate("qkv"):
        assert torch.equal(fused[i * 64 : (i + 1) * 64], state[f"encoder.layers.0.self_attn.{name}_proj.weight"])
    assert "cond_stage_model.model.logit_scale" not in ldm
