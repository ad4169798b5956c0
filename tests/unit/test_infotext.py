"""A1111 infotext: writing, parsing, and storage in PNG/JPEG/WEBP files."""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from webui.infotext import (
    build_infotext,
    embed_infotext_png,
    exif_bytes_for,
    parse_infotext,
    quote,
    read_image_infotext,
    save_with_infotext,
)

BASE_PARAMS = {
    "Steps": 20,
    "Sampler": "Euler a",
    "Schedule type": "Automatic",
    "CFG scale": 7.0,
    "Seed": 1234567890,
    "Size": "512x768",
    "Model hash": "6ce0161689",
    "Model": "v1-5-pruned-emaonly",
    "Version": "v1.10.1",
}


def _assert_round_trip(prompt: str, negative: str, params: dict[str, object]) -> dict[str, object]:
    text = build_infotext(prompt, negative, params)
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == negative
    for key, value in params.items():
        if value is None:
            assert key not in parsed or key in ("Clip skip",)
            continue
        assert parsed[key] == value, (key, text)
        assert type(parsed[key]) is type(value), (key, text)
    return parsed


ROUND_TRIP_CASES = [
    ("a cat", "", {}),
    ("a cat, sitting on a mat, (masterpiece:1.2)", "blurry, lowres", {}),
    ("key: value, other: thing, third: one", "x: y, z: w, q: r", {}),
    ('a "quoted" word and a \\ backslash', 'neg "with" quotes', {}),
    ("日本語のプロンプト, café, emoji 🐱", "ненужное, 低品質", {}),
    ("line one\nline two, with comma\nline three: colon", "", {}),
    ("prompt", "first negative line\nsecond negative line\nthird: line", {}),
    ("", "only a negative", {}),
    ("", "", {}),
    ("prompt\n\nwith empty middle line", "neg\n\nwith gap", {}),
    (
        "p",
        "n",
        {
            "Model": "my, model: v2",
            "VAE": 'starts with " quote',
            "Hires upscaler": '"fully quoted"',
            "User": "multi\nline",
            "Lora hashes": "detail: 1a2b3c, style: 9f8e7d",
        },
    ),
    ("p", "n", {"Denoising strength": 0.45, "Clip skip": 2, "Tiling": True, "Variation seed strength": 1e-05}),
    ("p", "n", {"Seed resize from": "640x480", "Variation seed": 42, "Model hash": "12345678"}),
    ("p", "n", {"Model": "  padded  ", "VAE": "", "Version": "007"}),
    ("p", "n", {"Model": "x", "Steps": None, "Seed": 5}),
]


@pytest.mark.parametrize(("prompt", "negative", "extra"), ROUND_TRIP_CASES)
def test_round_trip(prompt: str, negative: str, extra: dict[str, object]) -> None:
    _assert_round_trip(prompt, negative, {**BASE_PARAMS, **extra})


def test_layout_matches_a1111() -> None:
    text = build_infotext(
        "a photo of a cat",
        "blurry",
        {"Steps": 20, "Sampler": "Euler a", "CFG scale": 7.0, "Seed": 1, "Size": "512x512", "Clip skip": None},
    )
    assert text == (
        "a photo of a cat\n"
        "Negative prompt: blurry\n"
        "Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 1, Size: 512x512"
    )


def test_empty_negative_omits_line() -> None:
    text = build_infotext("p", "", {"Steps": 1, "Seed": 2, "CFG scale": 3})
    assert text == "p\nSteps: 1, Seed: 2, CFG scale: 3"
    assert "Negative prompt" not in text


def test_quote_rules() -> None:
    assert quote("Euler a") == "Euler a"
    assert quote("a, b") == '"a, b"'
    assert quote("a: b") == '"a: b"'
    assert quote("a\nb") == '"a\\nb"'
    assert quote('say "hi"') == 'say "hi"'  # inner quotes: A1111 leaves these bare
    assert quote('"hi"') == '"\\"hi\\""'
    assert quote("ünïcode, x") == '"ünïcode, x"'  # ensure_ascii=False as in A1111
    assert build_infotext("p", "", {"Aa": True, "Bb": False, "Cc": 1}) == "p\nAa: True, Bb: False, Cc: 1"


def test_value_equal_to_key_is_written_bare() -> None:
    assert build_infotext("p", "", {"Steps": 1, "NGMS": "NGMS", "Seed": 2}) == "p\nSteps: 1, NGMS, Seed: 2"


def test_bad_key_rejected() -> None:
    with pytest.raises(ValueError):
        build_infotext("p", "", {"bad,key": 1})
    with pytest.raises(ValueError):
        build_infotext("p", "", {"A": 1})  # A1111 keys are at least two characters


A1111_SAMPLE = (
    "masterpiece, best quality, 1girl, (smile:1.2), <lora:detail:0.6>\n"
    "looking at viewer\n"
    "Negative prompt: lowres, bad anatomy, (worst quality:1.4)\n"
    "Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3829102211, "
    "Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Denoising strength: 0.45, "
    'Clip skip: 2, Hires upscale: 2, Hires steps: 10, Hires upscaler: Latent, '
    'Lora hashes: "detail: 1a2b3c4d5e6f", Version: v1.10.1'
)


