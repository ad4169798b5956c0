"""img2img, inpaint and outpaint on tiny real-layout checkpoints (regular and inpainting UNets).

Each test checks what an artist would see: how much the picture changed, that pixels outside
the mask are the original's, that an only-masked result lands where the mask was, that a
canvas grew on the right side and kept the original.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tests.conftest import build_studio
from webui import infotext
from webui.engine.init_image import blur
from webui.request import GenerationRequest
from webui.request_img2img import Img2ImgInput, InpaintSettings, OutpaintSettings

pytestmark = pytest.mark.timeout(300)

SMALL = dict(prompt="a lighthouse", seed=11, steps=4, width=64, height=64, save_images=False)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    studio = build_studio(tmp_path_factory.mktemp("img2img"), checkpoint_store,
                          ("sd15", "sd15-inpaint", "sd2-inpaint", "sdxl-inpaint"))
    studio.refresh_checkpoints()
    yield studio
    studio.stop()


def picture(width: int = 64, height: int = 64, seed: int = 0) -> Image.Image:
    """A smooth, varied picture (a noise image would hide how much the sampler changed it)."""
    y, x = np.mgrid[0:height, 0:width]
    rng = np.random.default_rng(seed)
    phase = rng.uniform(0, 6, 3)
    channels = [127 + 120 * np.sin(x / (7 + 3 * i) + y / (11 + 2 * i) + phase[i]) for i in range(3)]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size, 0)
    mask.paste(255, box)
    return mask


def run(studio, checkpoint: str = "sd15.safetensors", **fields) -> np.ndarray:
    img2img = fields.pop("img2img")
    request = GenerationRequest(**{**SMALL, **fields, "img2img": img2img,
                                   "override_settings": {"sd_model_checkpoint": checkpoint}})
    return np.asarray(studio.generate(request).images[0].image).astype(int)


def diff(a, b) -> float:
    return float(np.abs(np.asarray(a).astype(int) - np.asarray(b).astype(int)).mean())


# --- img2img -------------------------------------------------------------------------------------

def test_a_low_strength_changes_the_picture_less_than_a_high_one_and_the_seed_repeats(studio):
    init = picture()
    low = run(studio, img2img=Img2ImgInput(init_images=[init]), denoising_strength=0.2)
    high = run(studio, img2img=Img2ImgInput(init_images=[init]), denoising_strength=0.9)
    again = run(studio, img2img=Img2ImgInput(init_images=[init]), denoising_strength=0.2)
    assert diff(low, init) < diff(high, init)
    assert np.array_equal(low, again)
    other_seed = run(studio, img2img=Img2ImgInput(init_images=[init]), denoising_strength=0.2, seed=12)
    assert not np.array_equal(low, other_seed)


def test_the_infotext_has_a1111s_img2img_keys_and_reads_back(studio):
    mask = box_mask((64, 64), (8, 8, 40, 40))
    settings = Img2ImgInput(init_images=[picture()], inpaint=InpaintSettings(
        mask=mask, blur_x=3, blur_y=3, masked_content="latent noise", only_masked=True, padding=16))
    result = studio.generate(GenerationRequest(**SMALL, img2img=settings, denoising_strength=0.6))
    params = infotext.parse_infotext(result.images[0].infotext)
    assert (params["Denoising strength"], params["Mask blur"], params["Masked content"], params["Inpaint area"],
            params["Masked area padding"]) == (0.6, 3, "latent noise", "Only masked", 16)
    assert result.info["denoising_strength"] == 0.6


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_every_resize_mode_renders_at_the_asked_size(studio, mode):
    wide = picture(128, 64)
    out = run(studio, img2img=Img2ImgInput(init_images=[wide], resize_mode=mode), width=64, height=96)
    assert out.shape == (96, 64, 3)


def test_hires_fix_works_in_img2img(studio):
    out = run(studio, img2img=Img2ImgInput(init_images=[picture()]), enable_hr=True, hr_scale=2,
              hr_second_pass_steps=2)
    assert out.shape == (128, 128, 3)


def test_several_init_images_make_one_batch(studio):
    first, second = picture(seed=1), picture(seed=2)
    result = studio.generate(GenerationRequest(**{**SMALL, "batch_size": 2},
                                               img2img=Img2ImgInput(init_images=[first, second]),
                                               denoising_strength=0.3))
    a, b = (np.asarray(g.image) for g in result.images)
    assert diff(a, first) < diff(a, second) and diff(b, second) < diff(b, first)


# --- inpaint -------------------------------------------------------------------------------------

@pytest.mark.parametrize("checkpoint", ["sd15.safetensors", "sd15-inpaint.safetensors", "sd2-inpaint.safetensors",
                                        "sdxl-inpaint.safetensors"])
def test_inpaint_keeps_every_pixel_outside_the_mask(studio, checkpoint):
    init, mask = picture(), box_mask((64, 64), (20, 16, 44, 40))
    settings = Img2ImgInput(init_images=[init], inpaint=InpaintSettings(mask=mask, masked_content="latent noise"))
    out = run(studio, checkpoint, img2img=settings, denoising_strength=1.0)
    outside = np.asarray(blur(mask, 4, 4)) == 0  # beyond the blurred seam
    assert outside.sum() > 1500
    assert np.array_equal(out[outside], np.asarray(init).astype(int)[outside])
    inside = np.asarray(mask) == 255
    assert np.abs(out[inside] - np.asarray(init).astype(int)[inside]).mean() > 10


def test_inpaint_not_masked_repaints_the_other_side(studio):
    init, mask = picture(), box_mask((64, 64), (20, 16, 44, 40))
    settings = Img2ImgInput(init_images=[init], inpaint=InpaintSettings(mask=mask, invert=True, blur_x=0, blur_y=0))
    out = run(studio, img2img=settings, denoising_strength=1.0)
    inside = np.asarray(mask) == 255
    assert np.array_equal(out[inside], np.asarray(init).astype(int)[inside])
    assert np.abs(out[~inside] - np.asarray(init).astype(int)[~inside]).mean() > 10


def test_only_masked_crops_the_region_and_pastes_it_back_in_place(studio):
    init = picture(128, 128)
    mask = box_mask((128, 128), (80, 88, 104, 112))  # bottom right
    settings = Img2ImgInput(init_images=[init], inpaint=InpaintSettings(mask=mask, only_masked=True, padding=8,
                                                                        blur_x=2, blur_y=2))
    out = run(studio, img2img=settings, denoising_strength=1.0, width=64, height=64)
    assert out.shape == (128, 128, 3)  # the original's size, not the working size
    changed = np.abs(out - np.asarray(init).astype(int)).sum(axis=-1) > 0
    ys, xs = np.nonzero(changed)
    # Everything that changed lies in the blurred mask around the box, none of it elsewhere.
    assert xs.min() >= 80 - 8 and ys.min() >= 88 - 8 and xs.max() < 104 + 8 and ys.max() < 112 + 8
    assert changed[90:110, 82:102].mean() > 0.9


def test_each_masked_content_mode_starts_the_masked_area_differently(studio):
    init, mask = picture(), box_mask((64, 64), (16, 16, 48, 48))
    outputs = {}
    for content in ("fill", "original", "latent noise", "latent nothing"):
        settings = Img2ImgInput(init_images=[init], inpaint=InpaintSettings(mask=mask, masked_content=content))
        outputs[content] = run(studio, img2img=settings, denoising_strength=0.5)
    inside = np.asarray(mask) == 255
    names = list(outputs)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not np.array_equal(outputs[a][inside], outputs[b][inside]), (a, b)
    # "original" at a low strength stays closest to the original inside the mask.
    closeness = {k: np.abs(v[inside] - np.asarray(init).astype(int)[inside]).mean() for k, v in outputs.items()}
    assert min(closeness, key=closeness.get) == "original"


def test_a_mask_of_another_size_is_resized_to_the_image(studio):
    init = picture()
    small_mask = box_mask((32, 32), (16, 0, 32, 32))  # the right half
    settings = Img2ImgInput(init_images=[init], inpaint=InpaintSettings(mask=small_mask, blur_x=0, blur_y=0))
    out = run(studio, img2img=settings, denoising_strength=1.0)
    assert np.array_equal(out[:, :28], np.asarray(init).astype(int)[:, :28])
    assert np.abs(out[:, 36:] - np.asarray(init).astype(int)[:, 36:]).mean() > 10


# --- outpaint ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("side", "grown", "kept"), [
    ("left", (64, 96), (slice(None), slice(32 + 12, None))),
    ("right", (64, 96), (slice(None), slice(0, 64 - 12))),
    ("up", (96, 64), (slice(32 + 12, None), slice(None))),
    ("down", (96, 64), (slice(0, 64 - 12), slice(None))),
])
def test_outpaint_grows_the_canvas_on_each_side_and_keeps_the_original(studio, side, grown, kept):
    init = picture()
    settings = Img2ImgInput(init_images=[init], outpaint=OutpaintSettings(**{side: 32}, blur=4))
    out = run(studio, img2img=settings, denoising_strength=0.8)
    assert out.shape[:2] == grown
    offset = {"left": (0, 32), "up": (32, 0)}.get(side, (0, 0))
    original = np.zeros((*grown, 3), dtype=int)
    original[offset[0]:offset[0] + 64, offset[1]:offset[1] + 64] = np.asarray(init)
    assert np.array_equal(out[kept], original[kept])
    new_area = np.ones(grown, dtype=bool)
    new_area[offset[0]:offset[0] + 64, offset[1]:offset[1] + 64] = False
    assert out[new_area].std() > 5  # filled with something, not a flat band
