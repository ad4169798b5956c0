"""The img2img tab's event, driven with gradio_client against the real server: img2img from an
uploaded picture, Inpaint upload keeping the unmasked pixels, a batch from folders, bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402

from tests.integration.test_img2img import box_mask, picture  # noqa: E402
from webui.engine.init_image import blur  # noqa: E402
from webui.infotext import parse_infotext  # noqa: E402

pytestmark = pytest.mark.timeout(300)

TINY = dict(steps=3, width=64, height=64, cfg_scale=5.0, sampler_name="Euler", scheduler="Automatic", n_iter=1,
            batch_size=1, subseed=-1, subseed_strength=0.0, seed_resize_from_w=0, seed_resize_from_h=0, seed=77,
            prompt="a harbour", negative_prompt="")


@pytest.fixture(scope="module")
def client(live_server) -> Iterator[Client]:
    client = Client(live_server.base_url, verbose=False, download_files=True)
    yield client
    client.close()


def saved(tmp_path: Path, image: Image.Image, name: str) -> str:
    path = tmp_path / name
    image.save(path)
    return str(path)


def img2img(client: Client, **fields) -> tuple:
    return client.predict(**{**TINY, **fields}, api_name="/img2img")


def first_image(gallery) -> Image.Image:
    with Image.open(gallery[0]["image"]) as image:
        return image.copy()


def test_img2img_from_an_uploaded_picture(client, tmp_path):
    gallery, info, log, *_ = img2img(client, mode="img2img", image=handle_file(saved(tmp_path, picture(), "in.png")),
                                     denoising_strength=0.4)
    assert "sd-error" not in log, log
    params = parse_infotext(first_image(gallery).info["parameters"])
    assert params["Denoising strength"] == 0.4 and params["Seed"] == 77


def test_resize_by_scales_the_picture(client, tmp_path):
    gallery, *_ = img2img(client, mode="img2img", image=handle_file(saved(tmp_path, picture(128, 64), "in.png")),
                          size_mode="Resize by", scale=0.5)
    assert first_image(gallery).size == (64, 64)  # 128x64 × 0.5 = 64x32, raised to the 64-pixel minimum


def test_inpaint_upload_keeps_the_unmasked_pixels(client, tmp_path):
    init, mask = picture(), box_mask((64, 64), (24, 24, 48, 48))
    gallery, info, log, *_ = img2img(
        client, mode="Inpaint upload", upload_image=handle_file(saved(tmp_path, init, "in.png")),
        upload_mask=handle_file(saved(tmp_path, mask, "mask.png")), denoising_strength=1.0,
        masked_content="latent noise")
    assert "sd-error" not in log, log
    out = np.asarray(first_image(gallery).convert("RGB")).astype(int)
    outside = np.asarray(blur(mask, 4, 4)) == 0
    assert np.array_equal(out[outside], np.asarray(init).astype(int)[outside])
    assert np.abs(out[30:42, 30:42] - np.asarray(init).astype(int)[30:42, 30:42]).mean() > 10


def test_inpaint_without_a_mask_says_what_is_missing(client, tmp_path):
    _, _, log, *_ = img2img(client, mode="Inpaint upload", upload_image=handle_file(saved(tmp_path, picture(), "a.png")))
    assert "sd-error" in log and "mask" in log


def test_batch_writes_one_output_per_input_named_after_it(client, live_server):
    source = live_server.data_dir / "batch-in"
    masks = live_server.data_dir / "batch-masks"
    source.mkdir(exist_ok=True)
    masks.mkdir(exist_ok=True)
    for i, name in enumerate(("alpha.png", "beta.jpg", "gamma.webp")):
        picture(seed=i).save(source / name)
    box_mask((64, 64), (0, 0, 32, 32)).save(masks / "beta.png")
    (source / "notes.txt").write_text("not an image")
    gallery, info, log, *_ = img2img(client, mode="Batch", batch_input="batch-in", batch_output="outputs/batch-out",
                                     batch_masks="batch-masks", denoising_strength=0.5)
    assert "sd-error" not in log, log
    written = sorted(p.name for p in (live_server.data_dir / "outputs" / "batch-out").iterdir())
    assert written == ["alpha.png", "beta.png", "gamma.png"]
    assert len(gallery) == 3
    with Image.open(live_server.data_dir / "outputs" / "batch-out" / "beta.png") as beta:
        assert parse_infotext(beta.info["parameters"])["Masked content"] == "original"  # its mask was used


def test_batch_cannot_write_outside_the_output_folders(client, live_server, tmp_path):
    source = live_server.data_dir / "batch-in2"
    source.mkdir(exist_ok=True)
    picture().save(source / "one.png")
    _, _, log, *_ = img2img(client, mode="Batch", batch_input="batch-in2", batch_output=str(tmp_path / "elsewhere"))
    assert "sd-error" in log and "outside" in log
    assert not (tmp_path / "elsewhere").exists()
