"""A1111's "parameters" text (infotext): writing, parsing, and carrying it in image files.

Format, as A1111 writes it (``modules/processing.py`` ``create_infotext``)::

    <prompt, possibly several lines>
    Negative prompt: <negative prompt, possibly several lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7.0, Seed: 1, Size: 512x512, ...

The negative line is left out when the negative prompt is empty; parameters whose value is None
are left out; a value equal to its key is written as the bare key; values containing ``,``,
``:`` or a newline are JSON-quoted (``quote()`` in ``modules/infotext_utils.py``). The whole
text is stripped.

Parsing follows ``parse_generation_parameters``: the last line holds the parameters only when
A1111's parameter regex finds at least 3 ``key: value`` pairs on it, otherwise it belongs to the
prompt; a line starting with "Negative prompt:" starts the (multi-line) negative prompt.

Where this module goes beyond A1111, on purpose:

* Writing also JSON-quotes values that start with ``"``, are empty, or have leading/trailing
  whitespace; A1111 would write them bare and its own parser would alter them (strip or unquote
  them, or drop an empty value). Such values are rare and A1111 reads the quoted form back
  correctly, so texts stay compatible while round trips become exact.
* Parsed values are typed: decimal integers and floats become ``int``/``float`` (strings such as
  "007" or hashes stay strings; so do keys that are always names, hashes or prompts), ``True`` /
  ``False`` become booleans. A1111 keeps strings and lets each UI field cast.
* ``WxH`` values yield ``<key>-1``/``<key>-2`` as ints (as A1111) and the original ``<key>`` string
  is kept too.
* A combined sampler such as "DPM++ 2M Karras" is split into ``Sampler: DPM++ 2M`` and
  ``Schedule type: Karras`` (A1111 does this when pasting; it would then show "Automatic" because
  Karras is DPM++ 2M's default, which means the same thing). An explicit "Schedule type" other
  than Automatic wins over the suffix.
* Not done: A1111's style extraction, version-based back-compat flags (our own "Version" is
  not A1111's), and img2img-only defaults (mask mode, inpaint area, ...: the paste fills those,
  webui/ui/paste_fields.py).
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Mapping

from PIL import Image
from PIL.PngImagePlugin import PngInfo

__all__ = [
    "NEGATIVE_PROMPT_PREFIX",
    "build_infotext",
    "embed_infotext_png",
    "exif_bytes_for",
    "parse_infotext",
    "quote",
    "read_image_infotext",
    "save_with_infotext",
    "unquote",
]

NEGATIVE_PROMPT_PREFIX = "Negative prompt:"

# A1111's parameter regex (modules/infotext_utils.py): a key (a word character, then word
# characters, spaces, hyphens or slashes), a colon, then a JSON-style quoted string or anything
# up to the next comma.
_RE_PARAM = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')
# Whitespace, then a maximal run of key characters (group 1): where a key could be.
_RE_KEY_RUN = re.compile(r"\s*([\w \-/]*)")
_RE_WORD = re.compile(r"\w")
_RE_IMAGESIZE = re.compile(r"^(\d+)x(\d+)$")
_RE_KEY = re.compile(r"\w[\w \-/]+")
_RE_INT = re.compile(r"-?(?:0|[1-9]\d*)")
_RE_FLOAT = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)")

# Keys whose values are names, hashes or free text: never turned into numbers or booleans.
_TEXT_KEYS = frozenset({
    "Prompt", "Negative prompt", "Sampler", "Schedule type", "Model", "VAE", "Version", "User",
    "Hires upscaler", "Hires sampler", "Hires schedule type", "Hires checkpoint", "Hires prompt",
    "Hires negative prompt", "Refiner", "RNG", "Face restoration", "Lora hashes", "TI hashes",
    "Hashes", "Emphasis", "Styles array",
})

# Defaults A1111's parser fills in when the text lacks them (those that matter for txt2img).
_DEFAULTS: tuple[tuple[str, object], ...] = (
    ("Clip skip", 1),
    ("Hires resize-1", 0),
    ("Hires resize-2", 0),
    ("Hires sampler", "Use same sampler"),
    ("Hires checkpoint", "Use same checkpoint"),
    ("Hires prompt", ""),
    ("Hires negative prompt", ""),
    ("RNG", "GPU"),
    ("Schedule type", "Automatic"),
    ("Schedule max sigma", 0),
    ("Schedule min sigma", 0),
    ("Schedule rho", 0),
    ("VAE Encoder", "Full"),
    ("VAE Decoder", "Full"),
    ("FP8 weight", "Disable"),
)


def quote(value: object) -> str:
    """A1111's ``quote()``, plus quoting of values its parser would otherwise alter."""
    text = value if isinstance(value, str) else str(value)
    needs = (
        "," in text or "\n" in text or ":" in text  # A1111's own rule
        or text == "" or text.startswith('"') or text != text.strip() or "\r" in text
    )
    return json.dumps(text, ensure_ascii=False) if needs else text


