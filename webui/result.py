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
    """One output image, the seeds it was made from, its A1111 infotext and its saved file.

    ``image`` is None for an image read back from the job store after a restart: its ``path``
    holds it (see ``load``).
    """

    image: Image.Image | None
    seed: int
    subseed: int
    infotext: str
    path: Path | None = None

    def load(self) -> Image.Image:
        """The pixels: in memory, or read from the saved file."""
        if self.image is None:
            if self.path is None:
                raise FileNotFoundError("this image was not saved and is no longer in memory")
            with Image.open(self.path) as saved:
                self.image = saved.convert("RGB")
        return self.image


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