def test_real_a1111_sample() -> None:
    assert parse_infotext(A1111_SAMPLE) == {
        "Prompt": "masterpiece, best quality, 1girl, (smile:1.2), <lora:detail:0.6>\nlooking at viewer",
        "Negative prompt": "lowres, bad anatomy, (worst quality:1.4)",
        "Steps": 28,
        "Sampler": "DPM++ 2M",
        "Schedule type": "Karras",
        "CFG scale": 6.5,
        "Seed": 3829102211,
        "Size": "512x768",
        "Size-1": 512,
        "Size-2": 768,
        "Model hash": "6ce0161689",
        "Model": "v1-5-pruned-emaonly",
        "Denoising strength": 0.45,
        "Clip skip": 2,
        "Hires upscale": 2,
        "Hires steps": 10,
        "Hires upscaler": "Latent",
        "Lora hashes": "detail: 1a2b3c4d5e6f",
        "Version": "v1.10.1",
        # defaults A1111 fills in
        "Hires resize-1": 0,
        "Hires resize-2": 0,
        "Hires sampler": "Use same sampler",
        "Hires checkpoint": "Use same checkpoint",
        "Hires prompt": "",
        "Hires negative prompt": "",
        "RNG": "GPU",
        "Schedule max sigma": 0,
        "Schedule min sigma": 0,
        "Schedule rho": 0,
        "VAE Encoder": "Full",
        "VAE Decoder": "Full",
        "FP8 weight": "Disable",
    }


def test_old_infotext_defaults_and_combined_sampler() -> None:
    old = (
        "girl with an artist's beret, determined, blue eyes\n"
        "Negative prompt: ugly, fat\n"
        "Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7, Seed: 965400086, Size: 512x512, Model hash: 45dee52b"
    )
    parsed = parse_infotext(old)
    assert parsed["Sampler"] == "DPM++ 2M"
    assert parsed["Schedule type"] == "Karras"
    assert parsed["Clip skip"] == 1
    assert parsed["CFG scale"] == 7
    assert parsed["Model hash"] == "45dee52b"
    assert (parsed["Size-1"], parsed["Size-2"]) == (512, 512)


@pytest.mark.parametrize(
    ("sampler", "schedule", "want_sampler", "want_schedule"),
    [
        ("Euler a", None, "Euler a", "Automatic"),
        ("DPM2 a Karras", None, "DPM2 a", "Karras"),
        ("LMS Karras", None, "LMS", "Karras"),
        ("DPM++ 2M SDE Exponential", None, "DPM++ 2M SDE", "Exponential"),
        ("DPM++ 2M SDE Heun", None, "DPM++ 2M SDE Heun", "Automatic"),  # not a schedule suffix
        ("Euler SGM Uniform", None, "Euler", "SGM Uniform"),
        ("DPM++ 2M Karras", "Exponential", "DPM++ 2M", "Exponential"),  # explicit wins
        ("DPM++ 2M Karras", "Automatic", "DPM++ 2M", "Karras"),
        ("Some Plugin Sampler Karras", None, "Some Plugin Sampler Karras", "Automatic"),  # unknown: untouched
    ],
)
def test_combined_sampler_split(sampler: str, schedule: str | None, want_sampler: str, want_schedule: str) -> None:
    params: dict[str, object] = {"Steps": 20, "Sampler": sampler, "CFG scale": 7, "Seed": 1}
    if schedule is not None:
        params["Schedule type"] = schedule
    parsed = parse_infotext(build_infotext("p", "", params))
    assert parsed["Sampler"] == want_sampler
    assert parsed["Schedule type"] == want_schedule


def test_last_line_needs_three_pairs() -> None:
    parsed = parse_infotext("a portrait\nstyle: oil, mood: calm")
    assert parsed["Prompt"] == "a portrait\nstyle: oil, mood: calm"
    assert "style" not in parsed and "mood" not in parsed
    parsed = parse_infotext("a portrait\nstyle: oil, mood: calm, light: soft")
    assert parsed["Prompt"] == "a portrait"
    assert parsed["style"] == "oil" and parsed["light"] == "soft"
    # A single line with fewer than three pairs is all prompt.
    assert parse_infotext("a: b, c: d")["Prompt"] == "a: b, c: d"


def test_size_split() -> None:
    parsed = parse_infotext("p\nSteps: 20, Size: 512x768, Seed resize from: 640x480, Seed: 3")
    assert parsed["Size-1"] == 512 and parsed["Size-2"] == 768
    assert parsed["Seed resize from-1"] == 640 and parsed["Seed resize from-2"] == 480
    assert parsed["Size"] == "512x768"


