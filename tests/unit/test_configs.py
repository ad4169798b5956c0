"""The shipped family configs under configs/ (diffusers layout) and configs/original/ (LDM/SGM YAML).

Everything loads from disk with the hub offline; nothing here may need the network.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import inspect
import json
from pathlib import Path

import diffusers
import pytest
import transformers
import yaml
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

FAMILIES = ["sd15", "sd15-inpaint", "sd2", "sd2-v", "sd2-inpaint", "sdxl-base", "sdxl-refiner", "sdxl-inpaint"]

# family -> (pipeline class, unet in_channels, cross_attention_dim, prediction_type, sample_size, text encoders)
EXPECTED = {
    "sd15": ("StableDiffusionPipeline", 4, 768, "epsilon", 64, ["text_encoder"]),
    "sd15-inpaint": ("StableDiffusionInpaintPipeline", 9, 768, "epsilon", 64, ["text_encoder"]),
    "sd2": ("StableDiffusionPipeline", 4, 1024, "epsilon", 64, ["text_encoder"]),
    "sd2-v": ("StableDiffusionPipeline", 4, 1024, "v_prediction", 96, ["text_encoder"]),
    "sd2-inpaint": ("StableDiffusionInpaintPipeline", 9, 1024, "epsilon", 64, ["text_encoder"]),
    "sdxl-base": ("StableDiffusionXLPipeline", 4, 2048, "epsilon", 128, ["text_encoder", "text_encoder_2"]),
    "sdxl-refiner": ("StableDiffusionXLImg2ImgPipeline", 4, 1280, "epsilon", 128, ["text_encoder_2"]),
    "sdxl-inpaint": ("StableDiffusionXLInpaintPipeline", 9, 2048, "epsilon", 128, ["text_encoder", "text_encoder_2"]),
}

# Parameter totals of the full-size models these configs describe (checked on the meta device, so
# nothing is allocated). They pin every structural field at once.
UNET_PARAMS = {
    "sd15": 859_520_964,
    "sd2": 865_910_724,
    "sdxl-base": 2_567_463_684,
    "sdxl-refiner": 2_259_526_660,
}
INPAINT_EXTRA = 5 * 320 * 3 * 3  # five more conv_in input channels
VAE_PARAMS = 83_653_863
TEXT_PARAMS = {(768, 12): 123_060_480, (1024, 23): 340_387_840, (1280, 32): 694_659_840}


def _dir(family: str) -> str:
    return str(CONFIGS / family)


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("family", FAMILIES)
def test_model_index(family):
    pipe_name, *_ , encoders = EXPECTED[family]
    index = _json(CONFIGS / family / "model_index.json")
    assert index["_class_name"] == pipe_name
    pipe_cls = getattr(diffusers, pipe_name)
    init_params = set(inspect.signature(pipe_cls.__init__).parameters) - {"self"}
    components = {k for k in index if not k.startswith("_")}
    assert components <= init_params, components - init_params
    if family.startswith("sdxl"):
        assert "safety_checker" not in index
        assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
        assert index["tokenizer_2"] == ["transformers", "CLIPTokenizer"]
        refiner = family == "sdxl-refiner"
        assert index["force_zeros_for_empty_prompt"] is (not refiner)
        if refiner:
            assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
            assert index["requires_aesthetics_score"] is True
        else:
            assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    else:
        assert index["safety_checker"] == [None, None]
        assert index["feature_extractor"] == [None, None]
        assert index["requires_safety_checker"] is False
    # every component with a class in the index, except tokenizers, has its own config folder
    for name, value in index.items():
        if name.startswith("_") or not isinstance(value, list) or value == [None, None]:
            continue
        if name.startswith("tokenizer"):
            assert not (CONFIGS / family / name).exists(), "tokenizers live in configs/tokenizers/"
        else:
            assert (CONFIGS / family / name).is_dir(), name
    assert sorted(p.name for p in (CONFIGS / family).iterdir() if p.name.startswith("text_encoder")) == encoders


@pytest.mark.parametrize("family", FAMILIES)
def test_scheduler(family):
    _, _, _, prediction, *_ = EXPECTED[family]
    raw = _json(CONFIGS / family / "scheduler" / "scheduler_config.json")
    cls = getattr(diffusers, raw["_class_name"])
    sched = cls.from_pretrained(_dir(family), subfolder="scheduler", local_files_only=True)
    cfg = sched.config
    assert cfg.prediction_type == prediction
    assert (cfg.beta_start, cfg.beta_end, cfg.beta_schedule) == (0.00085, 0.012, "scaled_linear")
    assert cfg.num_train_timesteps == 1000
    assert cfg.steps_offset == 1
    assert cfg.timestep_spacing == "leading"
    assert raw["clip_sample"] is False and raw["set_alpha_to_one"] is False and raw["skip_prk_steps"] is True
    expected_cls = {
        "sd15": "PNDMScheduler", "sd15-inpaint": "DDIMScheduler",
        "sd2": "PNDMScheduler", "sd2-v": "DDIMScheduler", "sd2-inpaint": "PNDMScheduler",
    }.get(family, "EulerDiscreteScheduler")
    assert raw["_class_name"] == expected_cls


@pytest.mark.parametrize("family", FAMILIES)
def test_unet(family):
    _, in_ch, cross, _, sample, _ = EXPECTED[family]
    cfg = UNet2DConditionModel.load_config(_dir(family), subfolder="unet", local_files_only=True)
    assert cfg["_class_name"] == "UNet2DConditionModel"
    assert cfg["in_channels"] == in_ch and cfg["out_channels"] == 4
    assert cfg["cross_attention_dim"] == cross
    assert cfg["sample_size"] == sample
    assert cfg["layers_per_block"] == 2
    levels = len(cfg["block_out_channels"])
    assert len(cfg["down_block_types"]) == len(cfg["up_block_types"]) == levels
    if family.startswith("sd15"):
        assert cfg["attention_head_dim"] == 8
        assert not cfg.get("use_linear_projection", False)
        assert cfg["block_out_channels"] == [320, 640, 1280, 1280]
    elif family.startswith("sd2"):
        assert cfg["attention_head_dim"] == [5, 10, 20, 20]
        assert cfg["use_linear_projection"] is True
        assert cfg.get("upcast_attention", False) is (family == "sd2-v")
    else:
        assert cfg["use_linear_projection"] is True
        assert cfg["addition_embed_type"] == "text_time"
        assert cfg["addition_time_embed_dim"] == 256
        if family == "sdxl-refiner":
            assert cfg["block_out_channels"] == [384, 768, 1536, 1536]
            assert cfg["attention_head_dim"] == [6, 12, 24, 24]
            assert cfg["transformer_layers_per_block"] == 4
            assert cfg["projection_class_embeddings_input_dim"] == 2560
        else:
            assert cfg["block_out_channels"] == [320, 640, 1280]
            assert cfg["attention_head_dim"] == [5, 10, 20]
            assert cfg["transformer_layers_per_block"] == [1, 2, 10]
            assert cfg["projection_class_embeddings_input_dim"] == 2816
    # attention heads always divide the block widths (64 channels per head outside SD1)
    heads = cfg["attention_head_dim"]
    heads = heads if isinstance(heads, list) else [heads] * levels
    for width, n in zip(cfg["block_out_channels"], heads):
        assert width % n == 0


@pytest.mark.parametrize("family", FAMILIES)
def test_vae(family):
    cfg = AutoencoderKL.load_config(_dir(family), subfolder="vae", local_files_only=True)
    xl = family.startswith("sdxl")
    assert cfg["block_out_channels"] == [128, 256, 512, 512]
    assert cfg["down_block_types"] == ["DownEncoderBlock2D"] * 4
    assert cfg["up_block_types"] == ["UpDecoderBlock2D"] * 4
    assert cfg["latent_channels"] == 4 and cfg["layers_per_block"] == 2
    assert cfg["scaling_factor"] == (0.13025 if xl else 0.18215)
    assert cfg.get("force_upcast", False) is xl
    assert cfg["sample_size"] == EXPECTED[family][4] * 8


@pytest.mark.parametrize("family", FAMILIES)
def test_text_encoders(family):
    for sub in EXPECTED[family][5]:
        cfg = CLIPTextConfig.from_pretrained(_dir(family), subfolder=sub, local_files_only=True)
        assert cfg.vocab_size == 49408 and cfg.max_position_embeddings == 77
        assert (cfg.bos_token_id, cfg.eos_token_id, cfg.pad_token_id) == (0, 2, 1)
        width = cfg.hidden_size
        if sub == "text_encoder_2":  # OpenCLIP ViT-bigG/14
            assert cfg.architectures == ["CLIPTextModelWithProjection"]
            assert (width, cfg.num_hidden_layers, cfg.num_attention_heads) == (1280, 32, 20)
            assert (cfg.intermediate_size, cfg.hidden_act, cfg.projection_dim) == (5120, "gelu", 1280)
        elif family.startswith("sd2"):  # OpenCLIP ViT-H/14, last layer dropped
            assert cfg.architectures == ["CLIPTextModel"]
            assert (width, cfg.num_hidden_layers, cfg.num_attention_heads) == (1024, 23, 16)
            assert (cfg.intermediate_size, cfg.hidden_act, cfg.projection_dim) == (4096, "gelu", 512)
        else:  # OpenAI CLIP ViT-L/14
            assert cfg.architectures == ["CLIPTextModel"]
            assert (width, cfg.num_hidden_layers, cfg.num_attention_heads) == (768, 12, 12)
            assert (cfg.intermediate_size, cfg.hidden_act, cfg.projection_dim) == (3072, "quick_gelu", 768)


@pytest.mark.parametrize("family", FAMILIES)
def test_full_size_parameter_counts(family):
    accelerate = pytest.importorskip("accelerate")
    base = family.replace("-inpaint", "").replace("-v", "")
    base = {"sdxl": "sdxl-base"}.get(base, base)
    with accelerate.init_empty_weights():
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(_dir(family), subfolder="unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(_dir(family), subfolder="vae"))
        encoders = []
        for sub in EXPECTED[family][5]:
            cfg = CLIPTextConfig.from_pretrained(_dir(family), subfolder=sub, local_files_only=True)
            encoders.append((cfg, getattr(transformers, cfg.architectures[0])(cfg)))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    extra = INPAINT_EXTRA if family.endswith("inpaint") else 0
    assert count(unet) == UNET_PARAMS[base] + extra
    assert count(vae) == VAE_PARAMS
    for cfg, model in encoders:
        assert count(model) == TEXT_PARAMS[(cfg.hidden_size, cfg.num_hidden_layers)]


# ---------------------------------------------------------------- original-format YAMLs

ORIGINAL = {
    # file: (parameterization, in_channels, model_channels, channel_mult, heads key/value, depth, context, adm)
    "v1-inference.yaml": (None, 4, 320, [1, 2, 4, 4], ("num_heads", 8), 1, 768, None),
    "v1-inpainting-inference.yaml": (None, 9, 320, [1, 2, 4, 4], ("num_heads", 8), 1, 768, None),
    "v2-inference.yaml": (None, 4, 320, [1, 2, 4, 4], ("num_head_channels", 64), 1, 1024, None),
    "v2-inference-v.yaml": ("v", 4, 320, [1, 2, 4, 4], ("num_head_channels", 64), 1, 1024, None),
    "v2-inpainting-inference.yaml": (None, 9, 320, [1, 2, 4, 4], ("num_head_channels", 64), 1, 1024, None),
    "sd_xl_base.yaml": (None, 4, 320, [1, 2, 4], ("num_head_channels", 64), [1, 2, 10], 2048, 2816),
    "sd_xl_refiner.yaml": (None, 4, 384, [1, 2, 4, 4], ("num_head_channels", 64), 4, [1280] * 4, 2560),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL))
def test_original_yaml(name):
    param, in_ch, ch, mult, (heads_key, heads), depth, context, adm = ORIGINAL[name]
    doc = yaml.safe_load((CONFIGS / "original" / name).read_text(encoding="utf-8"))
    params = doc["model"]["params"]
    unet = (params.get("unet_config") or params["network_config"])["params"]
    assert params.get("parameterization") == param
    assert unet["in_channels"] == in_ch and unet["out_channels"] == 4
    assert unet["model_channels"] == ch
    assert unet["channel_mult"] == mult
    assert unet["num_res_blocks"] == 2
    assert unet[heads_key] == heads
    assert unet["transformer_depth"] == depth
    assert unet["context_dim"] == context
    assert unet.get("adm_in_channels") == adm
    assert unet.get("use_linear_in_transformer", False) is (not name.startswith("v1"))
    assert params["scale_factor"] == (0.13025 if name.startswith("sd_xl") else 0.18215)
    if name.startswith("v1") or name.startswith("v2"):
        assert unet["attention_resolutions"] == [4, 2, 1]
        assert params["conditioning_key"] == ("hybrid" if "inpainting" in name else "crossattn")
    else:
        assert unet["attention_resolutions"] == [4, 2]
