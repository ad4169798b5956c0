"""Prompt schedules and composable diffusion (AND): which encoded rows apply at each step.

Every distinct text a job needs (each AND part at each schedule stage, and the negative's
stages) is encoded once, in one batch. The denoising loop (webui/engine/denoiser.py) asks
``rows_at(step)`` for the rows of each sampling step and puts the unconditional row and every
AND part into one batched UNet call; it combines them with A1111's composable formula
``uncond + cfg·Σ wₖ·(condₖ − uncond)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from webui.prompts.encoder import Conditioning, PromptEncoder
from webui.prompts.parser import extract_extra_networks, prompt_schedule, split_and

Schedule = list[tuple[int, int]]  # (last step it applies to, row in the encoded batch)


@dataclass
class PromptSchedule:
    """The encoded rows of a job's prompts and which of them apply at each sampling step."""

    rows: Conditioning
    texts: list[str]
    parts: list[tuple[float, Schedule]]  # AND parts of the prompt with their weights
    negative: Schedule

    @property
    def is_plain(self) -> bool:
        """One prompt, weight 1, no schedule: the UNet sees exactly one cond and one uncond row."""
        return len(self.parts) == 1 and self.parts[0][0] == 1.0 and len(self.parts[0][1]) == 1 and len(self.negative) == 1

    def rows_at(self, step: int) -> tuple[int, list[tuple[int, float]]]:
        """(negative row, [(row, weight) per AND part]) for a sampling step, as A1111 picks them."""
        return _pick(self.negative, step), [(_pick(schedule, step), weight) for weight, schedule in self.parts]


def _pick(schedule: Schedule, step: int) -> int:
    for end_step, row in schedule:
        if step <= end_step:
            return row
    return schedule[-1][1]


def encode_schedule(
    encoder: PromptEncoder,
    prompt: str,
    negative: str,
    steps: int,
    clip_skip: int = 1,
    expand: Callable[[str], str] = lambda text: text,
) -> PromptSchedule:
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
    return PromptSchedule(rows=rows, texts=texts, parts=parts, negative=negative_schedule)


def count_prompt_tokens(encoder: PromptEncoder, prompt: str, steps: int = 20) -> tuple[int, int]:
    """A1111's token counter: network tags removed, the longest AND part at any schedule stage."""
    text, _ = extract_extra_networks(prompt)
    stages = [stage for part, _ in split_and(text) for _, stage in prompt_schedule(part, steps)]
    return max((encoder.count_tokens(stage) for stage in stages or [""]), key=lambda counted: counted[0])
