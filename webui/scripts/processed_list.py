"""Several ``process_images`` results of one scripted job as one ``Processed`` (images in order).

Prompt matrix and Prompts from file run ``process_images`` once per prompt; the job's answer
is every image, each with its own infotext and saved file, and an ``info`` whose per-image
lists (``all_prompts``, ``all_seeds``, ``infotexts`` ...) cover them all.
"""

from __future__ import annotations

from typing import Sequence

from webui.plugins.processing import Processed, Processing

_PER_IMAGE = ("all_prompts", "all_negative_prompts", "all_seeds", "all_subseeds", "infotexts")


def combine(p: Processing, runs: Sequence[Processed], notes: Sequence[str] = ()) -> Processed:
    """One Processed holding every run's images; ``info`` from the first run, lists joined."""
    if not runs:
        raise ValueError("nothing was generated")
    first = runs[0]
    info = dict(first.js_info)
    for key in _PER_IMAGE:
        info[key] = [item for run in runs for item in (run.js_info.get(key) or [])]
    warnings = list(dict.fromkeys([*notes, *(w for run in runs for w in run.warnings)]))
    info["warnings"] = warnings
    info["notes"] = list(dict.fromkeys([*(n for run in runs for n in run.js_info.get("notes") or []), *notes]))
    return Processed(
        p=p,
        images=[image for run in runs for image in run.images],
        infotexts=[text for run in runs for text in run.infotexts],
        seed=first.seed, all_seeds=[s for run in runs for s in run.all_seeds],
        subseed=first.subseed, all_subseeds=[s for run in runs for s in run.all_subseeds],
        info=first.info,
        all_prompts=list(info["all_prompts"]), all_negative_prompts=list(info["all_negative_prompts"]),
        js_info=info,
        generated=[g for run in runs for g in run.generated],
        interrupted=any(run.interrupted for run in runs),
        warnings=warnings,
    )
