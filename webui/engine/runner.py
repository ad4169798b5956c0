"""The engine: GenerationRequest in, Result out. Pure engine code: no Gradio, no FastAPI.

A job snapshots the options and builds its plan when it starts, takes the model lock for its
whole length (a model switch requested meanwhile waits for it), runs its batches, saves each
image with its infotext, and restores the model that was active before it. Nothing here calls
out (option listeners, ...) while the lock is held: kept overrides are written to the options
after the lock is released.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from webui.engine.batch import BatchRunner
from webui.engine.callbacks import Callbacks, ImageSaving
from webui.engine.plan import GenerationPlan, JobAdditions, build_plan
from webui.engine.preparation import Preparation
from webui.engine.progress import JobControl, NoControl, ProgressCallback
from webui.engine.records import (
    api_info,
    build_infotext,
    extra_generation_params,
    infotext_params,
)
from webui.engine.tiling import TilingCallback
from webui.flags import Paths
from webui.models.manager import ActiveModel, ModelManager, ModelSession
from webui.outputs import dated_folder, make_grid, save_png
from webui.request import GenerationRequest
from webui.result import GeneratedImage, Result
from webui.settings import Options
from webui.upscalers import hires_upscalers, is_latent
from webui.upscaling import UpscalerError, Upscalers

log = logging.getLogger(__name__)


class Engine:
    """Runs generation jobs on the models of a ``ModelManager``; one job at a time per manager."""

    def __init__(self, manager: ModelManager, options: Options, paths: Paths | None, *, styles: Any = None,
                 networks: Any = None, callbacks: Sequence[object] = (), upscalers: Upscalers | None = None):
        self.manager = manager
        self.upscalers = upscalers or Upscalers()  # hires fix's pixel upscalers (models: the studio's folders)
        self.options = options
        self.paths = paths
        self.styles = styles  # webui.styles.StyleDatabase
        self.networks = networks  # webui.networks.catalog.NetworkCatalog
        self.callbacks = tuple(callbacks)  # loop callbacks added to every job (extensions)

    def run(self, request: GenerationRequest, ctx: JobControl | None = None,
            additions: JobAdditions | None = None) -> Result:
        """Run one job; ``additions`` carry what scripts add (callbacks, per-image prompts...)."""
        control = ctx or NoControl()
        self._check_upscaler(request)
        options = self.options.snapshot()
        callbacks = [*self.callbacks, *([TilingCallback()] if request.tiling else [])]
        plan = build_plan(request, options, self.styles, callbacks, additions)
        main: ActiveModel | None = None
        finished = False
        with self.manager.session() as models:
            try:
                main = models.get(plan.checkpoint, plan.vae)  # None: the active model
                result = _Job(plan, models, main, self, control).execute()
                finished = True
            finally:
                self._leave(plan, models, main, finished, str(options["sd_vae"]))
        if plan.keep_overrides and main is not None:
            self._keep_overrides(request, plan, main, result)
        return result

    def _check_upscaler(self, request: GenerationRequest) -> None:
        """A hires upscaler the studio does not have fails the job before it starts, with the choices."""
        name = request.hr_upscaler
        if request.enable_hr and not is_latent(name) and self.upscalers.find(name) is None:
            raise UpscalerError(f"hires fix: unknown upscaler {name!r}; available: "
                                f"{', '.join(hires_upscalers(self.upscalers.names()))}")

    @staticmethod
    def _leave(plan: GenerationPlan, models: ModelSession, main: ActiveModel | None, finished: bool, vae: str) -> None:
        """Back to the model the job started with, or to its override when that is kept."""
        try:
            if plan.keep_overrides and finished and main is not None:
                models.get(main.file, plan.vae)  # back from a refiner or hires checkpoint
            else:
                models.restore(vae)
        except Exception as e:
            log.error("could not restore the model after the job: %s", e)
            if finished:  # otherwise the job's own error is the one to report
                raise

    def _keep_overrides(self, request: GenerationRequest, plan: GenerationPlan, main: ActiveModel,
                        result: Result) -> None:
        """Kept overrides: the options must name what is now loaded, as A1111's do.

        Written after the model lock is released (option listeners may load models); the VAE
        first, so the checkpoint listener applies the new VAE, not the old one.
        """
        kept: dict[str, Any] = {}
        if "sd_vae" in request.override_settings:
            kept["sd_vae"] = plan.vae
        if plan.checkpoint is not None:
            kept["sd_model_checkpoint"] = main.file.title
        try:
            self.options.update(kept)
        except Exception as e:  # the images are made and saved: report, do not fail the job
            log.error("kept overrides %s not saved: %s", kept, e)
            result.info["notes"].append(f"override_settings were applied but could not be kept: {e}")


class _Job:
    """One plan being run: batches, saving, infotexts, the grid and the API info."""

    def __init__(self, plan: GenerationPlan, models: ModelSession, main: ActiveModel, engine: Engine,
                 control: JobControl):
        self.plan = plan
        self.main = main
        self.engine = engine
        self.control = control
        self.options = plan.options
        self.prep = Preparation(plan.options, engine.networks)
        progress = ProgressCallback(control, previews=bool(plan.options["live_previews_enable"]))
        self.callbacks = Callbacks([*plan.callbacks, progress])
        self.batches = BatchRunner(plan, models, main.file, self.prep, self.callbacks, engine.upscalers)
        self.save_warnings: list[str] = []

    def execute(self) -> Result:
        started = time.perf_counter()
        images: list[GeneratedImage] = []
        prompts: list[tuple[str, str]] = []
        extra: dict[str, Any] = {}
        interrupted = False
        try:
            for iteration in range(self.plan.iterations):
                seeds, subseeds = self.plan.batch(iteration)
                first = iteration * self.plan.batch_size
                saved = [self.control.saved_image(first + i) for i in range(len(seeds))]
                restored = self._restored(saved, seeds, subseeds)
                if restored is not None:  # made and saved before a restart: not made again
                    images += restored
                    prompts += self.plan.prompts_of(iteration)
                    continue
                outcome = self.batches.run(iteration)
                for position, image, pair in zip(outcome.positions, outcome.images, outcome.prompts):
                    seed, subseed = seeds[position], subseeds[position]
                    params = infotext_params(self.plan, self.main, outcome.facts, self.prep.infotext, seed, subseed,
                                             position)
                    extra = extra or extra_generation_params(params)
                    generated = GeneratedImage(image, seed, subseed, build_infotext(pair, params))
                    images.append(self._save(first + position, generated, saved[position]))
                    prompts.append(pair)
                if self.control.interrupted:
                    interrupted = True
                    break
                self.control.consume_skip()
        finally:
            self.prep.close()
        grid = self._grid(images)
        warnings = list(self.prep.warnings) + self.save_warnings
        info = api_info(self.plan, self.main, [g.infotext for g in images], [g.seed for g in images],
                        [g.subseed for g in images], extra, warnings, prompts)
        return Result(images, info, grid, interrupted, {"total": time.perf_counter() - started}, warnings=warnings)

    @staticmethod
    def _restored(records: list[dict | None], seeds, subseeds) -> list[GeneratedImage] | None:
        """A batch whose images were all saved before (a job re-run after a crash), read back."""
        if not records or not all(r and r.get("path") and Path(r["path"]).is_file() for r in records):
            return None
        restored = []
        for record, seed, subseed in zip(records, seeds, subseeds):
            assert record is not None
            with Image.open(record["path"]) as saved:
                image = saved.convert("RGB")
            restored.append(GeneratedImage(image, seed, subseed, record.get("infotext", ""), Path(record["path"])))
        return restored

    # --- saving ------------------------------------------------------------------------------

    @property
    def _mode(self) -> str:
        return "txt2img" if self.plan.request.img2img is None else "img2img"

    def _outdir(self, key: str) -> Path:
        assert self.engine.paths is not None
        return dated_folder(self.engine.paths.output_folder(self.options, key), bool(self.options["save_to_dirs"]))

    def _save(self, index: int, generated: GeneratedImage, saved: dict | None) -> GeneratedImage:
        """Save image ``index`` (once: a job re-run after a crash reuses the file it wrote)."""
        if saved is not None and saved.get("path") and Path(saved["path"]).is_file():
            generated.path = Path(saved["path"])
            return generated
        if not (self.plan.request.save_images and self.options["samples_save"] and self.engine.paths is not None):
            return generated
        text = generated.infotext if self.options["enable_pnginfo"] else None
        img2img = self.plan.request.img2img
        try:
            if img2img is not None and img2img.output_dir:  # an img2img batch: its own folder, the input's name
                assert self.engine.paths is not None
                folder = self.engine.paths.outputs(img2img.output_dir)
            else:
                folder = self._outdir(f"outdir_{self._mode}_samples")
            saving = ImageSaving(index, generated.image, text or "", generated.seed, folder)
            self.callbacks.before_save(saving)
            generated.image = saving.image
            self.control.image_starting(index, str(folder))
            generated.path = save_png(saving.image, folder, str(generated.seed), saving.infotext or None,
                                      extra_text=self.control.image_tag(index),
                                      name=_output_name(img2img.output_name, index) if img2img else None)
            saving.path = generated.path
            self.callbacks.after_save(saving)
        except (OSError, ValueError) as e:  # a full or read-only disk, a folder outside the allowed ones
            log.error("image %d not saved: %s", index, e)
            self.save_warnings.append(f"image {index + 1} was not saved ({e}); it is in the result only")
            return generated
        self.control.record_image(index, str(generated.path), {
            "path": str(generated.path), "seed": generated.seed, "subseed": generated.subseed,
            "infotext": generated.infotext,
        })
        return generated

    def _grid(self, images: list[GeneratedImage]) -> GeneratedImage | None:
        if len(images) < 2:
            return None
        first = images[0]
        grid = GeneratedImage(make_grid([g.load() for g in images]), first.seed, first.subseed, first.infotext)
        if self.plan.request.save_grid and self.options["grid_save"] and self.engine.paths is not None:
            text = first.infotext if self.options["enable_pnginfo"] else None
            try:
                grid.path = save_png(grid.image, self._outdir(f"outdir_{self._mode}_grids"), str(first.seed), text,
                                     prefix="grid-")
            except (OSError, ValueError) as e:
                log.error("grid not saved: %s", e)
                self.save_warnings.append(f"the grid was not saved ({e})")
        return grid


def _output_name(name: str | None, index: int) -> str | None:
    """A batch input's file name for its output (a safe stem: no folders); later images get -N."""
    if not name:
        return None
    stem = Path(name).stem.replace("\x00", "")
    if not stem or stem in (".", ".."):
        return None
    return stem if index == 0 else f"{stem}-{index}"
