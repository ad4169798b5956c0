"""The engine points scripts stand on: per-image prompts and seeds, batch, UNet-output and save hooks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import build_studio
from webui.engine.callbacks import LoopCallback
from webui.engine.plan import JobAdditions
from webui.request import GenerationRequest

SMALL = dict(seed=11, width=64, height=64, steps=3, save_images=False, sampler_name="Euler")


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    studio = build_studio(tmp_path_factory.mktemp("script-points"), checkpoint_store, ("sd15",))
    yield studio
    studio.stop()


def run(studio, additions=None, **fields):
    return studio.engine.run(GenerationRequest(**{**SMALL, **fields}), None, additions)


def pixels(image) -> np.ndarray:
    return np.asarray(image.load() if hasattr(image, "load") and not isinstance(image, Image.Image) else image).astype(int)


def test_each_image_of_a_batch_can_have_its_own_prompt_and_seed(studio):
    """A batch with two prompts is sampled in groups and matches two separate single-image jobs."""
    mixed = run(studio, JobAdditions(prompts=("a red cube", "a blue sphere", "a red cube"), seeds=(5, 9, 7)),
                prompt="ignored", batch_size=3)
    alone = [run(studio, prompt=p, seed=s) for p, s in (("a red cube", 5), ("a blue sphere", 9), ("a red cube", 7))]
    assert [g.seed for g in mixed.images] == [5, 9, 7]
    assert mixed.info["all_prompts"] == ["a red cube", "a blue sphere", "a red cube"]
    for made, single in zip(mixed.images, alone):
        assert np.abs(pixels(made.image) - pixels(single.images[0].image)).max() <= 2
    assert mixed.images[1].infotext.startswith("a blue sphere\n")
    assert not np.array_equal(pixels(mixed.images[0].image), pixels(mixed.images[1].image))


class RewriteBatch(LoopCallback):
    def __init__(self):
        self.seen = []

    def before_batch(self, batch):
        self.seen.append((batch.iteration, list(batch.seeds), list(batch.prompts)))
        batch.prompts = [f"{text}, take {batch.iteration}" for text in batch.prompts]


def test_before_batch_sees_each_batch_and_its_prompt_changes_are_used(studio):
    hook = RewriteBatch()
    result = run(studio, JobAdditions(callbacks=(hook,)), prompt="a lamp", n_iter=2)
    assert hook.seen == [(0, [11], ["a lamp"]), (1, [12], ["a lamp"])]
    assert [g.infotext.split("\n")[0] for g in result.images] == ["a lamp, take 0", "a lamp, take 1"]
    plain = run(studio, prompt="a lamp, take 1", seed=12)
    assert np.abs(pixels(result.images[1].image) - pixels(plain.images[0].image)).max() <= 2


class ZeroUNet(LoopCallback):
    def after_unet(self, output):
        output.output = torch.zeros_like(output.output)


def test_after_unet_can_replace_the_raw_prediction(studio):
    base = run(studio, prompt="a lamp")
    zeroed = run(studio, JobAdditions(callbacks=(ZeroUNet(),)), prompt="a lamp")
    assert np.abs(pixels(zeroed.images[0].image) - pixels(base.images[0].image)).mean() > 5


class Stamp(LoopCallback):
    def __init__(self):
        self.saved = []

    def before_save(self, saving):
        saving.infotext += ", Stamp: yes"
        saving.image = Image.new("RGB", saving.image.size, (0, 255, 0))

    def after_save(self, saving):
        self.saved.append(saving.path)


def test_save_hooks_change_what_is_written_and_see_the_file(studio):
    stamp = Stamp()
    result = run(studio, JobAdditions(callbacks=(stamp,), extra_params={"Script key": "v 1"}), prompt="a lamp",
                 save_images=True)
    path = result.images[0].path
    assert stamp.saved == [path] and path.is_file()
    with Image.open(path) as saved:
        assert saved.info["parameters"].endswith(", Stamp: yes")
        assert "Script key: v 1" in saved.info["parameters"]
        assert saved.convert("RGB").getpixel((3, 3)) == (0, 255, 0)
