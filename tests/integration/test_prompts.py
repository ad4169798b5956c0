"""The A1111 prompt language end to end: emphasis, chunking, schedules and AND on tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import build_studio
from webui.prompts.conditioning import encode_schedule
from webui.prompts.encoder import CHUNK_TOKENS, PromptEncoder
from webui.request import GenerationRequest

SMALL = dict(width=64, height=64, steps=4, seed=21, save_images=False)


@pytest.fixture(scope="module")
def studio(tmp_path_factory, checkpoint_store):
    studio = build_studio(tmp_path_factory.mktemp("prompts"), checkpoint_store, ("sd15", "sdxl-base"))
    yield studio
    studio.stop()


@pytest.fixture
def sd15(studio):
    studio.options.update({"sd_model_checkpoint": "sd15.safetensors"})
    with studio.manager.use() as model:
        yield model.pipe


def image(studio, prompt: str, **extra) -> np.ndarray:
    return np.asarray(studio.generate(GenerationRequest(prompt=prompt, **{**SMALL, **extra})).images[0].image).astype(int)


def token_rows(encoder: PromptEncoder, text: str) -> list[int]:
    """Positions (in the first chunk's 77 rows) of ``text``'s tokens."""
    return list(range(1, 1 + len(encoder.chunks(text)[0].tokens)))


# --- emphasis ----------------------------------------------------------------------------------

def test_no_norm_scales_exactly_the_weighted_tokens(sd15):
    plain = PromptEncoder(sd15, sdxl=False, emphasis="No norm").encode(["a cat"]).embeds
    weighted = PromptEncoder(sd15, sdxl=False, emphasis="No norm").encode(["a (cat:1.5)"]).embeds
    cat_row = 2  # BOS, "a", "cat"
    assert torch.allclose(weighted[0, cat_row], plain[0, cat_row] * 1.5, atol=1e-6)
    others = [r for r in range(77) if r != cat_row]
    assert torch.equal(weighted[0, others], plain[0, others])


def test_original_mode_restores_the_chunk_mean(sd15):
    encoder = PromptEncoder(sd15, sdxl=False, emphasis="Original")
    plain = encoder.encode(["a cat"]).embeds
    weighted = encoder.encode(["a (cat:1.5)"]).embeds
    assert not torch.equal(plain, weighted)
    assert torch.isclose(plain.mean(), weighted.mean(), atol=1e-6)


def test_ignore_and_none_modes(sd15):
    plain = PromptEncoder(sd15, sdxl=False).encode(["a cat"]).embeds
    ignored = PromptEncoder(sd15, sdxl=False, emphasis="Ignore").encode(["a (cat:1.5)"]).embeds
    assert torch.equal(plain, ignored)
    literal = PromptEncoder(sd15, sdxl=False, emphasis="None")
    assert literal.count_tokens("a (cat:1.5)")[0] > PromptEncoder(sd15, sdxl=False).count_tokens("a (cat:1.5)")[0]


def test_a1111_example_weights_reach_the_tokens(sd15):
    encoder = PromptEncoder(sd15, sdxl=False)
    example = "a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."
    tokens = encoder.chunks(example)[0]
    by_word = {sd15.tokenizer.convert_ids_to_tokens(t): w for t, w in zip(tokens.tokens, tokens.weights)}
    # The first "(" is never closed, so everything after it carries ×1.1: "[on]" ends at 1.0,
    # as A1111's own docstring shows (0.909 relative to its surroundings).
    expected = {"house</w>": 1.573, "on</w>": 1.0, "hill</w>": 0.55, "sky</w>": 1.4641}
    assert {k: round(by_word[k], 4) for k in expected} == expected


# --- chunks ------------------------------------------------------------------------------------

def test_long_prompts_chunk_and_count_like_a1111(sd15):
    encoder = PromptEncoder(sd15, sdxl=False)
    assert encoder.count_tokens("a cat") == (2, 75)
    long_prompt = " ".join(["cat"] * 80)
    assert encoder.count_tokens(long_prompt) == (80, 150)
    assert encoder.encode([long_prompt, "short"]).embeds.shape[1] == 2 * 77  # negative padded too


def test_comma_backtrack_moves_the_last_phrase(sd15):
    encoder = PromptEncoder(sd15, sdxl=False, comma_backtrack=20)
    prompt = " ".join(["cat"] * 70) + ", " + " ".join(["dog"] * 10)
    first, second = encoder.chunks(prompt)
    comma = sd15.tokenizer.convert_tokens_to_ids(",</w>")
    assert first.tokens[-1] == comma and len(first.tokens) == 71
    assert len(second.tokens) == 10
    no_backtrack = PromptEncoder(sd15, sdxl=False, comma_backtrack=0).chunks(prompt)
    assert len(no_backtrack[0].tokens) == CHUNK_TOKENS


def test_break_starts_a_new_chunk(sd15):
    encoder = PromptEncoder(sd15, sdxl=False)
    assert [len(c.tokens) for c in encoder.chunks("a cat BREAK a dog")] == [2, 2]


def test_embeddings_are_never_split(sd15):
    tokenizer = sd15.tokenizer
    vectors = [tokenizer.convert_tokens_to_ids(t) for t in ("zebra</w>", "giraffe</w>", "hippo</w>")]
    encoder = PromptEncoder(sd15, sdxl=False, comma_backtrack=0, embedding_ids=frozenset(vectors))
    prompt = " ".join(["cat"] * 74) + " zebra giraffe hippo"
    first, second = encoder.chunks(prompt)
    assert len(first.tokens) == 74 and second.tokens == vectors


# --- schedules and AND ------------------------------------------------------------------------

def test_schedules_encode_each_distinct_text_once_and_switch_at_the_step(sd15):
    plan = encode_schedule(PromptEncoder(sd15, sdxl=False), "a [cat:dog:2] [red|blue]", "", steps=4)
    texts = [plan.texts[plan.rows_at(step)[1][0][0]] for step in range(4)]
    # A1111 numbers schedule steps from 1 and samples from step 0 with "step <= end": the first
    # two sampling steps both use the step-1 text.
    assert texts == ["a cat red", "a cat red", "a cat blue", "a dog red"]
    assert len(plan.texts) == len(set(plan.texts)) == plan.rows.embeds.shape[0]


def test_schedule_changes_the_image_and_a_late_switch_does_not(studio):
    cat, dog = image(studio, "cat"), image(studio, "dog")
    switched = image(studio, "[cat:dog:2]")
    assert not np.array_equal(switched, cat) and not np.array_equal(switched, dog)
    assert np.array_equal(image(studio, "[cat:dog:100]"), cat)


def test_and_combines_parts(studio):
    cat = image(studio, "cat")
    both = image(studio, "cat AND dog")
    assert np.abs(both - cat).mean() > 1
    # A zero-weight part contributes nothing (only batch-size rounding may differ).
    assert np.abs(image(studio, "cat AND dog :0") - cat).max() <= 2


def test_sdxl_schedules_and_and(studio):
    studio.options.update({"sd_model_checkpoint": "sdxl-base.safetensors"})
    try:
        plain = image(studio, "castle")
        assert not np.array_equal(image(studio, "castle AND river :0.7"), plain)
        assert not np.array_equal(image(studio, "[castle:river:1]"), plain)
    finally:
        studio.options.update({"sd_model_checkpoint": "sd15.safetensors"})


def test_comments_are_removed_and_infotext_keeps_the_prompt(studio):
    plain = image(studio, "cat")
    assert np.array_equal(image(studio, "cat # a note for myself"), plain)
    result = studio.generate(GenerationRequest(prompt="(cat:1.2) AND dog", **SMALL))
    assert result.images[0].infotext.startswith("(cat:1.2) AND dog\n")


def test_token_counter_counts_like_a1111(sd15):
    from webui.prompts.conditioning import count_prompt_tokens

    encoder = PromptEncoder(sd15, sdxl=False)
    assert count_prompt_tokens(encoder, "a cat <lora:detail:0.8>") == (2, 75)
    assert count_prompt_tokens(encoder, "[a cat:a very big fluffy cat:5] AND dog") == (5, 75)
    assert count_prompt_tokens(encoder, " ".join(["cat"] * 76)) == (76, 150)
