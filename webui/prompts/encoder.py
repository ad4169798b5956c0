"""Prompt text → ``prompt_embeds`` (and pooled embeds for SDXL), the way A1111 builds them.

Prompts longer than one CLIP window are split into chunks of 75 tokens; each chunk is encoded
as ``BOS + 75 tokens + EOS`` (padded to 77 with the tokenizer's pad id) and the chunk outputs
are concatenated along the sequence. A prompt and its negative are padded to the same number
of chunks with the empty chunk. Clip skip N takes the output N layers from the end, as A1111.

The A1111 prompt grammar (emphasis, scheduling) will build on ``encode_tokens``, which takes
token ids, so the parser only has to produce those (plus weights, added with the grammar).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

CHUNK_TOKENS = 75


@dataclass
class Conditioning:
    """Encoder output for a batch of prompts: (B, 77·chunks, D) plus pooled (B, P) for SDXL."""

    embeds: torch.Tensor
    pooled: torch.Tensor | None = None

    @property
    def chunks(self) -> int:
        return self.embeds.shape[1] // (CHUNK_TOKENS + 2)


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
    """Chunked CLIP encoding for SD1 (CLIP-L), SD2 (OpenCLIP-H) and SDXL (CLIP-L + bigG)."""

    def __init__(self, pipe, *, sdxl: bool):
        self.sdxl = sdxl
        self.encoders: list[_Encoder] = []
        if getattr(pipe, "text_encoder", None) is not None:
            self.encoders.append(_Encoder(pipe.text_encoder, pipe.tokenizer, penultimate_default=sdxl))
        if sdxl and getattr(pipe, "text_encoder_2", None) is not None:
            self.encoders.append(_Encoder(pipe.text_encoder_2, pipe.tokenizer_2, penultimate_default=True))
        self._pooled_source = self.encoders[-1] if sdxl else None

    @property
    def tokenizer(self):
        return self.encoders[0].tokenizer

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` without BOS/EOS."""
        return self.tokenizer(text, add_special_tokens=False, truncation=False)["input_ids"]

    def count_tokens(self, text: str) -> tuple[int, int]:
        """(tokens used, token limit of the chunks used) as A1111's counter shows, e.g. (80, 150)."""
        used = len(self.tokenize(text))
        chunks = max(1, -(-used // CHUNK_TOKENS))
        return used, chunks * CHUNK_TOKENS

    @torch.no_grad()
    def encode(self, prompts: list[str], clip_skip: int = 1, min_chunks: int = 1) -> Conditioning:
        return self.encode_tokens([self.tokenize(p) for p in prompts], clip_skip=clip_skip, min_chunks=min_chunks)

    @torch.no_grad()
    def encode_tokens(self, ids: list[list[int]], *, clip_skip: int = 1, min_chunks: int = 1) -> Conditioning:
        """Encode pre-tokenised prompts (ids without BOS/EOS)."""
        chunks = max([min_chunks] + [max(1, -(-len(t) // CHUNK_TOKENS)) for t in ids])
        per_encoder, pooled = [], None
        for encoder in self.encoders:
            batch = [self._chunk_ids(t, chunks, encoder.tokenizer) for t in ids]
            tokens = torch.tensor(batch, device=encoder.text_encoder.device)  # (B, chunks, 77)
            hidden, chunk_pooled = self._run(encoder, tokens.flatten(0, 1), clip_skip)
            hidden = hidden.unflatten(0, (len(ids), chunks)).flatten(1, 2)  # (B, chunks·77, D)
            per_encoder.append(hidden)
            if encoder is self._pooled_source:
                pooled = chunk_pooled.unflatten(0, (len(ids), chunks))[:, 0]  # A1111: pooled of chunk 1
        return Conditioning(embeds=torch.cat(per_encoder, dim=-1), pooled=pooled)

    def _chunk_ids(self, tokens: list[int], chunks: int, tokenizer) -> list[list[int]]:
        bos, eos, pad = tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id
        out = []
        for c in range(chunks):
            body = tokens[c * CHUNK_TOKENS:(c + 1) * CHUNK_TOKENS]
            out.append([bos] + body + [eos] + [pad] * (CHUNK_TOKENS - len(body)))
        return out

    def _run(self, encoder: _Encoder, tokens: torch.Tensor, clip_skip: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = encoder.text_encoder(tokens, output_hidden_states=True)
        pooled = getattr(out, "text_embeds", None)
        if encoder.penultimate_default:
            # SDXL: clip skip 1 is already the penultimate layer, without the final norm.
            return out.hidden_states[-(clip_skip + 1)], pooled
        if clip_skip <= 1:
            return out.last_hidden_state, pooled
        return encoder.final_layer_norm(out.hidden_states[-clip_skip]), pooled


def pad_to_same_chunks(cond: Conditioning, uncond: Conditioning, empty: Conditioning) -> tuple[Conditioning, Conditioning]:
    """Append empty chunks to the shorter of prompt/negative so CFG can batch them."""
    def padded(c: Conditioning, target: int) -> Conditioning:
        missing = target - c.chunks
        if missing <= 0:
            return c
        filler = empty.embeds.expand(c.embeds.shape[0], -1, -1).repeat(1, missing, 1)
        return Conditioning(torch.cat([c.embeds, filler], dim=1), c.pooled)

    target = max(cond.chunks, uncond.chunks)
    return padded(cond, target), padded(uncond, target)