def unquote(text: str) -> str:
    """A1111's ``unquote()``: JSON-decode a value in double quotes, else return it unchanged."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else text


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    return str(value)


def build_infotext(prompt: str, negative_prompt: str, params: Mapping[str, object]) -> str:
    """The infotext for one image; ``params`` in the order the caller wants them written."""
    parts = []
    for key, value in params.items():
        if value is None:
            continue
        if not _RE_KEY.fullmatch(key):
            raise ValueError(f"infotext key {key!r} cannot be parsed back (A1111 key syntax: {_RE_KEY.pattern})")
        text = _format_value(value)
        parts.append(key if key == text else f"{key}: {quote(text)}")
    negative = f"\n{NEGATIVE_PROMPT_PREFIX} {negative_prompt}" if negative_prompt else ""
    return f"{prompt}{negative}\n{', '.join(parts)}".strip()


def _typed(key: str, value: str) -> object:
    if key in _TEXT_KEYS or "hash" in key.casefold():
        return value
    if _RE_INT.fullmatch(value):
        return int(value)
    if _RE_FLOAT.fullmatch(value):
        return float(value)
    if value in ("True", "False"):
        return value == "True"
    return value


def _split_sampler(res: dict[str, object], sampler_key: str, schedule_key: str) -> None:
    name = res.get(sampler_key)
    if not isinstance(name, str):
        return
    from webui.samplers import split_combined_name

    found = split_combined_name(name)
    if found is None or found[1] is None:
        return
    spec, suffix = found
    res[sampler_key] = spec.name
    current = res.get(schedule_key)
    if current is None or (isinstance(current, str) and current.casefold() == "automatic"):
        res[schedule_key] = suffix


def _find_params(line: str) -> list[tuple[str, str]]:
    """``_RE_PARAM.findall(line)`` in linear time.

    ``findall`` alone is quadratic: from each position of a long key-like run without a colon
    ("a a a ...") the key part scans to the end of the run and fails, holding the GIL for
    seconds. A key must end where its run of key characters ends, so the run is scanned once:
    a run not followed by ":" is skipped whole, and ``_RE_PARAM`` is only tried where it matches.
    """
    found: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        run = _RE_KEY_RUN.match(line, pos)
        assert run is not None  # the pattern matches any text
        start, end = run.span(1)
        word = _RE_WORD.search(line, start, end)
        if word is not None and word.start() > start:
            pos = word.start()  # a key starts with a word character: "-ab: 1" has the key "ab"
        elif word is not None and end - start >= 2 and line.startswith(":", end):
            match = _RE_PARAM.match(line, pos)
            assert match is not None  # key found above; the value part matches any text
            found.append((match.group(1), match.group(2)))
            pos = match.end()
        else:  # no key ends in this run: every start inside it fails the same way
            pos = max(end, pos + 1)
    return found


def _old_hires_sizes(res: dict[str, object]) -> None:
    """Before A1111 v1.0, hires texts gave the final size as "Size" and the first pass as "First
    pass size" (0x0: A1111 then picked a first pass near 512x512 pixels, rounded up to 64)."""
    first_w, first_h = res.get("First pass size-1"), res.get("First pass size-2")
    if not isinstance(first_w, int) or not isinstance(first_h, int):
        return
    width, height = res.get("Size-1", 512), res.get("Size-2", 512)
    if not isinstance(width, int) or not isinstance(height, int) or width <= 0 or height <= 0:
        return
    if first_w == 0 or first_h == 0:
        scale = math.sqrt(512 * 512 / (width * height))
        first_w, first_h = math.ceil(scale * width / 64) * 64, math.ceil(scale * height / 64) * 64
    res["Size-1"], res["Size-2"], res["Size"] = first_w, first_h, f"{first_w}x{first_h}"
    res["Hires resize-1"], res["Hires resize-2"] = width, height


