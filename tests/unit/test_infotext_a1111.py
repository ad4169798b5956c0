"""Infotexts as A1111 v1.10.1 writes them (hires, LoRA/TI hashes, quoted values, refiner, old
forms) parsed the way its ``parse_generation_parameters`` reads them, and what ↙ / Send to make
of them (webui/ui/paste_params.py)."""

from __future__ import annotations

import hashlib

import pytest

from webui.infotext import parse_infotext
from webui.models.catalog import Catalog
from webui.models.hashes import HashCache
from webui.ui.paste_fields import PasteTarget, overrides_from_pairs
from webui.ui.paste_params import fields_from_infotext

# The fields of the txt2img tab (webui/ui/__init__.py wires the same names).
TXT2IMG = frozenset({
    "prompt", "negative_prompt", "steps", "sampler_name", "scheduler", "cfg_scale", "seed", "width", "height",
    "batch_size", "subseed", "subseed_strength", "seed_resize_from_w", "seed_resize_from_h", "styles", "enable_hr",
    "hr_scale", "hr_resize_x", "hr_resize_y", "hr_upscaler", "hr_second_pass_steps", "denoising_strength",
    "hr_checkpoint_name", "hr_sampler_name", "hr_scheduler", "hr_prompt", "hr_negative_prompt", "use_refiner",
    "refiner_checkpoint", "refiner_switch_at", "override_settings",
})

# Written by hand in A1111's layout: prompt lines, "Negative prompt:", one parameter line whose
# values with "," ":" or a newline are JSON-quoted.
HIRES_SDXL = (
    "cinematic photo of a lighthouse, <lora:add_detail:0.6>, <lora:film grain:0.3>, (dusk:1.2)\n"
    "storm clouds, \"golden hour\"\n"
    "Negative prompt: EasyNegative, (worst quality, low quality:1.4)\n"
    "Steps: 28, Sampler: DPM++ 2M SDE, Schedule type: Exponential, CFG scale: 6.5, Seed: 3297431015, "
    "Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, VAE hash: 235745af8d, "
    "VAE: sdxl_vae.safetensors, Denoising strength: 0.35, Clip skip: 2, RNG: CPU, "
    'Hires prompt: "cinematic photo of a lighthouse, \\"sharp\\" details, 8k", '
    'Hires negative prompt: "blurry, jpeg artifacts", Hires upscale: 1.5, Hires steps: 12, '
    "Hires upscaler: 4x-UltraSharp, Hires sampler: Euler a, Hires schedule type: Karras, "
    'Hires checkpoint: "juggernautXL_v9 [c9e3e68f89]", '
    'Lora hashes: "add_detail: 7c6bad76eb54, film grain: d1131f7207d6", '
    'TI hashes: "EasyNegative: c74b4e810b03, EasyNegative: c74b4e810b03", '
    "Refiner: sd_xl_refiner_1.0 [7440042bbd], Refiner switch at: 0.8, Emphasis: No norm, Version: v1.10.1"
)

RESIZE_TO = (
    "a red fox in the snow\n"
    "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 12, Size: 512x512, Model hash: 6ce0161689, "
    "Model: v1-5-pruned-emaonly, Denoising strength: 0.5, Hires resize: 1024x768, Hires upscaler: Latent, "
    "Version: v1.10.1"
)


