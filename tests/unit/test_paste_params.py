"""↙: an infotext → the values of a tab's fields, as A1111's paste button reads them."""

from __future__ import annotations

from webui import infotext
from webui.ui.paste_params import fields_from_infotext


def test_an_inpaint_infotext_fills_every_field_it_names():
    text = infotext.build_infotext("a stone wall", "blurry", {
        "Steps": 24, "Sampler": "DPM++ 2M", "Schedule type": "Karras", "CFG scale": 6.5, "Seed": 1234,
        "Size": "512x768", "Denoising strength": 0.6, "Mask blur": 8, "Masked content": "latent noise",
        "Inpaint area": "Only masked", "Masked area padding": 48, "Mask mode": "Inpaint not masked",
        "Variation seed": 99, "Variation seed strength": 0.25,
    })
    values, problems = fields_from_infotext(text)
    assert problems == []
    assert values == {
        "prompt": "a stone wall", "negative_prompt": "blurry", "steps": 24, "sampler_name": "DPM++ 2M",
        "scheduler": "Karras", "cfg_scale": 6.5, "seed": 1234, "width": 512, "height": 768,
        "denoising_strength": 0.6, "mask_blur": 8, "masked_content": "latent noise", "inpaint_area": "Only masked",
        "padding": 48, "mask_mode": "Inpaint not masked", "subseed": 99, "subseed_strength": 0.25,
    }


def test_a_combined_sampler_name_brings_its_schedule_and_unknown_values_are_reported():
    text = "a cat\nSteps: 20, Sampler: Euler a Karras, CFG scale: 7, Seed: 5, Size: 64x64, Masked content: mud"
    values, problems = fields_from_infotext(text)
    assert (values["sampler_name"], values["scheduler"]) == ("Euler a", "Karras")
    assert "masked_content" not in values and any("Masked content" in p for p in problems)


def test_plain_text_without_a_parameter_line_fills_nothing():
    assert fields_from_infotext("just a prompt, nothing else") == ({}, [])


def test_an_extension_may_change_what_paste_parsed():
    seen = []

    def on_parsed(text, params):  # what an on_infotext_pasted callback gets
        seen.append(text)
        params["Steps"] = "33"

    text = "a cat\nSteps: 20, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 512x512"
    values, _ = fields_from_infotext(text, on_parsed)
    assert values["steps"] == 33 and seen == [text]
