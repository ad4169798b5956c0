"""The offline CLIP tokenizers under configs/tokenizers/ (built by tools/build_tokenizers.py).

Reference: open_clip's SimpleTokenizer, i.e. OpenAI's original BPE code, which is what
SD1 (via CLIP), SD2 and SDXL's bigG encoder were trained with.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.util
import sys
from pathlib import Path

import pytest
from transformers import CLIPTokenizer

REPO = Path(__file__).resolve().parents[2]
TOK_DIR = REPO / "configs" / "tokenizers"
BOS, EOS = 49406, 49407

open_clip_tokenizer = pytest.importorskip("open_clip.tokenizer")

PROMPTS = [
    "a photo of an astronaut riding a horse",
    "A Photo Of An Astronaut Riding A Horse On MARS",
    "masterpiece, best quality, (ultra detailed:1.2), [cinematic lighting], {bokeh}",
    "it's a dog's life; they're here, we've won, I'm sure you'll see, he'd go",
    "Hello, World!!! What?! ... --- ___ ###",
    "1girl, 2boys, 3840x2160, 35mm f/1.8, ISO-100, 1/250s, 0.5",
    "year 1999 vs 2024: 42% off, $19.99 #1 @home",
    "a cat 🐱 and a dog 🐶 having fun 😀🎉",
    "café au lait, naïve façade, Zürich, smörgåsbord",
    "東京の夜景, 서울 야경, ночной город, مدينة",
    "a_snake_case_tag and a-kebab-case-tag and CamelCaseWord",
    "x <|endoftext|> y",
    "   leading and trailing   spaces  with   gaps   ",
    "a !",
    "!",
    (
        "an extremely long prompt describing a vast fantasy landscape with towering mountains, "
        "winding rivers, ancient ruins covered in moss, a glowing castle on a distant hill, "
        "flocks of birds crossing a sunset sky painted in orange, purple and gold, soft volumetric "
        "fog rolling through a pine forest, a lone traveller with a lantern walking a stone path, "
        "highly detailed, intricate, digital painting, artstation, concept art, sharp focus, "
        "illustration, art by many artists, trending, award winning, 8k resolution"
    ),
]


@pytest.fixture(scope="module")
def reference():
    return open_clip_tokenizer.SimpleTokenizer()


@pytest.fixture(scope="module", params=["clip", "openclip"])
def tok(request) -> CLIPTokenizer:
    t = CLIPTokenizer.from_pretrained(str(TOK_DIR / request.param), local_files_only=True)
    t.kind = request.param
    return t


def _unchanged_by_open_clip_cleanup(text: str) -> bool:
    """open_clip runs ftfy + html.unescape before BPE; only compare inputs those leave alone."""
    return open_clip_tokenizer._clean_lower(text) == " ".join(text.split()).lower()


@pytest.mark.parametrize("kind", ["clip", "openclip"])
def test_loads_offline_with_expected_specials(kind):
    t = CLIPTokenizer.from_pretrained(str(TOK_DIR / kind), local_files_only=True)
    assert len(t) == 49408
    assert t.model_max_length == 77
    assert (t.bos_token, t.bos_token_id) == ("<|startoftext|>", BOS)
    assert (t.eos_token, t.eos_token_id) == ("<|endoftext|>", EOS)
    assert t.unk_token_id == EOS
    if kind == "clip":
        assert (t.pad_token, t.pad_token_id) == ("<|endoftext|>", EOS)
    else:
        assert (t.pad_token, t.pad_token_id) == ("!", 0)
    assert t.convert_ids_to_tokens([0, 255, 256, 511]) == ["!", "\u0143", "!</w>", "\u0143</w>"]


def test_prompts_are_valid_reference_inputs():
    for p in PROMPTS:
        assert _unchanged_by_open_clip_cleanup(p), p


@pytest.mark.parametrize("prompt", PROMPTS)
def test_ids_match_open_clip(tok, reference, prompt):
    if tok.kind == "clip" and "<|endoftext|>" in prompt:
        # HF's CLIP tokenizer (as used by SD1 tooling) reads a literal special token as the
        # token itself; OpenCLIP spells its specials differently and BPE-encodes the text.
        assert tok(prompt, add_special_tokens=False).input_ids.count(EOS) == 1
        return
    expected = reference.encode(prompt)
    ids = tok(prompt, add_special_tokens=False, verbose=False).input_ids
    assert ids == expected
    assert tok(prompt, verbose=False).input_ids == [BOS, *expected, EOS]


def test_pad_to_77(tok, reference):
    enc = tok(["a cat!", "a photo of an astronaut riding a horse"], padding="max_length", max_length=77)
    pad = EOS if tok.kind == "clip" else 0
    for ids, prompt in zip(enc.input_ids, ["a cat!", "a photo of an astronaut riding a horse"]):
        body = reference.encode(prompt)
        assert len(ids) == 77
        assert ids[: len(body) + 2] == [BOS, *body, EOS]
        assert set(ids[len(body) + 2 :]) == {pad}
    mask = enc.attention_mask[0]
    assert sum(mask) == len(reference.encode("a cat!")) + 2


def test_truncates_to_77_with_eos(tok):
    ids = tok(PROMPTS[-1] * 2, padding="max_length", max_length=77, truncation=True).input_ids
    assert len(ids) == 77 and ids[0] == BOS and ids[-1] == EOS


def test_exclamation_mark_is_not_swallowed_by_pad_token(reference):
    # "!" is openclip's pad token; it must still encode as OpenCLIP does inside a prompt.
    t = CLIPTokenizer.from_pretrained(str(TOK_DIR / "openclip"), local_files_only=True)
    assert t("wow!!!", add_special_tokens=False).input_ids == reference.encode("wow!!!")
    assert t("cat!", add_special_tokens=False).input_ids == reference.encode("cat!") == [2368, 256]


def test_both_dirs_share_the_same_bpe():
    for name in ("vocab.json", "merges.txt"):
        assert (TOK_DIR / "clip" / name).read_bytes() == (TOK_DIR / "openclip" / name).read_bytes()
    assert (TOK_DIR / "clip" / "merges.txt").read_text(encoding="utf-8").startswith("#version: 0.2\n")


def test_generator_reproduces_shipped_files(tmp_path):
    spec = importlib.util.spec_from_file_location("build_tokenizers", REPO / "tools" / "build_tokenizers.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_tokenizers", mod)
    spec.loader.exec_module(mod)
    written = mod.build(mod.default_bpe_path(), tmp_path)
    assert len(written) == 8
    for path in written:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (TOK_DIR / rel).read_bytes(), f"{rel} differs: rerun tools/build_tokenizers.py"
