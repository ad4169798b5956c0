"""The golden-parity table: requests whose images were recorded before the engine owned its loop.

Each case is (name, checkpoint family, GenerationRequest fields). ``record.py`` renders them and
stores the pixels in ``parity.npz``; ``tests/integration/test_golden_parity.py`` renders them again
on the current engine and compares. Re-recording means accepting a visible change: say so in the
commit and the changelog.
"""

from __future__ import annotations

from webui import samplers

BASE = dict(prompt="a lighthouse on a cliff", negative_prompt="blurry", seed=1234, width=64, height=64,
            steps=4, cfg_scale=7.0, save_images=False, save_grid=False)


# DPM++ SDE is left out: before the engine owned its loop, diffusers seeded its Brownian tree at
# random, so its images were not reproducible and there is nothing to keep. The engine now seeds it
# from the image seeds (tests/integration/test_engine.py checks that it is reproducible).
UNRECORDED_SAMPLERS = ("DPM++ SDE",)


def _sampler_cases() -> list[tuple[str, str, dict]]:
    cases = []
    for spec in samplers.SAMPLERS:
        if spec.name in UNRECORDED_SAMPLERS:
            continue
        for schedule in spec.allowed_schedules:
            cases.append((f"sampler/{spec.name}/{schedule}", "sd15",
                          dict(BASE, sampler_name=spec.name, scheduler=schedule)))
    return cases


def _feature_cases() -> list[tuple[str, str, dict]]:
    euler_a = dict(BASE, sampler_name="Euler a")
    dpm = dict(BASE, sampler_name="DPM++ 2M", scheduler="Karras")
    cases: list[tuple[str, str, dict]] = [
        ("batch/euler-a", "sd15", dict(euler_a, batch_size=2, n_iter=2)),
        ("batch/dpm-2m-sde", "sd15", dict(BASE, sampler_name="DPM++ 2M SDE", batch_size=2)),
        ("batch/dpm-2m", "sd15", dict(dpm, batch_size=3)),
        ("seed/variation", "sd15", dict(euler_a, subseed=99, subseed_strength=0.4)),
        ("seed/variation-batch", "sd15", dict(dpm, subseed=7, subseed_strength=0.7, batch_size=2)),
        ("seed/resize-from", "sd15", dict(euler_a, seed_resize_from_w=96, seed_resize_from_h=48)),
        ("size/non-square", "sd15", dict(dpm, width=96, height=64)),
        ("cfg/one", "sd15", dict(dpm, cfg_scale=1.0)),
        ("cfg/low", "sd15", dict(dpm, cfg_scale=0.5)),
        ("cfg/high", "sd15", dict(dpm, cfg_scale=15.0)),
        ("eta/ddim", "sd15", dict(BASE, sampler_name="DDIM", eta=0.6)),
        ("eta/euler-a", "sd15", dict(euler_a, eta=0.5)),
        ("clip-skip/2", "sd15", dict(dpm, clip_skip=2)),
        ("tiling", "sd15", dict(dpm, tiling=True)),
        ("prompt/empty", "sd15", dict(dpm, prompt="", negative_prompt="")),
        ("prompt/emphasis", "sd15", dict(dpm, prompt="a (lighthouse:1.4) on a [cliff], ((sea))")),
        ("prompt/schedule", "sd15", dict(dpm, prompt="a [lighthouse:castle:0.5] on a cliff")),
        ("prompt/schedule-negative", "sd15", dict(dpm, negative_prompt="[blurry:sharp:2]")),
        ("prompt/alternation", "sd15", dict(euler_a, prompt="a [lighthouse|castle] on a cliff")),
        ("prompt/break", "sd15", dict(dpm, prompt="a lighthouse BREAK on a cliff")),
        ("prompt/and", "sd15", dict(dpm, prompt="a lighthouse AND a cliff:0.6")),
        ("prompt/and-schedule", "sd15", dict(euler_a, prompt="a [lighthouse:castle:2] AND stormy sea:0.5")),
        ("prompt/and-no-cfg", "sd15", dict(dpm, prompt="a lighthouse AND a cliff:0.6", cfg_scale=1.0)),
        ("prompt/long", "sd15", dict(dpm, prompt=", ".join(f"word{i}" for i in range(60)))),
        ("prompt/and-batch", "sd15", dict(euler_a, prompt="a lighthouse AND a cliff", batch_size=2)),
        ("network/lora", "sd15", dict(dpm, prompt="a lighthouse <lora:golden-lora:0.8>")),
        ("network/lora-te-unet", "sd15", dict(dpm, prompt="a lighthouse <lora:golden-lora:0.5:1.2>")),
        ("network/embedding", "sd15", dict(dpm, prompt="a golden-emb lighthouse")),
        ("network/hypernetwork", "sd15", dict(dpm, prompt="a lighthouse <hypernet:golden-hn:0.7>")),
        ("network/all", "sd15", dict(euler_a, prompt="a golden-emb [lighthouse:castle:2] <lora:golden-lora:0.6> <hypernet:golden-hn:0.5>")),
    ]
    for family in ("sd2", "sd2-v", "sdxl-base", "sdxl-refiner", "sd15-inpaint", "sd2-inpaint", "sdxl-inpaint"):
        cases.append((f"family/{family}/euler-a", family, dict(euler_a)))
        cases.append((f"family/{family}/dpm-2m-batch", family, dict(dpm, batch_size=2)))
    cases += [
        ("family/sdxl-base/and", "sdxl-base", dict(dpm, prompt="a lighthouse AND a cliff:0.6")),
        ("family/sdxl-base/schedule", "sdxl-base", dict(dpm, prompt="a [lighthouse:castle:0.5] (cliff:1.3)")),
        ("family/sdxl-base/clip-skip", "sdxl-base", dict(dpm, clip_skip=2)),
        ("family/sdxl-base/size", "sdxl-base", dict(euler_a, width=128, height=64)),
        ("family/sdxl-refiner/and", "sdxl-refiner", dict(dpm, prompt="a lighthouse AND a cliff:0.6")),
        ("family/sd2-v/heun", "sd2-v", dict(BASE, sampler_name="Heun")),
        ("family/sd15-inpaint/and", "sd15-inpaint", dict(dpm, prompt="a lighthouse AND a cliff:0.6")),
        ("family/sdxl-base/lora", "sdxl-base", dict(dpm, prompt="a lighthouse <lora:golden-xl-lora:0.8>")),
    ]
    return cases


CASES: list[tuple[str, str, dict]] = _sampler_cases() + _feature_cases()
FAMILIES: tuple[str, ...] = tuple(sorted({family for _, family, _ in CASES}))


def write_networks(data_dir, pipes: dict) -> None:
    """The LoRA, embedding and hypernetwork files the cases name, from fixed seeds."""
    from tests.kit.networks import (
        random_vectors,
        write_a1111_embedding,
        write_hypernetwork,
        write_kohya_lora,
    )

    models = data_dir / "models"
    write_kohya_lora(models / "Lora" / "golden-lora.safetensors", pipes["sd15"], seed=11)
    write_kohya_lora(models / "Lora" / "golden-xl-lora.safetensors", pipes["sdxl-base"], seed=12)
    width = pipes["sd15"].text_encoder.config.hidden_size
    write_a1111_embedding(models / "embeddings" / "golden-emb.pt", random_vectors(2, width, seed=13))
    unet = pipes["sd15"].unet.config
    dims = sorted({*unet.block_out_channels, unet.cross_attention_dim})  # self- and cross-attention widths
    write_hypernetwork(models / "hypernetworks" / "golden-hn.pt", dims=dims, seed=14)