def test_number_typing() -> None:
    parsed = parse_infotext(
        "p\nSteps: 20, CFG scale: 7.5, Seed: -1, Eta: 1e-05, Code: 007, Model hash: 12345678, Model: 1234, Tiling: True"
    )
    assert parsed["Steps"] == 20 and isinstance(parsed["Steps"], int)
    assert parsed["CFG scale"] == 7.5
    assert parsed["Seed"] == -1
    assert parsed["Eta"] == 1e-05
    assert parsed["Code"] == "007"
    assert parsed["Model hash"] == "12345678"
    assert parsed["Model"] == "1234"
    assert parsed["Tiling"] is True


def test_crlf_and_whitespace() -> None:
    parsed = parse_infotext("  a cat\r\nNegative prompt: dog\r\nSteps: 20, Seed: 1, CFG scale: 7\r\n")
    assert parsed["Prompt"] == "a cat"
    assert parsed["Negative prompt"] == "dog"
    assert parsed["Steps"] == 20


# --- image files ---------------------------------------------------------------------------------

TEXT = build_infotext("a cat, ünïcode 猫", "blurry\nsecond line", BASE_PARAMS)


def _image() -> Image.Image:
    return Image.new("RGB", (16, 16), (200, 10, 10))


def test_png_round_trip_through_file(tmp_path) -> None:
    path = tmp_path / "out.png"
    _image().save(path, pnginfo=embed_infotext_png(TEXT))
    with Image.open(path) as img:
        assert read_image_infotext(img) == TEXT
        assert parse_infotext(read_image_infotext(img) or "")["Seed"] == BASE_PARAMS["Seed"]


def test_png_latin1_uses_text_chunk(tmp_path) -> None:
    path = tmp_path / "plain.png"
    _image().save(path, pnginfo=embed_infotext_png("plain ascii\nSteps: 1, Seed: 2, CFG scale: 3"))
    data = path.read_bytes()
    assert b"tEXtparameters" in data
    with Image.open(path) as img:
        assert read_image_infotext(img) == "plain ascii\nSteps: 1, Seed: 2, CFG scale: 3"


@pytest.mark.parametrize("fmt", ["JPEG", "WEBP"])
def test_exif_round_trip(tmp_path, fmt: str) -> None:
    path = tmp_path / f"out.{fmt.lower()}"
    _image().save(path, format=fmt, exif=exif_bytes_for(TEXT))
    with Image.open(path) as img:
        assert read_image_infotext(img) == TEXT


def test_exif_user_comment_header() -> None:
    import piexif

    exif = piexif.load(exif_bytes_for("hi"))
    comment = exif["Exif"][piexif.ExifIFD.UserComment]
    assert comment.startswith(b"UNICODE\x00")
    assert comment[8:] == "hi".encode("utf-16-be")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_save_with_infotext(fmt: str) -> None:
    buf = io.BytesIO()
    save_with_infotext(_image(), buf, fmt, TEXT)
    buf.seek(0)
    with Image.open(buf) as img:
        assert read_image_infotext(img) == TEXT


def test_no_infotext() -> None:
    buf = io.BytesIO()
    _image().save(buf, format="PNG")
    buf.seek(0)
    with Image.open(buf) as img:
        assert read_image_infotext(img) is None


def test_broken_exif_is_ignored() -> None:
    img = _image()
    img.info["exif"] = b"Exif\x00\x00garbage"
    img.info["parameters"] = "fallback"
    assert read_image_infotext(img) == "fallback"


# --- properties ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_parse_never_raises(text: str) -> None:
    parsed = parse_infotext(text)
    assert isinstance(parsed["Prompt"], str)
    assert isinstance(parsed["Negative prompt"], str)


_fragment = st.one_of(
    st.text(max_size=20),
    st.sampled_from(['"', '\\"', ": ", ", ", "\n", "Negative prompt:", "Size: 5x7", "Sampler: DPM++ 2M Karras", "\r"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_fragment, max_size=30))
def test_parse_never_raises_on_param_like_text(parts: list[str]) -> None:
    parse_infotext("".join(parts))


_line = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"), min_size=1, max_size=30
).filter(lambda s: s == s.strip() and not s.startswith("Negative prompt:"))
_block = st.lists(_line, max_size=3).map("\n".join)
_free_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)


@settings(max_examples=200, deadline=None)
@given(
    prompt=_block,
    negative=_block,
    steps=st.integers(1, 150),
    seed=st.integers(-1, 2**32),
    cfg=st.floats(0, 30, allow_nan=False),
    model=_free_text,
    vae=_free_text,
    tiling=st.booleans(),
)
def test_round_trip_property(
    prompt: str, negative: str, steps: int, seed: int, cfg: float, model: str, vae: str, tiling: bool
) -> None:
    params: dict[str, object] = {
        "Steps": steps, "CFG scale": cfg, "Seed": seed, "Model": model, "VAE": vae, "Tiling": tiling,
    }
    params = {k: v for k, v in params.items() if v != k}
    _assert_round_trip(prompt, negative, params)
