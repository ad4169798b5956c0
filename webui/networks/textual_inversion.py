"""A1111 textual-inversion embeddings, loaded for one job and removed after.

Files A1111 reads, and so do we:
- ``.pt``/``.bin`` A1111 training output: ``{'string_to_param': {'*': T(n, d)}, 'name', 'step', ...}``
- diffusers ``.bin``: ``{token: T(d) or T(n, d)}`` (one entry)
- ``.safetensors``: ``{'emb_params': T(n, d)}`` (or any single tensor)
- SDXL: ``{'clip_l': T(n, 768), 'clip_g': T(n, 1280)}``

An embedding is used by writing its file stem as a word in the prompt or negative prompt
(case-insensitively, as A1111's lower-casing tokenizer does). Each vector becomes an added token
in the tokenizer (diffusers' ``load_textual_inversion``); ``expand()`` rewrites the stem into
those tokens. After the job the tokens are removed and the text encoder gets its original
embedding module back, so the model is exactly as before.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from webui.models.hashes import HashCache
from webui.models.safe_load import CheckpointError, load_state_dict, read_torch_dict
from webui.networks.lora import quiet_loaders

log = logging.getLogger(__name__)


@dataclass
class Embedding:
    """Vectors per text-encoder slot: "clip_l"/"clip_g" for SDXL files, "" for single-encoder files."""

    name: str
    path: Path
    vectors: dict[str, torch.Tensor]
    step: int | None = None

    @property
    def count(self) -> int:
        return next(iter(self.vectors.values())).shape[0]


def _as_matrix(path: Path, tensor: object, what: str) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise CheckpointError(f"{path.name}: {what} is a {type(tensor).__name__}, not a tensor")
    tensor = tensor.detach().to(torch.float32)
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(0)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise CheckpointError(f"{path.name}: {what} has shape {tuple(tensor.shape)}, expected (vectors, width)")
    if not torch.isfinite(tensor).all():
        raise CheckpointError(f"{path.name}: {what} holds NaN or infinite values")
    return tensor


def read_embedding(path: Path, name: str | None = None) -> Embedding:
    """Parse an embedding file of any A1111-readable layout; CheckpointError if it is none of them."""
    path = Path(path)
    name = name or path.stem
    if path.suffix.lower() == ".safetensors":
        data: dict = load_state_dict(path)
    elif path.suffix.lower() in (".pt", ".bin", ".ckpt", ".pth"):
        data = read_torch_dict(path, "embedding")
    else:
        raise CheckpointError(f"{path.name}: unsupported embedding file type {path.suffix!r}")
    step = data.get("step") if isinstance(data.get("step"), int) else None
    if "string_to_param" in data:
        params = data["string_to_param"]
        if not isinstance(params, dict) or len(params) != 1:
            raise CheckpointError(f"{path.name}: string_to_param must hold exactly one tensor")
        return Embedding(name, path, {"": _as_matrix(path, next(iter(params.values())), "string_to_param")}, step)
    if "clip_l" in data and "clip_g" in data:
        clip_l = _as_matrix(path, data["clip_l"], "clip_l")
        clip_g = _as_matrix(path, data["clip_g"], "clip_g")
        if clip_l.shape[0] != clip_g.shape[0]:
            raise CheckpointError(f"{path.name}: clip_l has {clip_l.shape[0]} vectors, clip_g {clip_g.shape[0]}")
        return Embedding(name, path, {"clip_l": clip_l, "clip_g": clip_g}, step)
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if len(tensors) == 1:
        key, value = next(iter(tensors.items()))
        return Embedding(name, path, {"": _as_matrix(path, value, repr(key))}, step)
    if not tensors:
        raise CheckpointError(f"{path.name}: not an embedding (no tensors)")
    raise CheckpointError(f"{path.name}: not an embedding (several tensors: {', '.join(sorted(map(str, tensors))[:4])})")


def embedding_hash(path: Path, hashes: HashCache) -> str:
    """A1111's TI hash: the first 12 hex of the SHA-256 of the whole file."""
    return hashes.sha256(Path(path))[:12]


def _word_pattern(name: str) -> re.Pattern[str]:
    # A whole word: "x" matches in "an x, a y" but not in "x.safetensors" (another file's name).
    return re.compile(rf"(?<![\w.]){re.escape(name)}(?![\w]|\.\w)", re.IGNORECASE)


def mentioned(name: str, texts: Sequence[str]) -> bool:
    """True when ``name`` appears as a whole word in any text (case-insensitive)."""
    pattern = _word_pattern(name)
    return any(pattern.search(t or "") for t in texts)


@dataclass
class _Slot:
    """One tokenizer/text-encoder pair with what it looked like before the job."""

    tokenizer: object
    text_encoder: torch.nn.Module
    key: str  # which vectors of an SDXL file go here
    embeddings: torch.nn.Module | None = None
    vocab_size: int | None = None
    tokenizer_len: int = 0
    added: list[str] = field(default_factory=list)


