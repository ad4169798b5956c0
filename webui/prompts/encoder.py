"""Prompt text → ``prompt_embeds`` (and pooled embeds for SDXL), the way A1111 builds them.

A prompt is parsed for emphasis (``webui.prompts.parser.parse_attention``), each fragment is
tokenised, and the tokens are packed into chunks of 75 with A1111's rules: a full chunk moves the
words after its last comma (if few enough) to the next chunk, ``BREAK`` starts a new chunk, and a
textual-inversion embedding is never split across chunks. Each chunk is encoded as
``BOS + 75 tokens + EOS`` (padded with the tokenizer's pad id) and the chunk outputs are
concatenated along the sequence. Emphasis weights then scale each token's output, and in the
"Original" mode each chunk's mean is restored. Clip skip N takes the output N layers from the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from webui.prompts.parser import parse_attention

CHUNK_TOKENS = 75
EMPHASIS_MODES = ("Original", "No norm", "Ignore", "None")


@dataclass
class Conditioning:
    """Encoder output for a batch of prompts: (B, 77·chunks, D) plus pooled (B, P) for SDXL."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_TOKENS + 2)

    def __getitem__(self, index: int) -> "Conditioning":
        """The conditioning of one prompt of the batch, keeping the batch dimension."""
        pooled = self.pooled[index:index + 1] if self.pooled is not None else None
        return Conditioning(self.embeds[index:index + 1], pooled)


@dataclass
class Chunk:
    tokens: list[int] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)


@dataclass
class _Encoder:
    text_encoder: torch.nn.Module
    tokenizer: object
    penultimate_default: bool  # SDXL conditions on hidden_states[-2] and skips the final norm

    @property
    def final_layer_norm(self) -> torch.nn.Module:
        model = getattr(self.text_encoder, "text_model", self.text_encoder)
        return model.final_layer_norm


