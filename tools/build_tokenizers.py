#!/usr/bin/env python
"""Build the offline CLIP tokenizer directories under configs/tokenizers/.

The BPE data is taken from the ``bpe_simple_vocab_16e6.txt.gz`` file that ships
inside the installed ``open_clip`` package (the same file OpenAI's CLIP uses).
Nothing is downloaded.  The output is deterministic: running this twice gives
byte-identical files.

Vocabulary layout (identical to OpenAI's simple tokenizer):

    ids 0..255       the 256 byte-to-unicode characters
    ids 256..511     the same characters with "</w>" appended
    ids 512..49405   each merge pair joined, in merge order (48894 merges)
    id  49406        <|startoftext|>
    id  49407        <|endoftext|>

Two tokenizers are written, differing only in the padding token:

    configs/tokenizers/clip/      pad = <|endoftext|> (49407)  SD1.x, SDXL encoder 1
    configs/tokenizers/openclip/  pad = "!" (0)                SD2.x, SDXL encoder 2 (bigG)

The openclip/ config also sets ``split_special_tokens: true`` so that a "!"
typed in a prompt is BPE-encoded as OpenCLIP does instead of being matched as
the pad token (see ``tokenizer_config`` below).

Usage:
    .venv/bin/python tools/build_tokenizers.py [--bpe PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "configs" / "tokenizers"

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MODEL_MAX_LENGTH = 77
VOCAB_SIZE = 49408
# Number of merges used by CLIP: 49152 - 256 (bytes) - 2 (specials) == 48894,
# read from lines 1..48894 of the gz file (line 0 is a version header).
N_MERGES = 49152 - 256 - 2

# (directory name, pad token)
TOKENIZERS = (
    ("clip", EOS),
    ("openclip", "!"),
)


def default_bpe_path() -> Path:
    """Locate the BPE file inside the installed open_clip package without importing it."""
    import importlib.util

    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("open_clip is not installed; pass --bpe PATH")
    for loc in spec.submodule_search_locations:
        candidate = Path(loc) / "bpe_simple_vocab_16e6.txt.gz"
        if candidate.is_file():
            return candidate
    raise SystemExit("bpe_simple_vocab_16e6.txt.gz not found in open_clip; pass --bpe PATH")


def byte_unicode_table() -> list[str]:
    """The reversible byte -> printable unicode char mapping used by GPT-2/CLIP BPE.

    Returned as a list in the order CLIP uses for the first 256 vocab ids:
    printable bytes first (in byte order), then the remaining bytes mapped
    to code points 256, 257, ... in byte order.
    """
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    byte_ids = list(printable)
    code_points = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            byte_ids.append(b)
            code_points.append(256 + extra)
            extra += 1
    return [chr(c) for c in code_points]


def read_merges(bpe_path: Path) -> list[tuple[str, str]]:
    with gzip.open(bpe_path, "rb") as fh:
        lines = fh.read().decode("utf-8").split("\n")
    selected = lines[1 : N_MERGES + 1]
    merges: list[tuple[str, str]] = []
    for lineno, line in enumerate(selected, start=1):
        parts = line.split()
        if len(parts) != 2:
            raise SystemExit(f"{bpe_path}: malformed merge on line {lineno}: {line!r}")
        merges.append((parts[0], parts[1]))
    if len(merges) != N_MERGES:
        raise SystemExit(f"{bpe_path}: expected {N_MERGES} merges, found {len(merges)}")
    return merges


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    tokens = byte_unicode_table()
    tokens = tokens + [t + "</w>" for t in tokens]
    tokens += [a + b for a, b in merges]
    tokens += [BOS, EOS]
    vocab: dict[str, int] = {}
    for idx, tok in enumerate(tokens):
        if tok in vocab:
            raise SystemExit(f"duplicate vocab entry {tok!r} at {idx}")
        vocab[tok] = idx
    if len(vocab) != VOCAB_SIZE:
        raise SystemExit(f"vocab size {len(vocab)} != {VOCAB_SIZE}")
    return vocab


def _special(content: str) -> dict:
    return {
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def tokenizer_config(pad: str) -> dict:
    cfg = {
        "add_prefix_space": False,
        "bos_token": _special(BOS),
        "clean_up_tokenization_spaces": True,
        "do_lower_case": True,
        "eos_token": _special(EOS),
        "errors": "replace",
        "model_max_length": MODEL_MAX_LENGTH,
        "pad_token": pad if pad != EOS else _special(EOS),
        "tokenizer_class": "CLIPTokenizer",
        "unk_token": _special(EOS),
    }
    if pad != EOS:
        # A pad token that is an ordinary vocab entry ("!") gets registered as a
        # special added token, and the fast tokenizer would then cut every "!"
        # out of the prompt as id 0 ("!!!" -> 0 0 0 instead of 995, "cat!" ->
        # ... 0 instead of "!</w>" 256).  OpenCLIP (which SD2/SDXL were trained
        # with) never does that, so special tokens are not matched inside the
        # text; bos/eos/pad are still inserted by id by the post-processor and
        # the padding code.
        cfg["split_special_tokens"] = True
    return cfg


def special_tokens_map(pad: str) -> dict:
    return {
        "bos_token": _special(BOS),
        "eos_token": _special(EOS),
        "pad_token": pad if pad != EOS else _special(EOS),
        "unk_token": _special(EOS),
    }


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # newline="\n" keeps output identical on every platform.
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


def _dump_json(obj, *, indent: int | None = 2) -> str:
    return json.dumps(obj, ensure_ascii=False, indent=indent, sort_keys=False) + "\n"


def build(bpe_path: Path, out_dir: Path) -> list[Path]:
    merges = read_merges(bpe_path)
    vocab = build_vocab(merges)
    vocab_text = json.dumps(vocab, ensure_ascii=False, separators=(",", ":")) + "\n"
    merges_text = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)

    written: list[Path] = []
    for name, pad in TOKENIZERS:
        d = out_dir / name
        files = {
            "vocab.json": vocab_text,
            "merges.txt": merges_text,
            "tokenizer_config.json": _dump_json(tokenizer_config(pad)),
            "special_tokens_map.json": _dump_json(special_tokens_map(pad)),
        }
        for fname, text in files.items():
            _write(d / fname, text)
            written.append(d / fname)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bpe", type=Path, default=None, help="path to bpe_simple_vocab_16e6.txt.gz")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output root (default {DEFAULT_OUT})")
    args = ap.parse_args(argv)
    bpe = args.bpe or default_bpe_path()
    for p in build(bpe, args.out):
        try:
            shown = p.relative_to(REPO_ROOT)
        except ValueError:
            shown = p
        print(f"wrote {shown} ({os.path.getsize(p)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
