"""What scripts that assemble their own images need: fixed seeds, saving, and one Processed.

A script such as SD upscale runs ``process_images`` for pieces (not saved) and makes the final
images itself; these are saved here the way the engine saves its own (the tab's folder, dated
sub-folder, infotext in the PNG, only when the request and the settings ask for it), and put
into one :class:`Processed` that keeps every image's seed, infotext and file.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from webui.outputs import dated_folder, save_png
from webui.plugins import context
from webui.plugins.processing import Processed, Processing
from webui.result import GeneratedImage

log = logging.getLogger(__name__)


def fix_seed(p: Processing) -> None:
    """A random seed (and variation seed) chosen now when -1, so every piece shares it (A1111's fix_seed)."""
    if p.seed is None or int(p.seed) == -1:
        p.seed = random.randrange(2**32 - 1)
    if p.subseed is None or int(p.subseed) == -1:
        p.subseed = random.randrange(2**32 - 1)


@dataclass
class Saving:
    """Whether the request wanted its images and grid saved (read before a script turns it off for pieces)."""

    samples: bool
    grid: bool
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, p: Processing) -> Saving:
        return cls(samples=not p.do_not_save_samples, grid=not p.do_not_save_grid)

    def save(self, p: Processing, image: GeneratedImage, *, grid: bool = False, prefix: str | None = None) -> None:
        """Save ``image`` in the tab's folder when asked (its path is set); a failure becomes a warning.

        The folder is checked against the allowed output roots: a script may have changed ``p``'s."""
        plugins = context.plugins()
        options = plugins.options
        if options is None or not (self.grid if grid else self.samples):
            return
        if not options.get("grid_save" if grid else "samples_save"):
            return
        folder = p.outpath_grids if grid else p.outpath_samples
        if not folder:
            return
        text = image.infotext if options.get("enable_pnginfo") else None
        try:
            root = plugins.studio.paths.outputs(folder) if plugins.studio is not None else Path(folder)
            target = dated_folder(root, bool(options.get("save_to_dirs")))
            image.path = save_png(image.load(), target, str(image.seed), text or None,
                                  prefix=prefix if prefix is not None else ("grid-" if grid else ""))
        except (OSError, ValueError) as e:
            log.error("script image not saved: %s", e)
            self.warnings.append(f"{'the grid' if grid else 'an image'} was not saved ({e}); it is in the result only")


def combine(p: Processing, images: list[GeneratedImage], first: Processed | None, *,
            grid: GeneratedImage | None = None, interrupted: bool = False,
            warnings: list[str] | None = None) -> Processed:
    """One Processed for images made by several ``process_images`` calls (or assembled by the script).

    ``first``: the first call's Processed, whose info (model, prompts, sampler...) describes the job.
    """
    info = dict(first.js_info) if first is not None else {}
    seeds = [g.seed for g in images]
    subseeds = [g.subseed for g in images]
    if seeds:
        info.update(seed=seeds[0], all_seeds=seeds, subseed=subseeds[0], all_subseeds=subseeds)
    prompts = list(first.all_prompts[:1] * len(images)) if first is not None and first.all_prompts else []
    negatives = (list(first.all_negative_prompts[:1] * len(images))
                 if first is not None and first.all_negative_prompts else [])
    if prompts:
        info.update(all_prompts=prompts, all_negative_prompts=negatives)
    return Processed(
        p=p, images=[g.load() for g in images], infotexts=[g.infotext for g in images],
        seed=seeds[0] if seeds else int(p.seed), all_seeds=seeds, subseed=subseeds[0] if subseeds else int(p.subseed),
        all_subseeds=subseeds, info=images[0].infotext if images else (first.info if first is not None else ""),
        all_prompts=prompts, all_negative_prompts=negatives, js_info=info, generated=list(images), grid=grid,
        interrupted=interrupted or bool(first is not None and first.interrupted),
        warnings=[*(first.warnings if first is not None else []), *(warnings or [])],
    )


def made(processed: Processed, index: int = 0) -> GeneratedImage:
    """Image ``index`` of a process_images call, with its seed, infotext and saved file."""
    if index < len(processed.generated):
        return processed.generated[index]
    seed = processed.all_seeds[index] if index < len(processed.all_seeds) else processed.seed
    subseed = processed.all_subseeds[index] if index < len(processed.all_subseeds) else processed.subseed
    text = processed.infotexts[index] if index < len(processed.infotexts) else processed.info
    return GeneratedImage(processed.images[index], seed, subseed, text)


def assembled(image: Image.Image, seed: int, subseed: int, infotext: str) -> GeneratedImage:
    """A picture the script put together itself (not straight from the engine)."""
    return GeneratedImage(image, int(seed), int(subseed), infotext)
