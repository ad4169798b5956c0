"""``p``: a request's fields under A1111's names, back to the same request, and copies scripts make."""

from __future__ import annotations

import copy

import pytest
from PIL import Image

from webui.plugins.problems import Problems
from webui.plugins.processing import Processing
from webui.plugins.script_set import ScriptSet
from webui.request import GenerationRequest
from webui.request_img2img import Img2ImgInput, InpaintSettings


def inpaint_request() -> GenerationRequest:
    mask = Image.new("L", (64, 64), 0)
    return GenerationRequest(
        prompt="a boat", negative_prompt="fog", seed=4, steps=9, cfg_scale=5.5, width=64, height=64, batch_size=2,
        denoising_strength=0.4, save_images=False,
        img2img=Img2ImgInput(init_images=[Image.new("RGB", (64, 64), "red")], resize_mode=1,
                             inpaint=InpaintSettings(mask=mask, blur_x=3, blur_y=5, masked_content="latent noise",
                                                     only_masked=True, padding=12, invert=True)))


def test_a_request_round_trips_through_p_with_a1111_names():
    request = inpaint_request()
    p = Processing.from_request(request)
    assert (p.steps, p.cfg_scale, p.denoising_strength, p.inpainting_fill, p.inpaint_full_res) == (9, 5.5, 0.4, 2, True)
    assert (p.mask_blur_x, p.mask_blur_y, p.inpaint_full_res_padding, p.inpainting_mask_invert) == (3, 5, 12, 1)
    assert p.do_not_save_samples and p.is_img2img and p.image_mask is request.img2img.inpaint.mask
    again = p.to_request()
    assert again.model_dump(exclude={"img2img"}) == request.model_dump(exclude={"img2img"})
    assert again.img2img.inpaint.model_dump(exclude={"mask"}) == request.img2img.inpaint.model_dump(exclude={"mask"})
    p.steps = 0
    with pytest.raises(ValueError, match="steps"):
        p.to_request()  # a bad value a script set is caught when the engine's request is made


def test_copies_share_the_jobs_scripts_and_a_missing_name_says_so():
    p = Processing.from_request(inpaint_request())
    p.scripts = ScriptSet([], False, Problems())
    p.all_prompts = ["a", "b"]
    deep = copy.deepcopy(p)  # A1111 scripts copy p to run variations of it
    assert deep.scripts is p.scripts and deep.all_prompts == ["a", "b"] and deep.all_prompts is not p.all_prompts
    assert deep.init_images[0] is not p.init_images[0]
    assert copy.copy(p).scripts is p.scripts
    with pytest.raises(AttributeError, match="p.sampler is not provided"):
        _ = p.sampler  # A1111's k-diffusion sampler object: not here
    assert getattr(p, "_ad_disabled", False) is False
