"""A1111's ``modules.processing``: the processing classes, ``process_images`` and ``Processed``.

``StableDiffusionProcessingTxt2Img(...)`` / ``...Img2Img(...)`` build SD Studio's
:class:`~webui.plugins.processing.Processing` from A1111's keyword arguments. ``isinstance``
against these classes works for every ``p`` (the one a job hands to scripts too): Img2Img means
"has init images". ``Processed(p, images, seed, info, ...)`` builds SD Studio's Processed.
"""

from __future__ import annotations

import logging
import random
import weakref
from typing import Any

from modules import missing
from webui.plugins import context
from webui.plugins import jobs as _jobs
from webui.plugins.processing import FIELD_NAMES, Processing
from webui.plugins.processing import Processed as _Processed
from webui.result import GeneratedImage

__all__ = ["Processed", "StableDiffusionProcessing", "StableDiffusionProcessingImg2Img",
           "StableDiffusionProcessingTxt2Img", "fix_seed", "get_fixed_seed", "process_images"]

# A1111 arguments that mean nothing here (LDM internals, face restoration, old names): accepted.
_IGNORED = frozenset({
    "sd_model", "do_not_reload_embeddings", "seed_enable_extras", "overlay_images", "ddim_discretize",
    "s_min_uncond", "s_churn", "s_tmax", "s_tmin", "s_noise", "sampler_index", "token_merging_ratio",
    "token_merging_ratio_hr", "firstphase_width", "firstphase_height", "force_task_id", "image_cfg_scale",
    "include_init_images", "mask_round", "paste_to", "sampler_noise_scheduler_override", "scripts_value",
    "scripts_setup_complete", "cached_c", "cached_uc", "hr_additional_modules", "is_hr_pass",
})
# Ignored, but they would have changed the picture in A1111: say so in the log when set.
_WARN_WHEN_SET = {
    "restore_faces": "face restoration is not available",
    "firstpass_image": "hires fix from a given first-pass image is not available",
    "latent_mask": "a separate latent mask is not available; image_mask is used",
    "disable_extra_networks": "extra networks in the prompt are always applied",
}
_RENAMED = {"script_args_value": "script_args", "mask": "image_mask"}

log = logging.getLogger("sd")


def _translate(kwargs: dict[str, Any], cls_name: str) -> dict[str, Any]:
    """A1111's constructor arguments as Processing fields; TypeError naming an unknown one."""
    fields: dict[str, Any] = {}
    for name, value in kwargs.items():
        if name in _IGNORED:
            continue
        if name in _WARN_WHEN_SET:
            if value:
                log.warning("%s(%s=...) ignored: %s", cls_name, name, _WARN_WHEN_SET[name])
            continue
        if name == "mask_blur":
            fields["mask_blur_x"] = fields["mask_blur_y"] = int(value)
            continue
        name = _RENAMED.get(name, name)
        if name not in FIELD_NAMES:
            raise TypeError(f"{cls_name}() got an unexpected keyword argument {name!r} (not an A1111 "
                            "processing argument SD Studio knows; see docs/extensions.md)")
        fields[name] = value
    for key in ("init_images", "styles"):
        if fields.get(key) is not None:
            fields[key] = list(fields[key])
    return fields


class _Kind(type):
    """``isinstance(p, X)`` is true for any Processing of X's kind, not only ones built by X."""

    def __instancecheck__(cls, obj: Any) -> bool:
        if isinstance(type(obj), _Kind):  # built by one of these classes: its class says what it is
            return type.__instancecheck__(cls, obj)
        want = getattr(cls, "_wants_img2img", None)
        return isinstance(obj, Processing) and (want is None or obj.is_img2img == want)


class StableDiffusionProcessing(Processing, metaclass=_Kind):
    """A1111's base processing class; build one of the two below."""

    _wants_img2img: bool | None = None
    _defaults: dict[str, Any] = {"steps": 50}  # A1111's constructor default (the UI's is 20)

    def __init__(self, *args: Any, **kwargs: Any):
        if args:
            raise TypeError(f"{type(self).__name__}() takes keyword arguments only (A1111's names)")
        super().__init__(**{**self._defaults, **_translate(kwargs, type(self).__name__)})


class StableDiffusionProcessingTxt2Img(StableDiffusionProcessing):
    """A txt2img job as A1111 builds one (``enable_hr``, ``hr_scale``... included)."""

    _wants_img2img = False


