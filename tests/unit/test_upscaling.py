"""Upscaler models: detected from their tensors (never unpickling code), run tiled without seams,
and sized as asked (repeated passes, then Lanczos to the exact size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

from tests.kit.upscalers import (
    write_compact,
    write_esrgan,
    write_malicious_upscaler,
    write_realesrgan,
    write_swinir,
)
from webui.upscaling import UpscalerError, Upscalers
from webui.upscaling.loader import load_model

# (folder, file name, writer, architecture spandrel must detect, model scale)
KIT = [
    ("ESRGAN", "4x_old_layout.pth", write_esrgan, "ESRGAN", 4),
    ("ESRGAN", "2x_old_layout.safetensors", lambda p: write_esrgan(p, scale=2), "ESRGAN", 2),
    ("RealESRGAN", "RealESRGAN_x4plus_tiny.pth", write_realesrgan, "ESRGAN", 4),
    ("RealESRGAN", "realesr-general-x4v3_tiny.pth", write_compact, "Compact", 4),
    ("SwinIR", "SwinIR_4x_tiny.pth", write_swinir, "SwinIR", 4),
]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("upscaler-models")
    for folder, name, writer, _, _ in KIT:
        writer(root / folder / name)
    return root


@pytest.fixture(scope="module")
def service(models_dir) -> Upscalers:
    return Upscalers.for_models_dir(models_dir)


def picture(width: int = 32, height: int = 24) -> Image.Image:
    """A small image with smooth gradients and hard edges, like a first pass."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for x in range(width):
        draw.line([(x, 0), (x, height)], fill=(x * 255 // width, 128, 255 - x * 200 // width))
    draw.ellipse((width // 6, height // 6, width * 2 // 3, height * 5 // 6), fill=(240, 200, 30))
    draw.rectangle((width // 2, height // 3, width - 4, height - 3), fill=(20, 60, 200))
    return image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


def test_names_follow_a1111s_order_and_match_case_insensitively(service):
    stems = sorted((Path(name).stem for _, name, *_ in KIT), key=str.casefold)
    assert service.names() == ["None", "Lanczos", "Nearest", *stems]
    assert service.find("  realesrgan_X4PLUS_tiny ") == "RealESRGAN_x4plus_tiny"
    assert service.find("lanczos") == "Lanczos" and service.find("Latent") is None and service.find("nope") is None
    items = {item.name: item for item in service.items()}
    assert items["None"].model_name is None and items["None"].model_path is None
    assert Path(items["SwinIR_4x_tiny"].model_path).parent.name == "SwinIR"


@pytest.mark.parametrize(("folder", "name", "writer", "architecture", "scale"), KIT, ids=[k[1] for k in KIT])
def test_each_layout_is_detected_and_upscales_to_the_asked_size(service, models_dir, folder, name, writer,
                                                                architecture, scale):
    model = load_model(models_dir / folder / name, torch.device("cpu"), torch.float32)
    assert (model.architecture.id, model.scale) == (architecture, scale)
    image = picture(16, 12)
    stem = Path(name).stem
    result = service.upscale(image, 2.5, stem)  # a non-integer factor: model, then Lanczos to fit
    assert result.size == (40, 30) and result.mode == "RGB"
    # The model ran: its (random) weights give another picture than plain Lanczos resizing.
    lanczos = pixels(service.upscale(image, 2.5, "Lanczos"))
    assert np.abs(pixels(result) - lanczos).mean() > 5
    assert service.upscale_to(image, (50, 20), stem).size == (50, 20)
    assert {i.name: i.scale for i in service.items()}[stem] == scale  # learnt once loaded


def test_a_model_smaller_than_the_factor_runs_again(service):
    image = picture(12, 8)
    once = service.upscale(image, 2, "2x_old_layout")
    twice = service.upscale(image, 4, "2x_old_layout")  # two passes of the 2× model, as A1111
    assert (once.size, twice.size) == ((24, 16), (48, 32))
    again = service.upscale(once, 2, "2x_old_layout")
    assert np.abs(pixels(twice) - pixels(again)).max() <= 1  # the same as running it twice by hand


def record_passes(upscalers: Upscalers, monkeypatch) -> list[tuple[int, int]]:
    """The size of every model pass ``upscalers`` makes from now on."""
    made: list[tuple[int, int]] = []
    run = upscalers._run

    def recorded(model, image, tile, overlap):
        out = run(model, image, tile, overlap)
        made.append(out.size)
        return out

    monkeypatch.setattr(upscalers, "_run", recorded)
    return made


@pytest.mark.parametrize(("name", "factor", "source", "scale", "target"), [
    ("4x_old_layout", 4, (20, 10), 4.05, (81, 40)),  # A1111: 80x40, then 320x160, then down to 81x40
    ("2x_old_layout", 2, (12, 8), 3, (36, 24)),  # A1111: 24x16, then 48x32, then down to 36x24
])
def test_no_pass_overshoots_the_target_by_more_than_the_models_factor(service, monkeypatch, name, factor, source,
                                                                      scale, target):
    made = record_passes(service, monkeypatch)
    result = service.upscale(picture(*source), scale, name)

    assert result.size == target and len(made) == 2
    assert made[0] == (source[0] * factor, source[1] * factor)  # the first pass works on the original
    # The stated bound: after the first pass, at most factor - 1 pixels past the target on each side.
    assert all(w < target[0] + factor and h < target[1] + factor for w, h in made[1:]), made


def test_a_pass_never_makes_more_than_four_times_the_extras_limit(models_dir, monkeypatch):
    """A huge image enlarged a little (1.05× with a 4× model) would make 16× its pixels in the first
    pass; past 4 × limit_extras_pixels the original is shrunk first so the pass lands at the target."""
    options = {"limit_extras_pixels": 400, "ESRGAN_tile": 192, "ESRGAN_tile_overlap": 8}
    limited = Upscalers.for_models_dir(models_dir, options=options)
    made = record_passes(limited, monkeypatch)
    result = limited.upscale(picture(20, 10), 1.05, "4x_old_layout")
    assert result.size == (21, 10) and made == [(24, 12)]  # ceil(21/4)×ceil(10/4), then ×4: not 80×40
    assert limited.upscale(picture(8, 5), 2, "4x_old_layout").size == (16, 10)
    assert made[-1] == (32, 20)  # 640 px fits 4 × 400: the original is kept for the first pass


def test_model_free_upscalers(service):
    image = picture(10, 8)
    assert service.upscale(image, 2, "None") is image  # A1111's UpscalerNone: the image as it is
    assert service.upscale_to(image, (25, 16), "None").size == (25, 16)  # exact size: Lanczos
    nearest = service.upscale(image, 3, "nearest")
    assert nearest.size == (30, 24)
    assert nearest.getpixel((4, 4)) == image.getpixel((1, 1))  # nearest copies pixels
    with pytest.raises(UpscalerError, match="unknown upscaler 'R-ESRGAN 4x\\+'"):
        service.upscale(image, 2, "R-ESRGAN 4x+")


def test_alpha_is_kept(service):
    image = picture(16, 16).convert("RGBA")
    image.putalpha(Image.new("L", (16, 16), 77))
    result = service.upscale(image, 2, "4x_old_layout")
    assert result.mode == "RGBA" and result.size == (32, 32) and result.getpixel((10, 10))[3] == 77


def test_tiles_are_blended_without_seams(service):
    """Tiled and untiled results have the same size and agree to within 4/255 on every row and column.

    They cannot be equal: near a tile's edge the model sees less of the picture than in one pass
    (this tiny ESRGAN's 17 stacked 3×3 convs reach ~17 px). Feathering the overlaps keeps the
    difference at ~2/255 for any row or column; pasting tiles without overlap shows seams of ~15/255,
    and averaging overlaps without feathering ~14/255.
    """
    image = picture(48, 32)
    whole = pixels(service.upscale(image, 4, "4x_old_layout", tile=0))
    tiled = pixels(service.upscale(image, 4, "4x_old_layout", tile=24, overlap=8))  # 3 × 2 tiles
    assert tiled.shape == whole.shape == (128, 192, 3)
    diff = np.abs(tiled - whole)
    assert diff.mean(axis=(0, 2)).max() < 4 and diff.mean(axis=(1, 2)).max() < 4
    seams = np.abs(pixels(service.upscale(image, 4, "4x_old_layout", tile=24, overlap=0)) - whole)
    assert seams.mean(axis=(1, 2)).max() > 8  # the tolerance would catch hard tile edges


def test_tile_settings_come_from_the_options(models_dir, tmp_path):
    from webui.settings import Options

    options = Options(tmp_path / "config.json")
    service = Upscalers.for_models_dir(models_dir, options=options)
    image = picture(24, 16)
    whole = service.upscale(image, 4, "4x_old_layout", tile=0)
    options.update({"ESRGAN_tile": 0})
    assert service.upscale(image, 4, "4x_old_layout").tobytes() == whole.tobytes()  # 0 = no tiling
    options.update({"ESRGAN_tile": 16, "ESRGAN_tile_overlap": 0})
    assert service.upscale(image, 4, "4x_old_layout").tobytes() != whole.tobytes()


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    write_malicious_upscaler(tmp_path / "ESRGAN" / "4x_evil.pth", marker)
    write_compact(tmp_path / "ESRGAN" / "4x_fine.pth")
    service = Upscalers.for_models_dir(tmp_path)
    assert "4x_evil" in service.names()  # listed as A1111 would, refused when used
    with pytest.raises(UpscalerError, match="4x_evil.pth: refused.*getattr"):
        service.upscale(picture(), 2, "4x_evil")
    assert not marker.exists()
    assert service.upscale(picture(), 2, "4x_fine").size == (64, 48)  # the others still work


@pytest.mark.parametrize(("content", "message"), [
    (lambda p: save_file({"encoder.weight": torch.zeros(4, 4)}, str(p)), "not an upscaler architecture"),
    (lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json"), "truncated|corrupt"),
    # ESRGAN's keys with a tensor of the wrong rank: recognised, then refused as damaged
    (lambda p: save_file({"model.0.weight": torch.zeros(8), "model.1.sub.0.RDB1.conv1.0.weight": torch.zeros(8)},
                         str(p)), "could not be loaded"),
])
def test_files_that_are_no_upscaler_are_refused_with_a_sentence(tmp_path, content, message):
    path = tmp_path / "ESRGAN" / "4x_broken.safetensors"
    path.parent.mkdir(parents=True)
    content(path)
    service = Upscalers.for_models_dir(tmp_path)
    with pytest.raises(UpscalerError, match=message) as caught:
        service.upscale(picture(), 2, "4x_broken")
    assert str(caught.value).startswith("4x_broken.safetensors")


def test_refresh_finds_new_files_and_forgets_removed_ones(tmp_path):
    service = Upscalers.for_models_dir(tmp_path, esrgan_dir=tmp_path / "elsewhere")
    assert service.names() == ["None", "Lanczos", "Nearest"]
    write_compact(tmp_path / "elsewhere" / "sub" / "4x_new.pth")  # --esrgan-models-path, subfolders scanned
    write_compact(tmp_path / "ESRGAN" / "4x_ignored.pth")  # the default folder is replaced by the flag
    service.refresh()
    assert service.names() == ["None", "Lanczos", "Nearest", "4x_new"]
    (tmp_path / "elsewhere" / "sub" / "4x_new.pth").unlink()
    service.refresh()
    assert service.find("4x_new") is None
