"""Prompt schedules and composable diffusion (AND) on top of a stock diffusers pipeline.

Every distinct text a job needs (each AND part at each schedule stage, and the negative's stages)
is encoded once, in one batch. While the job runs, the UNet's ``forward`` is wrapped: each call
looks up the rows for the current sampling step and, for AND prompts, evaluates every part and
returns ``uncond + Σ wₖ·(condₖ − uncond)`` as the "cond" half, so the pipeline's own CFG step
yields A1111's composable formula ``uncond + cfg·Σ wₖ·(condₖ − uncond)``. A plain prompt with
no schedule needs no wrapper at all.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Callable, Iterator

import torch

from webui.prompts.encoder import Conditioning, PromptEncoder
from webui.prompts.parser import extract_extra_networks, prompt_schedule, split_and

Schedule = list[tuple[int, int]]  # (last step it applies to, row in the encoded batch)


@dataclass
class PromptPlan:
    """The encoded rows of a job and which of them apply at each sampling step."""

    rows: Conditioning
    texts: list[str]
    parts: list[tuple[float, Schedule]]  # AND parts of the prompt with their weights
    negative: Schedule
    step: int = 0  # the sampling step about to run; the engine advances it

    @property
    def is_plain(self) -> bool:
        return len(self.parts) == 1 and self.parts[0][0] == 1.0 and len(self.parts[0][1]) == 1 and len(self.negative) == 1

    def rows_at(self, step: int) -> tuple[int, list[tuple[int, float]]]:
        """(negative row, [(row, weight) per AND part]) for a sampling step, as A1111 picks them."""
        return _pick(self.negative, step), [(_pick(schedule, step), weight) for weight, schedule in self.parts]

    def first(self) -> tuple[Conditioning, Conditioning]:
        """(cond, uncond) of step 0, for the pipeline's own arguments."""
        negative, parts = self.rows_at(0)
        return self.rows[parts[0][0]], self.rows[negative]


def _pick(schedule: Schedule, step: int) -> int:
    for end_step, row in schedule:
        if step <= end_step:
            return row
    return schedule[-1][1]


def build_plan(
    encoder: PromptEncoder,
    prompt: str,
    negative: str,
    steps: int,
    clip_skip: int = 1,
    expand: Callable[[str], str] = lambda text: text,
) -> PromptPlan:
    """Parse AND parts and schedules, then encode each distinct text exactly once."""
    texts: list[str] = []

    def row_of(text: str) -> int:
        text = expand(text)
        if text not in texts:
            texts.append(text)
        return texts.index(text)

    parts = [(weight, [(end, row_of(text)) for end, text in prompt_schedule(part, steps)])
             for part, weight in split_and(prompt)]
    negative_schedule = [(end, row_of(text)) for end, text in prompt_schedule(negative, steps)]
    rows = encoder.encode(texts, clip_skip)
    return PromptPlan(rows=rows, texts=texts, parts=parts, negative=negative_schedule)


@contextlib.contextmanager
def scheduled_unet(unet: torch.nn.Module, plan: PromptPlan, batch_size: int) -> Iterator[None]:
    """Wrap ``unet.forward`` for one job so it follows ``plan`` step by step."""
    if plan.is_plain:
        yield
        return
    original = unet.forward

    def forward(sample, timestep, encoder_hidden_states=None, *args, added_cond_kwargs=None, **kwargs):
        return _composed_forward(original, plan, batch_size, sample, timestep, added_cond_kwargs, args, kwargs)

    unet.forward = forward
    try:
        yield
    finally:
        del unet.forward  # back to the class's forward


def _composed_forward(original, plan: PromptPlan, batch: int, sample, timestep, added, args, kwargs):
    negative_row, parts = plan.rows_at(plan.step)
    with_cfg = sample.shape[0] == 2 * batch
    x_cond = sample[batch:] if with_cfg else sample
    rows = ([negative_row] if with_cfg else []) + [row for row, _ in parts]
    groups = len(rows)
    device, dtype = sample.device, sample.dtype

    embeds = torch.cat([plan.rows.embeds[r:r + 1].expand(batch, -1, -1) for r in rows]).to(device, dtype)
    x = torch.cat(([sample[:batch]] if with_cfg else []) + [x_cond] * len(parts))
    t = timestep.flatten()[0] if torch.is_tensor(timestep) else timestep
    if added is not None:
        added = _added_conditions(plan, added, rows, batch, with_cfg, device, dtype)
    out = original(x, t, embeds, *args, added_cond_kwargs=added, **kwargs)
    eps = (out[0] if isinstance(out, tuple) else out.sample).chunk(groups)

    if with_cfg:
        uncond, conds = eps[0], eps[1:]
        combined = uncond + sum(w * (c - uncond) for c, (_, w) in zip(conds, parts))
        result = torch.cat([uncond, combined])
    else:
        total = sum(w for _, w in parts) or 1.0
        result = sum(w * c for c, (_, w) in zip(eps, parts)) / total
    if isinstance(out, tuple):
        return (result,)
    out.sample = result
    return out


def _added_conditions(plan: PromptPlan, added: dict, rows: list[int], batch: int, with_cfg: bool, device, dtype) -> dict:
    """SDXL extras per row: the row's own pooled embedding; the time ids of its half of the batch."""
    result = dict(added)
    if plan.rows.pooled is not None and "text_embeds" in added:
        result["text_embeds"] = torch.cat([plan.rows.pooled[r:r + 1].expand(batch, -1) for r in rows]).to(device, dtype)
    if "time_ids" in added:
        time_ids = added["time_ids"]
        uncond_ids, cond_ids = (time_ids[:batch], time_ids[batch:]) if with_cfg else (None, time_ids)
        pieces = ([uncond_ids] if with_cfg else []) + [cond_ids] * (len(rows) - (1 if with_cfg else 0))
        result["time_ids"] = torch.cat(pieces)
    return result


def count_prompt_tokens(encoder: PromptEncoder, prompt: str, steps: int = 20) -> tuple[int, int]:
    """A1111's token counter: network tags removed, the longest AND part at any schedule stage."""
    text, _ = extract_extra_networks(prompt)
    stages = [stage for part, _ in split_and(text) for _, stage in prompt_schedule(part, steps)]
    return max((encoder.count_tokens(stage) for stage in stages or [""]), key=lambda counted: counted[0])