def test_a_hires_sdxl_infotext_reads_every_value() -> None:
    p = parse_infotext(HIRES_SDXL)
    assert p["Prompt"] == ("cinematic photo of a lighthouse, <lora:add_detail:0.6>, <lora:film grain:0.3>, (dusk:1.2)\n"
                           'storm clouds, "golden hour"')
    assert p["Negative prompt"] == "EasyNegative, (worst quality, low quality:1.4)"
    assert (p["Steps"], p["Sampler"], p["Schedule type"], p["CFG scale"]) == (28, "DPM++ 2M SDE", "Exponential", 6.5)
    assert (p["Seed"], p["Size-1"], p["Size-2"]) == (3297431015, 832, 1216)
    assert (p["Model hash"], p["Model"]) == ("31e35c80fc", "sd_xl_base_1.0")
    assert (p["VAE hash"], p["VAE"]) == ("235745af8d", "sdxl_vae.safetensors")
    assert (p["Clip skip"], p["RNG"], p["Emphasis"], p["Version"]) == (2, "CPU", "No norm", "v1.10.1")
    # Quoted values keep their commas, colons and escaped quotes.
    assert p["Hires prompt"] == 'cinematic photo of a lighthouse, "sharp" details, 8k'
    assert p["Hires negative prompt"] == "blurry, jpeg artifacts"
    assert p["Hires checkpoint"] == "juggernautXL_v9 [c9e3e68f89]"
    assert p["Lora hashes"] == "add_detail: 7c6bad76eb54, film grain: d1131f7207d6"
    assert p["TI hashes"] == "EasyNegative: c74b4e810b03, EasyNegative: c74b4e810b03"
    assert (p["Hires upscale"], p["Hires steps"], p["Hires upscaler"]) == (1.5, 12, "4x-UltraSharp")
    assert (p["Hires sampler"], p["Hires schedule type"], p["Denoising strength"]) == ("Euler a", "Karras", 0.35)
    assert (p["Refiner"], p["Refiner switch at"]) == ("sd_xl_refiner_1.0 [7440042bbd]", 0.8)
    # A hash that looks like a number stays text.
    assert parse_infotext(HIRES_SDXL.replace("31e35c80fc", "1234567890"))["Model hash"] == "1234567890"


def test_hires_resize_and_missing_keys_get_a1111s_defaults() -> None:
    p = parse_infotext(RESIZE_TO)
    assert (p["Hires resize-1"], p["Hires resize-2"]) == (1024, 768)
    assert "Hires upscale" not in p
    assert p["Clip skip"] == 1  # missing Clip skip means 1
    assert (p["Hires sampler"], p["Hires checkpoint"], p["RNG"]) == ("Use same sampler", "Use same checkpoint", "GPU")


@pytest.mark.parametrize(("written", "sampler", "schedule"), [
    ("DPM++ 2M Karras", "DPM++ 2M", "Karras"),
    ("DPM++ SDE Karras", "DPM++ SDE", "Karras"),
    ("Euler a", "Euler a", "Automatic"),
    ("DPM++ 2M SDE Exponential", "DPM++ 2M SDE", "Exponential"),
])
def test_old_combined_sampler_names_fold_out_the_schedule(written: str, sampler: str, schedule: str) -> None:
    text = f"a cat\nSteps: 20, Sampler: {written}, CFG scale: 7, Seed: 1, Size: 512x512"
    p = parse_infotext(text)
    assert (p["Sampler"], p["Schedule type"]) == (sampler, schedule)
    hires = parse_infotext(text + f", Hires sampler: {written}, Hires upscale: 2")
    assert hires["Hires sampler"] == sampler and hires.get("Hires schedule type", "Automatic") == schedule


def test_old_first_pass_size_becomes_the_size_and_the_hires_target() -> None:
    # Before v1.0 A1111 wrote the final size as Size and the first pass as "First pass size".
    p = parse_infotext("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 1024x1024, "
                       "First pass size: 512x512, Denoising strength: 0.6")
    assert (p["Size-1"], p["Size-2"], p["Hires resize-1"], p["Hires resize-2"]) == (512, 512, 1024, 1024)


def test_an_old_hypernet_key_goes_back_into_the_prompt() -> None:
    p = parse_infotext("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Hypernet: anime, "
                       "Hypernet strength: 0.5")
    assert p["Prompt"] == "a cat<hypernet:anime:0.5>"


def test_paste_fills_hires_refiner_and_the_pasted_settings() -> None:
    values, problems = fields_from_infotext(HIRES_SDXL, target=PasteTarget(TXT2IMG))
    assert values["enable_hr"] is True and values["hr_scale"] == 1.5 and values["hr_second_pass_steps"] == 12
    assert (values["hr_resize_x"], values["hr_resize_y"]) == (0, 0)
    assert values["hr_sampler_name"] == "Euler a" and values["hr_scheduler"] == "Karras"
    assert values["hr_prompt"] == 'cinematic photo of a lighthouse, "sharp" details, 8k'
    assert values["hr_negative_prompt"] == "blurry, jpeg artifacts"
    assert values["denoising_strength"] == 0.35
    assert values["use_refiner"] is True and values["refiner_switch_at"] == 0.8
    assert (values["sampler_name"], values["scheduler"]) == ("DPM++ 2M SDE", "Exponential")
    assert (values["width"], values["height"], values["seed"]) == (832, 1216, 3297431015)
    # Nothing installed here: the upscaler, checkpoints and VAE the text names are left out, and named.
    assert not {"hr_upscaler", "hr_checkpoint_name", "refiner_checkpoint"} & set(values)
    for missing in ("4x-UltraSharp", "juggernautXL_v9", "sd_xl_refiner_1.0", "sdxl_vae.safetensors"):
        assert any(missing in p for p in problems), (missing, problems)
    # Clip skip differs from the setting (1): it becomes an override; the checkpoint is disregarded.
    assert values["override_settings"] == ["Clip skip: 2"]
    # Without a tab, only what the text names is read (no defaults, no lookups).
    assert "enable_hr" not in fields_from_infotext(RESIZE_TO)[0]


