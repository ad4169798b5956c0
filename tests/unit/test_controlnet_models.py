"""ControlNet files: listing with A1111's old hash, identifying, loading in every layout, refusals, cache."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch

from tests.kit.controlnets import (
    controlnet_tensors,
    write_control_lora_like,
    write_controlnet,
    write_t2i_adapter_like,
    write_union_like,
)
from webui.control.models import ControlNetError, ControlNets

SYNTHETIC = {"sd1": "sd15", "sd2": "sd2", "sdxl": "sdxl-base"}


@pytest.fixture(scope="module")
def unets(checkpoint_store):
    """The UNet of each tiny checkpoint, built by the checkpoint loader (identified from the file's shapes).

    Only the UNet: the tiny SD2 checkpoint's 1024-wide text encoder would cost seconds here.
    """
    from webui.models.load import _build_unet, identify_file
    from webui.models.safe_load import load_state_dict

    cache: dict[str, torch.nn.Module] = {}

    def get(family: str):
        if family not in cache:
            path = checkpoint_store(SYNTHETIC[family])
            cache[family] = _build_unet(identify_file(path), load_state_dict(path))
        return cache[family]

    return get


def _inputs(unet, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    latents = torch.randn(1, 4, 8, 8, generator=gen)
    context = torch.randn(1, 8, unet.config.cross_attention_dim, generator=gen)
    extra = None
    if unet.config.addition_embed_type == "text_time":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        extra = {"text_embeds": torch.randn(1, pooled, generator=gen), "time_ids": torch.tensor([[64.0, 64, 0, 0, 64, 64]])}
    return latents, context, extra


def _run(controlnet, unet, hint):
    latents, context, extra = _inputs(unet)
    with torch.no_grad():
        down, mid = controlnet(latents, 10, context, controlnet_cond=hint, added_cond_kwargs=extra, return_dict=False)
        plain = unet(latents, 10, context, added_cond_kwargs=extra).sample
        controlled = unet(latents, 10, context, added_cond_kwargs=extra, down_block_additional_residuals=down,
                          mid_block_additional_residual=mid).sample
    return down, mid, plain, controlled


LAYOUTS = [
    ("sd1", "original", True, "control_v11p_sd15_canny.pth"),
    ("sd1", "bundled", True, "control_sd15_canny.pth"),  # ControlNet 1.0: the SD model rides along
    ("sd1", "original", False, "unprefixed.safetensors"),
    ("sd2", "original", True, "controlnet_sd21_depth.safetensors"),
    ("sdxl", "diffusers", True, "diffusers_xl_canny_full.safetensors"),
]


@pytest.mark.parametrize(("family", "layout", "prefixed", "name"), LAYOUTS, ids=[x[3] for x in LAYOUTS])
def test_each_layout_loads_exactly_and_steers_the_tiny_unet(tmp_path, unets, family, layout, prefixed, name):
    bundled = layout == "bundled"
    write_controlnet(tmp_path / name, family, "original" if bundled else layout, prefixed=prefixed, seed=3,
                     with_sd_unet=bundled)
    controlnets = ControlNets([tmp_path])
    (file,) = controlnets.files()
    assert file.family == family
    unet = unets(family)
    model = controlnets.load(file, unet.config, "cpu", torch.float32)
    # Every tensor landed under its own name: the original layout converts back to what was written.
    written = controlnet_tensors(family, seed=3)
    loaded = model.state_dict()
    assert loaded.keys() == written.keys()
    assert all(torch.equal(loaded[k], written[k]) for k in written)
    hint = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    down, mid, plain, controlled = _run(model, unet, hint)
    assert len(down) == len(model.controlnet_down_blocks)
    assert controlled.shape == plain.shape and not torch.allclose(controlled, plain)


def test_small_sdxl_controlnet_has_no_attention_and_still_fits(tmp_path, unets):
    path = write_controlnet(tmp_path / "controlnet-canny-sdxl-1.0-small.safetensors", "sdxl", "diffusers",
                            variant="small")
    controlnets = ControlNets([tmp_path])
    model = controlnets.load(controlnets.find(path.stem), unets("sdxl").config, "cpu", torch.float32)
    assert model.config.mid_block_type == "UNetMidBlock2D"
    assert not any(".attentions." in k for k in model.state_dict())
    _, _, plain, controlled = _run(model, unets("sdxl"), torch.rand(1, 3, 64, 64))
    assert not torch.allclose(controlled, plain)


def test_sdxl_controlnet_in_the_original_layout_keeps_its_text_time_embedding(tmp_path, unets):
    write_controlnet(tmp_path / "sai_xl_canny.safetensors", "sdxl", "original", seed=5)
    controlnets = ControlNets([tmp_path])
    model = controlnets.load(controlnets.find("sai_xl"), unets("sdxl").config, "cpu", torch.float32)
    written = controlnet_tensors("sdxl", seed=5)
    assert torch.equal(model.state_dict()["add_embedding.linear_1.weight"], written["add_embedding.linear_1.weight"])
    assert all(torch.equal(v, written[k]) for k, v in model.state_dict().items())


def test_shuffle_model_pools_its_residuals_over_space(tmp_path, unets):
    path = write_controlnet(tmp_path / "control_v11e_sd15.pth", "sd1", shuffle=True)
    assert "shuffle" in path.name
    controlnets = ControlNets([tmp_path])
    model = controlnets.load(controlnets.find("shuffle"), unets("sd1").config, "cpu", torch.float32)
    down, mid, _, _ = _run(model, unets("sd1"), torch.rand(1, 3, 64, 64))
    for residual in (*down, mid):  # one value per channel: the spatial mean, broadcast
        assert torch.allclose(residual, residual[..., :1, :1].expand_as(residual))


def test_wrong_family_is_a_sentence_and_nothing_is_cached(tmp_path, unets):
    write_controlnet(tmp_path / "xl.safetensors", "sdxl", "diffusers")
    write_controlnet(tmp_path / "sd21.safetensors", "sd2")
    controlnets = ControlNets([tmp_path])
    xl, sd21 = controlnets.find("xl"), controlnets.find("sd21")
    with pytest.raises(ControlNetError, match=r"^xl \[[0-9a-f]{8}\] is an SDXL ControlNet; the loaded checkpoint is SD 1\.x"):
        controlnets.load(xl, unets("sd1").config, "cpu", torch.float32)
    with pytest.raises(ControlNetError, match=r"is an SD 2\.x ControlNet; the loaded checkpoint is SDXL"):
        controlnets.load(sd21, unets("sdxl").config, "cpu", torch.float32)
    with pytest.raises(ControlNetError, match=r"^sd21 \[[0-9a-f]{8}\] is an SD 2\.x ControlNet; the loaded checkpoint is SD 1"):
        controlnets.check(sd21, unets("sd1").config)  # from the header alone, before a job queues
    controlnets.check(xl, unets("sdxl").config)
    assert controlnets.cached_titles() == []


@pytest.mark.parametrize(("writer", "kind"), [
    (write_union_like, "ControlNet Union"),
    (write_t2i_adapter_like, "T2I-Adapter"),
    (write_control_lora_like, "Control-LoRA"),
])
def test_other_control_model_kinds_are_refused_by_name(tmp_path, writer, kind):
    writer(tmp_path / "other.safetensors")
    controlnets = ControlNets([tmp_path])
    (file,) = controlnets.files()
    assert file.family is None
    with pytest.raises(ControlNetError, match=f"^other \\[[0-9a-f]{{8}}\\] is an? {kind}"):
        controlnets.check(file)
    with pytest.raises(ControlNetError, match=f"is an? {kind}"):
        controlnets.load(file, {"cross_attention_dim": 768, "block_out_channels": [320]}, "cpu", torch.float32)


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_that_would_run_code_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    payload = _RunsCode()
    payload.marker = marker
    torch.save({"control_model.time_embed.0.weight": torch.zeros(1), "evil": payload}, tmp_path / "evil.pth")
    controlnets = ControlNets([tmp_path])
    with pytest.raises(ControlNetError, match=r"evil \[[0-9a-f]{8}\]: .*refused.*system"):
        controlnets.load(controlnets.find("evil"), {}, "cpu", torch.float32)
    assert not marker.exists()


def test_corrupt_file_is_an_error_and_the_cache_keeps_its_model(tmp_path, unets):
    write_controlnet(tmp_path / "good.safetensors", "sd1")
    data = (tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "bad.safetensors").write_bytes(data[: len(data) // 2])
    controlnets = ControlNets([tmp_path])
    good = controlnets.load(controlnets.find("good"), unets("sd1").config, "cpu", torch.float32)
    with pytest.raises(ControlNetError, match=r"^bad \[[0-9a-f]{8}\]: .*truncated"):
        controlnets.load(controlnets.find("bad"), unets("sd1").config, "cpu", torch.float32)
    assert controlnets.cached_titles() == [controlnets.find("good").title]
    assert controlnets.load(controlnets.find("good"), unets("sd1").config, "cpu", torch.float32) is good


def _old_a1111_hash(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]


def test_listing_titles_carry_the_old_a1111_hash_and_find_follows_the_extension(tmp_path):
    main, extra = tmp_path / "ControlNet", tmp_path / "elsewhere"
    a = write_controlnet(main / "sub" / "control_v11p_sd15_canny.safetensors", "sd1", seed=1)
    b = write_controlnet(main / "control_v11f1p_sd15_depth.pth", "sd1", seed=2)
    c = write_controlnet(extra / "Diffusers_XL_Canny.safetensors", "sdxl", "diffusers")
    write_t2i_adapter_like(main / "annotators" / "body_pose_model.pth")  # annotator weights are not models
    (main / "notes.txt").write_text("not a model")
    controlnets = ControlNets([main, extra])
    titles = controlnets.titles()
    assert titles == ["None", f"Diffusers_XL_Canny [{_old_a1111_hash(c)}]",
                      f"control_v11f1p_sd15_depth [{_old_a1111_hash(b)}]",
                      f"control_v11p_sd15_canny [{_old_a1111_hash(a)}]"]
    assert len({t.split("[")[1] for t in titles[1:]}) == 3  # the files differ at 1 MiB: the hashes do too
    assert controlnets.titles(include_none=False) == titles[1:]
    assert controlnets.find(titles[3]).path == a.resolve()
    assert controlnets.find("CONTROL_V11P_SD15_CANNY").path == a.resolve()
    assert controlnets.find("canny").path == c.resolve()  # the shortest stem containing it
    assert controlnets.find("sd15_canny").path == a.resolve()
    assert controlnets.find("control_v11f1p_sd15_depth [deadbeef]").path == b.resolve()  # replaced file
    assert controlnets.find("xl_canny").path == c.resolve()
    assert controlnets.find("None") is None and controlnets.find("openpose") is None
    # A file added later appears after refresh.
    write_controlnet(main / "control_v11p_sd15_openpose.safetensors", "sd1", seed=4)
    assert controlnets.find("openpose") is None
    controlnets.refresh()
    assert controlnets.find("openpose").name == "control_v11p_sd15_openpose"


def test_ram_cache_keeps_the_most_recent_models_up_to_its_size(tmp_path, unets):
    for i in range(3):
        write_controlnet(tmp_path / f"cn{i}.safetensors", "sd1", seed=i)
    size = {"n": 2}
    controlnets = ControlNets([tmp_path], cache_size=lambda: size["n"])
    unet = unets("sd1").config
    files = [controlnets.find(f"cn{i}") for i in range(3)]
    first = controlnets.load(files[0], unet, "cpu", torch.float32)
    controlnets.load(files[1], unet, "cpu", torch.float32)
    assert controlnets.load(files[0], unet, "cpu", torch.float32) is first  # a hit, now the most recent
    controlnets.load(files[2], unet, "cpu", torch.float32)
    assert controlnets.cached_titles() == [files[0].title, files[2].title]
    size["n"] = 0
    controlnets.set_cache_size(0)
    assert controlnets.cached_titles() == []
    assert controlnets.load(files[0], unet, "cpu", torch.float32) is not first
    assert controlnets.cached_titles() == []


def test_half_precision_is_kept_for_cuda_only(tmp_path, unets):
    write_controlnet(tmp_path / "cn.safetensors", "sd1")
    controlnets = ControlNets([tmp_path])
    model = controlnets.load(controlnets.find("cn"), unets("sd1").config, "cpu", torch.float16)
    assert model.dtype == torch.float32


def test_studio_lists_both_folders_and_trims_its_cache_when_the_setting_drops(tmp_path, make_studio, unets):
    default = tmp_path / "models" / "ControlNet"
    write_controlnet(default / "control_v11p_sd15_canny.safetensors", "sd1")
    write_controlnet(default / "annotators" / "ControlNetHED.pth", "sd1")  # annotator folder: not listed
    write_controlnet(tmp_path / "extra_cn" / "control_v11f1p_sd15_depth.safetensors", "sd1", seed=1)
    studio = make_studio(start=False, controlnet_dir=tmp_path / "extra_cn")
    assert [t.split(" [")[0] for t in studio.controlnets.titles()] == [
        "None", "control_v11f1p_sd15_depth", "control_v11p_sd15_canny"]
    for name in ("canny", "depth"):
        studio.controlnets.load(studio.controlnets.find(name), unets("sd1").config, "cpu", torch.float32)
    assert len(studio.controlnets.cached_titles()) == 2
    studio.options.update({"control_net_model_cache_size": 1})
    assert studio.controlnets.cached_titles() == [studio.controlnets.find("depth").title]