class PromptEncoder:
    """Chunked, weighted CLIP encoding for SD1 (CLIP-L), SD2 (OpenCLIP-H) and SDXL (CLIP-L + bigG)."""

    def __init__(
        self,
        pipe,
        *,
        sdxl: bool,
        emphasis: str = "Original",
        comma_backtrack: int = 20,
        embedding_ids: frozenset[int] = frozenset(),
    ):
        if emphasis not in EMPHASIS_MODES:
            raise ValueError(f"unknown emphasis mode {emphasis!r}; choose one of {EMPHASIS_MODES}")
        self.sdxl = sdxl
        self.emphasis = emphasis
        self.comma_backtrack = comma_backtrack
        self.embedding_ids = embedding_ids
        self.encoders: list[_Encoder] = []
        if getattr(pipe, "text_encoder", None) is not None:
            self.encoders.append(_Encoder(pipe.text_encoder, pipe.tokenizer, penultimate_default=sdxl))
        if sdxl and getattr(pipe, "text_encoder_2", None) is not None:
            self.encoders.append(_Encoder(pipe.text_encoder_2, pipe.tokenizer_2, penultimate_default=True))
        self._pooled_source = self.encoders[-1] if sdxl else None

    # --- tokens and chunks ---------------------------------------------------------------------

    def fragments(self, text: str) -> list[tuple[str, float]]:
        if self.emphasis == "None":  # emphasis syntax is plain text in this mode
            return [(text, 1.0)]
        return parse_attention(text)

    def chunks(self, text: str, tokenizer=None) -> list[Chunk]:
        """A1111's ``tokenize_line``: the prompt packed into 75-token chunks with weights."""
        tokenizer = tokenizer or self.encoders[0].tokenizer
        comma = tokenizer.convert_tokens_to_ids(",</w>")
        packer = _ChunkPacker(comma, self.comma_backtrack)
        for fragment, weight in self.fragments(text):
            if fragment == "BREAK" and weight == -1:
                packer.close_chunk()
                continue
            ids = tokenizer(fragment, add_special_tokens=False, truncation=False)["input_ids"]
            i = 0
            while i < len(ids):
                if ids[i] in self.embedding_ids:
                    run = _run_length(ids, i, self.embedding_ids)
                    packer.add_embedding(ids[i:i + run], weight)
                    i += run
                else:
                    packer.add(ids[i], weight)
                    i += 1
        return packer.finish()

    def count_tokens(self, text: str) -> tuple[int, int]:
        """(tokens used, token limit of the chunks used) as A1111's counter shows, e.g. (80, 150)."""
        chunks = self.chunks(text)
        used = sum(CHUNK_TOKENS for c in chunks[:-1]) + len(chunks[-1].tokens)
        return used, len(chunks) * CHUNK_TOKENS

    # --- encoding ------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, texts: list[str], clip_skip: int = 1, min_chunks: int = 1) -> Conditioning:
        """Encode a batch of prompts; all come out with the same number of chunks."""
        per_encoder_chunks = [[self.chunks(t, e.tokenizer) for t in texts] for e in self.encoders]
        count = max([min_chunks] + [len(c) for batch in per_encoder_chunks for c in batch])
        outputs, pooled = [], None
        for encoder, batch in zip(self.encoders, per_encoder_chunks):
            padded = [c + [Chunk() for _ in range(count - len(c))] for c in batch]
            hidden, chunk_pooled = self._encode_chunks(encoder, padded, clip_skip)
            outputs.append(hidden)
            if encoder is self._pooled_source:
                pooled = chunk_pooled[:, 0]  # A1111: the pooled output of the first chunk
        return Conditioning(embeds=torch.cat(outputs, dim=-1), pooled=pooled)

    def _encode_chunks(self, encoder: _Encoder, batch: list[list[Chunk]], clip_skip: int):
        tokenizer = encoder.tokenizer
        ids = [[_chunk_ids(c, tokenizer) for c in chunks] for chunks in batch]
        weights = [[[1.0] + c.weights + [1.0] * (CHUNK_TOKENS + 1 - len(c.weights)) for c in chunks] for chunks in batch]
        device = encoder.text_encoder.device
        tokens = torch.tensor(ids, device=device)  # (B, chunks, 77)
        hidden, pooled = self._run(encoder, tokens.flatten(0, 1), clip_skip)  # (B·chunks, 77, D)
        scale = torch.tensor(weights, dtype=hidden.dtype, device=hidden.device).flatten(0, 1)
        hidden = self._emphasise(hidden, scale)
        batch_size, chunks = tokens.shape[:2]
        hidden = hidden.unflatten(0, (batch_size, chunks)).flatten(1, 2)  # (B, chunks·77, D)
        pooled = pooled.unflatten(0, (batch_size, chunks)) if pooled is not None else None
        return hidden, pooled

    def _emphasise(self, hidden: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """Apply per-token weights to each chunk's output, as the emphasis mode says."""
        if self.emphasis in ("Ignore", "None") or bool((scale == 1).all()):
            return hidden
        weighted = hidden * scale.unsqueeze(-1)
        if self.emphasis == "No norm":
            return weighted
        # "Original": keep each chunk's overall mean where it was before weighting.
        before = hidden.mean(dim=(1, 2), keepdim=True)
        after = weighted.mean(dim=(1, 2), keepdim=True)
        return weighted * (before / after)

    def _run(self, encoder: _Encoder, tokens: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = encoder.text_encoder(tokens, output_hidden_states=True)
        pooled = getattr(out, "text_embeds", None)
        if encoder.penultimate_default:
            # SDXL: clip skip 1 is already the penultimate layer, without the final norm.
            return out.hidden_states[-(clip_skip + 1)], pooled
        if clip_skip <= 1:
            return out.last_hidden_state, pooled
        return encoder.final_layer_norm(out.hidden_states[-clip_skip]), pooled


class _ChunkPacker:
    """A1111's chunk rules: 75 tokens a chunk, comma backtrack, embeddings kept whole."""

    def __init__(self, comma: int, backtrack: int):
        self.comma = comma
        self.backtrack = backtrack
        self.done: list[Chunk] = []
        self.current = Chunk()
        self.last_comma = -1

    def close_chunk(self) -> None:
        self.done.append(self.current)
        self.current = Chunk()
        self.last_comma = -1

    def add(self, token: int, weight: float) -> None:
        chunk = self.current
        if token == self.comma:
            self.last_comma = len(chunk.tokens)
        elif (self.backtrack and len(chunk.tokens) == CHUNK_TOKENS and self.last_comma != -1
              and len(chunk.tokens) - self.last_comma <= self.backtrack):
            # The chunk is full: carry the words after its last comma over to the next chunk.
            cut = self.last_comma + 1
            carried = Chunk(chunk.tokens[cut:], chunk.weights[cut:])
            del chunk.tokens[cut:], chunk.weights[cut:]
            self.close_chunk()
            self.current = carried
        if len(self.current.tokens) == CHUNK_TOKENS:
            self.close_chunk()
        self.current.tokens.append(token)
        self.current.weights.append(weight)

    def add_embedding(self, tokens: list[int], weight: float) -> None:
        if len(self.current.tokens) + len(tokens) > CHUNK_TOKENS:
            self.close_chunk()
        self.current.tokens.extend(tokens)
        self.current.weights.extend([weight] * len(tokens))

    def finish(self) -> list[Chunk]:
        if self.current.tokens or not self.done:
            self.close_chunk()
        return self.done


def _run_length(ids: list[int], start: int, members: frozenset[int]) -> int:
    end = start
    while end < len(ids) and ids[end] in members:
        end += 1
    return end - start


def _chunk_ids(chunk: Chunk, tokenizer) -> list[int]:
    body = chunk.tokens[:CHUNK_TOKENS]
    pad = CHUNK_TOKENS - len(body)
    return [tokenizer.bos_token_id] + body + [tokenizer.eos_token_id] + [tokenizer.pad_token_id] * pad