class StableDiffusionProcessingImg2Img(StableDiffusionProcessing):
    """An img2img / inpaint job: ``init_images`` (required to be one), ``mask``, ``mask_blur``..."""

    _wants_img2img = True
    _defaults = {"steps": 50, "inpainting_fill": 0}  # A1111's constructor defaults


class _Made:
    """What process_images made in one job: its images (with their saved files) and its last info."""

    def __init__(self) -> None:
        self.images: dict[int, GeneratedImage] = {}
        self.info: dict[str, Any] = {}


# Per job, so a Processed a script builds from those images keeps their files and the model's info.
_made: weakref.WeakKeyDictionary[Any, _Made] = weakref.WeakKeyDictionary()


def process_images(p: Processing) -> _Processed:
    """Generate ``p``: inline inside a job (a script's ``run``), else as a queued job."""
    processed = _jobs.process_images(p)
    job = context.current_job()
    if job is not None:
        made = _made.setdefault(job, _Made())
        made.images.update({id(g.image): g for g in processed.generated if g.image is not None})
        made.info = processed.js_info
    return processed


class _ProcessedKind(type):
    def __instancecheck__(cls, obj: Any) -> bool:
        return isinstance(obj, _Processed)


class Processed(_Processed, metaclass=_ProcessedKind):
    """A1111's constructor for a script's result; ``isinstance`` is true for every Processed."""

    def __init__(self, p: Processing, images_list: list, seed: int = -1, info: str = "", subseed: int | None = None,
                 all_prompts: list[str] | None = None, all_negative_prompts: list[str] | None = None,
                 all_seeds: list[int] | None = None, all_subseeds: list[int] | None = None,
                 index_of_first_image: int = 0, infotexts: list[str] | None = None, comments: str = "",
                 extra_images_list: list | None = None):
        seed = int(seed[0] if isinstance(seed, list) else seed) if seed is not None else -1
        subseed = int(subseed[0] if isinstance(subseed, list) else subseed) if subseed is not None else -1
        prompt = p.all_prompts[0] if p.all_prompts else p.prompt
        negative = p.all_negative_prompts[0] if p.all_negative_prompts else p.negative_prompt
        images = list(images_list) + list(extra_images_list or [])
        job = context.current_job()
        made = _made.get(job) if job is not None else None
        known = made.images if made is not None else {}
        all_seeds = list(all_seeds or p.all_seeds or [seed])
        all_subseeds = list(all_subseeds or p.all_subseeds or [subseed])
        all_prompts = list(all_prompts or p.all_prompts or [prompt])
        all_negative_prompts = list(all_negative_prompts or p.all_negative_prompts or [negative])
        js_info = {  # the API's info: the last engine run's (model, version...) with these values
            **(made.info if made is not None else {}), "prompt": prompt, "negative_prompt": negative,
            "all_prompts": all_prompts, "all_negative_prompts": all_negative_prompts, "seed": seed,
            "all_seeds": all_seeds, "subseed": subseed, "all_subseeds": all_subseeds, "width": p.width,
            "height": p.height, "sampler_name": p.sampler_name, "cfg_scale": p.cfg_scale, "steps": p.steps,
            "batch_size": p.batch_size, "styles": list(p.styles),
            "extra_generation_params": dict(p.extra_generation_params),
        }
        super().__init__(
            p=p, images=images, infotexts=list(infotexts or [info] * len(images)), seed=seed, all_seeds=all_seeds,
            subseed=subseed, all_subseeds=all_subseeds, info=info, all_prompts=all_prompts,
            all_negative_prompts=all_negative_prompts, js_info=js_info, index_of_first_image=index_of_first_image,
            comments=comments or "".join(f"{c}\n" for c in p.comments),
            generated=[known[id(image)] for image in images if id(image) in known],
        )


def get_fixed_seed(seed: int | str | None) -> int:
    """A1111: -1, None or "" → a random seed; anything else as an int."""
    if seed is None or seed == "" or int(seed) == -1:
        return int(random.randrange(4294967294))
    return int(seed)


def fix_seed(p: Processing) -> None:
    """Turn p's -1 seeds into concrete ones (so a script can reuse them)."""
    p.seed = get_fixed_seed(p.seed)
    p.subseed = get_fixed_seed(p.subseed)


def __getattr__(name: str) -> Any:
    raise missing(f"modules.processing.{name}")
