"""Scripts' batch and image hooks and the ``on_cfg_*`` / image-saved callbacks, as one loop callback.

The engine knows nothing of scripts: :class:`ScriptLoopHooks` sits at its callback points
(webui/engine/callbacks.py) and calls A1111's hooks with ``p`` kept up to date::

    before_batch  → before_process_batch, process_batch (p.prompts may be rewritten)
    before_unet   → on_cfg_denoiser        after_unet → on_cfg_denoised
    after_cfg     → on_cfg_after_cfg       after_decode → postprocess_batch, postprocess_batch_list,
                                                           postprocess_image
    before_save   → on_before_image_saved  after_save → on_image_saved
"""

from __future__ import annotations

from typing import Any

import torch

from webui.engine.callbacks import (
    BatchStart,
    DecodedBatch,
    ImageSaving,
    LoopCallback,
    StepContext,
    UNetCall,
    UNetOutput,
)
from webui.plugins.callbacks import (
    AfterCFGCallbackParams,
    CallbackRegistry,
    CFGDenoisedParams,
    CFGDenoiserParams,
    ImageSaveParams,
)
from webui.plugins.processing import Processing
from webui.plugins.script import PostprocessBatchListArgs, PostprocessImageArgs


class ScriptLoopHooks(LoopCallback):
    order = -50  # before the engine's own image-changing callbacks (inpaint blending is -10)

    def __init__(self, p: Processing, scripts: Any, registry: CallbackRegistry, notes: list[str],
                 failed: set[str]):
        self.p = p
        self.scripts = scripts  # ScriptSet, or None for a p made by a script
        self.registry = registry
        self.notes = notes
        self.failed = failed
        self._cfg = {kind: registry.has(kind) for kind in ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg")}
        self._saving = {kind: registry.has(kind) for kind in ("before_image_saved", "image_saved")}

    def _hook(self, hook: str, *before: Any, **kwargs: Any) -> None:
        if self.scripts is not None:
            self.notes += self.scripts.call(hook, self.p, *before, failed=self.failed, **kwargs)

    # --- batches and images ------------------------------------------------------------------

    def before_batch(self, batch: BatchStart) -> None:
        p = self.p
        p.iteration = batch.iteration
        p.prompts, p.negative_prompts = list(batch.prompts), list(batch.negative_prompts)
        p.seeds, p.subseeds = list(batch.seeds), list(batch.subseeds)
        batch_args = dict(batch_number=batch.iteration, prompts=p.prompts, seeds=p.seeds, subseeds=p.subseeds)
        self._hook("before_process_batch", **batch_args)
        self._hook("process_batch", **batch_args)
        if len(p.prompts) == len(batch.prompts):
            batch.prompts = [str(text) for text in p.prompts]
        if len(p.negative_prompts) == len(batch.negative_prompts):
            batch.negative_prompts = [str(text) for text in p.negative_prompts]

    def after_decode(self, decoded: DecodedBatch) -> None:
        number = self.p.iteration
        self._hook("postprocess_batch", images=decoded.images, batch_number=number)
        listed = PostprocessBatchListArgs(list(decoded.images))
        self._hook("postprocess_batch_list", listed, batch_number=number)
        images = list(listed.images)[:len(decoded.images)]  # the engine keeps one image per seed
        for i, image in enumerate(images):
            pp = PostprocessImageArgs(image)
            self._hook("postprocess_image", pp)
            images[i] = pp.image
        decoded.images = images

    def before_save(self, saving: ImageSaving) -> None:
        if not self._saving["before_image_saved"]:
            return
        params = ImageSaveParams(saving.image, self.p, str(saving.folder), {"parameters": saving.infotext})
        self.registry.call("before_image_saved", params)
        saving.image = params.image
        saving.infotext = str(params.pnginfo.get("parameters", saving.infotext) or "")

    def after_save(self, saving: ImageSaving) -> None:
        if self._saving["image_saved"]:
            self.registry.call("image_saved", ImageSaveParams(saving.image, self.p, str(saving.path),
                                                              {"parameters": saving.infotext}))

    # --- the denoising loop ------------------------------------------------------------------

    def before_unet(self, call: UNetCall) -> None:
        if not self._cfg["cfg_denoiser"]:
            return
        rows = call.layout.images
        embeds = call.encoder_hidden_states
        uncond = embeds[:rows] if call.layout.uncond else None
        cond = embeds[rows:] if call.layout.uncond else embeds
        params = CFGDenoiserParams(call.sample, None, call.timestep, call.step, call.stage.run.run_steps, cond, uncond)
        self.registry.call("cfg_denoiser", params)
        if params.x is not call.sample and params.x.shape == call.sample.shape:
            call.sample = params.x
        if params.text_cond is not cond or params.text_uncond is not uncond:
            parts = ([params.text_uncond] if params.text_uncond is not None else []) + [params.text_cond]
            replaced = torch.cat(parts)
            if replaced.shape == embeds.shape:
                call.encoder_hidden_states = replaced

    def after_unet(self, output: UNetOutput) -> None:
        if not self._cfg["cfg_denoised"]:
            return
        call = output.call
        params = CFGDenoisedParams(output.output, call.step, call.stage.run.run_steps)
        self.registry.call("cfg_denoised", params)
        if params.x is not output.output and params.x.shape == output.output.shape:
            output.output = params.x

    def after_cfg(self, step: StepContext) -> None:
        if not self._cfg["cfg_after_cfg"]:
            return
        denoised = step.denoised
        params = AfterCFGCallbackParams(denoised, step.step, step.stage.run.run_steps)
        self.registry.call("cfg_after_cfg", params)
        if params.x is not denoised and params.x.shape == denoised.shape:
            step.denoised = params.x