def test_paste_turns_hires_and_variation_off_when_the_text_has_none() -> None:
    target = PasteTarget(TXT2IMG)
    values, _ = fields_from_infotext("a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64", target=target)
    assert values["enable_hr"] is False and values["use_refiner"] is False
    assert values["subseed_strength"] == 0 and (values["seed_resize_from_w"], values["seed_resize_from_h"]) == (0, 0)
    assert values["override_settings"] == [] and "mask_blur" not in values  # not a txt2img field
    resize = fields_from_infotext(RESIZE_TO, target=target)[0]
    assert resize["enable_hr"] is True and (resize["hr_resize_x"], resize["hr_resize_y"]) == (1024, 768)
    assert resize["hr_upscaler"] == "Latent"


def test_the_checkpoint_is_found_by_its_model_hash_only_when_the_setting_allows(tmp_path) -> None:
    folder = tmp_path / "Stable-diffusion"
    folder.mkdir()
    (folder / "dreamy.safetensors").write_bytes(b"not really weights")
    short_hash = hashlib.sha256(b"not really weights").hexdigest()[:10]
    catalog = Catalog(folder, tmp_path / "VAE", HashCache(tmp_path / "hashes.json"))
    catalog.hashes.sha256(folder / "dreamy.safetensors")

    def checkpoint(name: str) -> str | None:
        found = catalog.find_checkpoint(name)
        return found.title if found else None

    def target(auto_swap: bool) -> PasteTarget:
        settings = {"disable_weights_auto_swap": not auto_swap, "CLIP_stop_at_last_layers": 2}
        return PasteTarget(TXT2IMG, checkpoint=checkpoint, option=lambda key, default: settings.get(key, default))

    # A1111 names the model by a hash and a name that need not match the file's: the hash wins.
    text = f"a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Model hash: {short_hash}, Model: renamed"
    assert fields_from_infotext(text, target=target(False))[0]["override_settings"] == ["Clip skip: 1"]
    pairs = fields_from_infotext(text, target=target(True))[0]["override_settings"]
    assert pairs == ["Clip skip: 1", f"Model hash: {short_hash}"]
    assert overrides_from_pairs(pairs, target(True)) == {
        "CLIP_stop_at_last_layers": 1, "sd_model_checkpoint": f"dreamy.safetensors [{short_hash}]"}
    # No hash known here: the name finds it; neither: the paste says so.
    by_name = text.replace(short_hash, "0000000000").replace("renamed", "dreamy")
    assert fields_from_infotext(by_name, target=target(True))[0]["override_settings"][-1] == "Model: dreamy"
    values, problems = fields_from_infotext(by_name.replace("dreamy", "elsewhere"), target=target(True))
    assert values["override_settings"] == ["Clip skip: 1"] and any("elsewhere" in p for p in problems)
    # The hires checkpoint and the refiner are fields, found by the title A1111 writes.
    values, _ = fields_from_infotext(text + f", Hires upscale: 2, Hires checkpoint: dreamy [{short_hash}], "
                                     f"Refiner: dreamy [{short_hash}], Refiner switch at: 0.6", target=target(False))
    assert values["hr_checkpoint_name"] == values["refiner_checkpoint"] == f"dreamy.safetensors [{short_hash}]"
    # A checkpoint deleted between the paste and Generate is named, not silently dropped.
    (folder / "dreamy.safetensors").unlink()
    catalog.refresh()
    with pytest.raises(ValueError, match=short_hash):
        overrides_from_pairs(pairs, target(True))
