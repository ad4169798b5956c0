"""What a finished generation job hands back: images with their infotexts, the grid, the info.

These types sit beside ``GenerationRequest`` (webui/request.py), not in the engine: the API and
the UI read results without importing the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image


@dataclass
class GeneratedImage:
    """One output image, the seeds it was made from, its A1111 infotext and its saved file."""

    image: Image.Image
    seed: int
    subseed: int
    infotext: str
    path: Path | None = None


@dataclass
class Result:
    """A finished job: its images (and grid), A1111's ``info`` object, and what went wrong.

    ``warnings`` are things the user asked for that did not happen (a LoRA not found, an
    embedding for another model); they are shown beside the images and listed in the API's
    ``info["warnings"]``. ``interrupted`` is true when the job was stopped before its end.
    """

    images: list[GeneratedImage]
    info: dict[str, Any]
    grid: GeneratedImage | None = None
    interrupted: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def infotexts(self) -> list[str]:
        return [g.infotext for g in self.images]