@dataclass
class AppliedEmbeddings:
    loaded: list[Embedding] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # name → reason
    token_ids: frozenset[int] = frozenset()
    _replacements: list[tuple[re.Pattern[str], str]] = field(default_factory=list)

    def expand(self, text: str) -> str:
        """Replace each embedding's name by its tokens (``tok tok_1 tok_2`` for 3 vectors)."""
        for pattern, tokens in self._replacements:
            text = pattern.sub(tokens, text)
        return text


def _slots(pipe) -> list[_Slot]:
    slots = []
    te1, tok1 = getattr(pipe, "text_encoder", None), getattr(pipe, "tokenizer", None)
    te2, tok2 = getattr(pipe, "text_encoder_2", None), getattr(pipe, "tokenizer_2", None)
    sdxl = te2 is not None and tok2 is not None
    if te1 is not None and tok1 is not None:
        slots.append(_Slot(tok1, te1, "clip_l" if sdxl else ""))
    if sdxl:
        slots.append(_Slot(tok2, te2, "clip_g"))
    return slots


def _widths(slots: Sequence[_Slot]) -> dict[str, int]:
    return {s.key: s.text_encoder.get_input_embeddings().embedding_dim for s in slots}


def _fit(emb: Embedding, slots: Sequence[_Slot]) -> str | None:
    """Why ``emb`` cannot be used with these encoders, or None."""
    widths = _widths(slots)
    want = " + ".join(f"{k or 'text encoder'} {w}" for k, w in widths.items())
    have = " + ".join(f"{k or 'vectors'} {v.shape[1]}" for k, v in emb.vectors.items())
    if set(emb.vectors) == {""}:
        if set(widths) != {""}:
            return f"made for a single-text-encoder model ({have} wide), this model needs {want}"
    elif set(widths) != set(emb.vectors):
        return f"an SDXL embedding ({have}), this model has {want}"
    for key, width in widths.items():
        if emb.vectors[key].shape[1] != width:
            return f"width {emb.vectors[key].shape[1]} does not match this model's {width}"
    return None


@contextlib.contextmanager
def applied_embeddings(pipe, embeddings: Sequence[Embedding]) -> Iterator[AppliedEmbeddings]:
    """Add ``embeddings`` to ``pipe``'s tokenizers and text encoders for the block."""
    result = AppliedEmbeddings()
    slots = _slots(pipe)
    usable = []
    for emb in embeddings:
        reason = _fit(emb, slots) if slots else "this model has no text encoder"
        if reason:
            result.skipped[emb.name] = reason
        else:
            usable.append(emb)
    if not usable or not hasattr(pipe, "load_textual_inversion"):
        if usable:
            for emb in usable:
                result.skipped[emb.name] = f"{type(pipe).__name__} cannot load embeddings"
        yield result
        return
    for slot in slots:
        slot.embeddings = slot.text_encoder.get_input_embeddings()
        slot.vocab_size = getattr(slot.text_encoder.config, "vocab_size", None)
        slot.tokenizer_len = len(slot.tokenizer)
    ids: set[int] = set()
    try:
        for index, emb in enumerate(usable):
            base = _token_base(index, slots)
            tokens = [base] + [f"{base}_{i}" for i in range(1, emb.count)]
            loaded_into: list[_Slot] = []
            try:
                for slot in slots:
                    matrix = emb.vectors[slot.key].to(slot.embeddings.weight.dtype)
                    with quiet_loaders():
                        pipe.load_textual_inversion(
                            matrix, token=base, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder
                        )
                    slot.added.extend(tokens)
                    loaded_into.append(slot)
            except Exception as e:
                result.skipped[emb.name] = f"could not load: {e}"
                continue
            for slot in slots:
                ids.update(slot.tokenizer.convert_tokens_to_ids(tokens))
            result.loaded.append(emb)
            result._replacements.append((_word_pattern(emb.name), " ".join(tokens)))
        # Longer names first, so "style_v2" is not eaten by an embedding called "style".
        result._replacements.sort(key=lambda item: -len(item[0].pattern))
        result.token_ids = frozenset(ids)
        yield result
    finally:
        for slot in slots:
            _restore(pipe, slot)


def _token_base(index: int, slots: Sequence[_Slot]) -> str:
    """An added-token name no tokenizer knows yet (kept ASCII so no normaliser touches it)."""
    n = index
    while True:
        base = f"a1111emb{n}tok"
        if all(base not in s.tokenizer.get_vocab() for s in slots):
            return base
        n += 1000


def _restore(pipe, slot: _Slot) -> None:
    if slot.added:
        try:
            pipe.unload_textual_inversion(tokens=slot.added, tokenizer=slot.tokenizer, text_encoder=slot.text_encoder)
        except Exception as e:  # keep going: the embedding matrix is restored below regardless
            log.warning("unloading embeddings failed: %s", e)
    if slot.embeddings is not None:
        slot.text_encoder.set_input_embeddings(slot.embeddings)
    if slot.vocab_size is not None:
        slot.text_encoder.config.vocab_size = slot.vocab_size
    if len(slot.tokenizer) != slot.tokenizer_len:
        log.error("tokenizer has %d entries after unloading embeddings, expected %d", len(slot.tokenizer), slot.tokenizer_len)