def parse_infotext(text: str) -> dict[str, object]:
    """Parse an infotext into a dict of values, as A1111's ``parse_generation_parameters``."""
    res: dict[str, object] = {}
    prompt = ""
    negative_prompt = ""
    done_with_prompt = False

    *lines, lastline = text.strip().split("\n")
    if len(_find_params(lastline)) < 3:
        lines.append(lastline)
        lastline = ""

    for line in lines:
        line = line.strip()
        if line.startswith(NEGATIVE_PROMPT_PREFIX):
            done_with_prompt = True
            line = line[len(NEGATIVE_PROMPT_PREFIX):].strip()
        if done_with_prompt:
            negative_prompt += ("" if negative_prompt == "" else "\n") + line
        else:
            prompt += ("" if prompt == "" else "\n") + line

    res["Prompt"] = prompt
    res["Negative prompt"] = negative_prompt

    for key, raw in _find_params(lastline):
        if not raw:
            continue  # A1111 drops empty values (its v[0] raises and is caught)
        quoted = raw[0] == '"' and raw[-1] == '"' and len(raw) >= 2
        value = unquote(raw) if quoted else raw
        size = _RE_IMAGESIZE.match(value)
        if size is not None:
            res[f"{key}-1"] = int(size.group(1))
            res[f"{key}-2"] = int(size.group(2))
            res[key] = value
        elif quoted:
            res[key] = value  # written quoted: it was a string
        else:
            res[key] = _typed(key, value)

    _split_sampler(res, "Sampler", "Schedule type")
    _split_sampler(res, "Hires sampler", "Hires schedule type")
    hypernet = res.get("Hypernet")
    if hypernet is not None:  # written before hypernetworks were prompt tags: put the tag back
        res["Prompt"] = f"{res['Prompt']}<hypernet:{hypernet}:{res.get('Hypernet strength', '1.0')}>"
    _old_hires_sizes(res)

    for key, default in _DEFAULTS:
        res.setdefault(key, default)
    return res


# ---------------------------------------------------------------------------------------------
# Image files


def embed_infotext_png(infotext: str | None, pnginfo: PngInfo | None = None) -> PngInfo:
    """A ``PngInfo`` carrying ``parameters`` (tEXt, or iTXt when it is not Latin-1, as PIL picks)."""
    info = pnginfo if pnginfo is not None else PngInfo()
    if infotext:
        info.add_text("parameters", infotext)
    return info


def exif_bytes_for(infotext: str | None) -> bytes:
    """EXIF for JPEG/WEBP with the infotext as UserComment, as A1111 writes it via piexif."""
    import piexif
    import piexif.helper

    comment = piexif.helper.UserComment.dump(infotext or "", encoding="unicode")
    return piexif.dump({"Exif": {piexif.ExifIFD.UserComment: comment}})


def _exif_user_comment(exif: bytes) -> str | None:
    import piexif
    import piexif.helper

    try:
        data = piexif.load(exif)
    except Exception:  # piexif raises assorted errors on malformed data
        return None
    comment = (data or {}).get("Exif", {}).get(piexif.ExifIFD.UserComment, b"")
    if not comment:
        return None
    try:
        return piexif.helper.UserComment.load(comment)
    except ValueError:
        return comment.decode("utf8", errors="ignore") if isinstance(comment, bytes) else None


def read_image_infotext(image: Image.Image) -> str | None:
    """The infotext stored in an image: PNG ``parameters`` text, else EXIF UserComment."""
    info = dict(image.info or {})
    text = info.get("parameters")
    exif = info.get("exif")
    if isinstance(exif, (bytes, bytearray)) and exif:
        comment = _exif_user_comment(bytes(exif))
        if comment:
            text = comment  # A1111 prefers the EXIF comment when there is one
    if isinstance(text, bytes):
        text = text.decode("utf8", errors="ignore")
    return text if isinstance(text, str) and text else None


def save_with_infotext(image: Image.Image, fp: str | io.BytesIO, fmt: str, infotext: str | None, **kwargs: object) -> None:
    """Save ``image`` as PNG/JPEG/WEBP with the infotext embedded the way A1111 does."""
    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt == "PNG":
        image.save(fp, format="PNG", pnginfo=embed_infotext_png(infotext), **kwargs)
    elif fmt in ("JPEG", "WEBP"):
        if fmt == "JPEG" and image.mode not in ("RGB", "L"):
            image = image.convert("RGB")
        image.save(fp, format=fmt, exif=exif_bytes_for(infotext), **kwargs)
    else:
        image.save(fp, format=fmt, **kwargs)
