"""The ``Script`` base class: what an extension's ``scripts/*.py`` subclasses (A1111's names and meaning).

A script is either *selectable* (it appears in the Script dropdown of txt2img / img2img and its
``run`` replaces the normal generation) or *always on* (``show`` returns :data:`AlwaysVisible`: its
hooks run on every job, with the values of its ``ui`` controls). Each tab has its own instance.

The hooks, in the order a job calls them (``p`` is a :class:`webui.plugins.processing.Processing`,
``*args`` this script's values, in the order of the components ``ui`` returned)::

    setup(p, *args)                        the job was made from the request (always-on scripts)
    run(p, *args) -> Processed | None      a selectable script chosen for the job; None: generate as usual
    before_process(p, *args)               process_images starts; prompts and seeds not yet set
    process(p, *args)                      p.all_prompts / p.all_seeds are set and may be rewritten
    before_process_batch(p, *args, batch_number, prompts, seeds, subseeds)
    process_batch(p, *args, batch_number, prompts, seeds, subseeds)    p.prompts may be rewritten
    postprocess_batch(p, *args, images, batch_number)                   images of the batch (PIL)
    postprocess_batch_list(p, pp: PostprocessBatchListArgs, *args, batch_number)
    postprocess_image(p, pp: PostprocessImageArgs, *args)              pp.image may be replaced
    postprocess(p, processed, *args)       the images are made and saved
    loop_callbacks(p, *args) -> [LoopCallback]   native: callbacks for the denoising loop (after process)

A hook that raises is logged with the extension's name, noted in the job's ``info`` and the job
goes on; a script failing in three jobs in a row is switched off until the next restart (the
Extensions tab says so).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from webui.plugins.processing import Processed, Processing


class _AlwaysVisible:
    """``show`` returns this for an always-on script (A1111's ``scripts.AlwaysVisible``)."""

    def __repr__(self) -> str:
        return "AlwaysVisible"

    def __bool__(self) -> bool:
        return True


AlwaysVisible = _AlwaysVisible()


@dataclass
class PostprocessImageArgs:
    """The image ``postprocess_image`` may replace (A1111's name)."""

    image: Image.Image


@dataclass
class PostprocessBatchListArgs:
    """The images of a batch, which ``postprocess_batch_list`` may replace or extend."""

    images: list[Image.Image]


class Script:
    """Base class of extension scripts. Override what you need; every hook is a no-op here."""

    # Set by the loader: the file it came from, the extension that owns it, its place in the args.
    filename: str | None = None
    extension: str | None = None
    args_from: int = 0
    args_to: int = 0
    is_txt2img: bool = False
    is_img2img: bool = False
    alwayson: bool = False
    group: Any = None  # the Gradio group holding this script's controls (selectable scripts)
    infotext_fields: list | None = None  # [(component, "Infotext key")] read back by ↙
    paste_field_names: list[str] | None = None
    api_info: Any = None
    section: str | None = None
    controls: list | None = None

    def title(self) -> str:
        """The name in the Script dropdown and in the API's ``script_name`` / ``alwayson_scripts``."""
        raise NotImplementedError(f"{type(self).__name__} must define title()")

    def show(self, is_img2img: bool) -> bool | _AlwaysVisible:
        """False: not in this tab; True: in the Script dropdown; AlwaysVisible: always on."""
        return True

    def ui(self, is_img2img: bool) -> list[Any]:
        """Create this script's Gradio controls (inside the tab) and return them in args order."""
        return []

    def run(self, p: Processing, *args: Any) -> Processed | None:
        """A selectable script's job: usually changes ``p`` and calls ``process_images`` (any number of times)."""
        return None

    def check_args(self, p: Processing, *args: Any) -> None:
        """Native only: raise ``ValueError`` with a sentence for args this script cannot run with (a bad
        choice, too much work). Called before the job is queued (for the selected script and for
        always-on scripts), so the caller gets a 422 naming ``script_args`` / ``alwayson_scripts``
        instead of a failed job."""

    def setup(self, p: Processing, *args: Any) -> None:
        """The job was made from the request: read your args, set up state (always-on scripts)."""

    def before_process(self, p: Processing, *args: Any) -> None:
        """``process_images`` starts; ``p.all_prompts`` / ``p.all_seeds`` are not set yet."""

    def process(self, p: Processing, *args: Any) -> None:
        """``p.all_prompts`` / ``all_negative_prompts`` / ``all_seeds`` are set and may be rewritten;
        infotext keys go into ``p.extra_generation_params``."""

    def before_process_batch(self, p: Processing, *args: Any, **kwargs: Any) -> None:
        """A batch is about to start (kwargs: batch_number, prompts, seeds, subseeds)."""

    def process_batch(self, p: Processing, *args: Any, **kwargs: Any) -> None:
        """Just before the batch is sampled; ``p.prompts`` (this batch's) may be rewritten."""

    def postprocess_batch(self, p: Processing, *args: Any, **kwargs: Any) -> None:
        """The batch is decoded (kwargs: images — PIL images, batch_number)."""

    def postprocess_batch_list(self, p: Processing, pp: PostprocessBatchListArgs, *args: Any, **kwargs: Any) -> None:
        """The batch's images as a list you may replace (``pp.images``; one per seed is kept)."""

    def postprocess_image(self, p: Processing, pp: PostprocessImageArgs, *args: Any) -> None:
        """Each image before it is saved: replace ``pp.image`` to change it."""

    def loop_callbacks(self, p: Processing, *args: Any) -> list[Any]:
        """Native only: engine loop callbacks (webui/engine/callbacks.py ``LoopCallback``) for this job's
        denoising loop — ControlNet residuals, latent edits. Called in ``process_images`` after ``process``."""
        return []

    def postprocess(self, p: Processing, processed: Processed, *args: Any) -> None:
        """The images are made and saved; ``processed`` is what the job returns."""

    def describe(self) -> str:
        """A longer description (A1111 keeps this for compatibility; it is not shown)."""
        return ""

    def elem_id(self, item_id: str) -> str:
        """A1111's element id for a control of this script: ``<tab>_script_<title>_<item>``."""
        tab = "img2img" if self.is_img2img else "txt2img"
        title = "".join(c if c.isalnum() else "_" for c in self.title().lower()).strip("_")
        return f"script_{tab}_{title}_{item_id}"


# Hooks a job calls on always-on scripts; a script that defines none of them costs nothing per job.
JOB_HOOKS = ("setup", "before_process", "process", "before_process_batch", "process_batch", "postprocess_batch",
             "postprocess_batch_list", "postprocess_image", "postprocess", "loop_callbacks")


def overrides(script: Script, hook: str) -> bool:
    """Whether ``script`` defines ``hook`` itself (not the base class's no-op)."""
    return getattr(type(script), hook, None) is not getattr(Script, hook, None)
