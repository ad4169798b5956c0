"""Jobs with scripts: the queue's work function when extensions are loaded.

    request → p (Processing) → always-on setup → the selected script's run(p, ...) or
    process_images(p) → Processed → the job's Result

``process_images(p)`` inside a job runs the engine right here, on the job's thread, as often as
the script calls it (each call's images are numbered after the previous ones, so a job re-run
after a crash does not mistake them for each other). Called outside a job (an extension's route
or tab), it queues a job and waits for it.
"""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING, Any, Iterator

from webui.engine.plan import JobAdditions, styled_prompts
from webui.engine.progress import JobControl, NoControl
from webui.plugins import context
from webui.plugins.loop_hooks import ScriptLoopHooks
from webui.plugins.problems import Problems
from webui.plugins.processing import Processed, Processing
from webui.request import GenerationRequest
from webui.result import Result

if TYPE_CHECKING:
    from webui.engine.runner import Engine
    from webui.plugins.callbacks import CallbackRegistry
    from webui.plugins.script_set import ScriptSet


class ScriptFailed(RuntimeError):
    """The selected script's ``run`` raised: the job fails with the script's name and error."""


class ScriptedJobs:
    """Runs requests through the scripts of their tab, then the engine."""

    def __init__(self, engine: Engine, scripts: dict[str, ScriptSet], registry: CallbackRegistry, problems: Problems):
        self.engine = engine
        self.scripts = scripts  # "txt2img" / "img2img"
        self.registry = registry
        self.problems = problems

    def script_set(self, request: GenerationRequest) -> ScriptSet:
        return self.scripts["img2img" if request.img2img is not None else "txt2img"]

    def run(self, request: GenerationRequest, ctx: JobControl | None = None) -> Result:
        scripts = self.script_set(request)
        if not request.script_name and not scripts.has_hooks() and not self._loop_callbacks():
            return self.engine.run(request, ctx)  # nothing to call: the engine alone
        job = ScriptedJob(self, ctx or NoControl())
        selected, args = scripts.job_args(request)
        owner = getattr(getattr(ctx, "job", None), "owner", None)
        p = Processing.from_request(request, user=owner)
        p.scripts, p.script_args = scripts, args
        p.outpath_samples, p.outpath_grids = self._output_folders(scripts.tab)
        # The model lock for the whole job: a switch asked for meanwhile waits, so every
        # process_images of a script runs on the model the job started with (unless it overrides
        # it); that model comes back once, at the end (a checkpoint per cell is then loaded once).
        with self.engine.manager.session() as models, context.running(job):
            try:
                processed = self._run_scripts(job, scripts, selected, args, p)
            finally:
                try:
                    models.finish(str(self.engine.options.get("sd_vae")))
                except Exception as e:  # the job's own error, if any, is the one to report
                    job.notes.append(f"the model active before the job could not be restored: {e}")
        for key in scripts.hook_keys():
            self.problems.job_outcome(key, key in job.failed)
        return processed.to_result(job.notes)

    def _run_scripts(self, job: ScriptedJob, scripts: ScriptSet, selected: Any, args: list[Any],
                     p: Processing) -> Processed:
        """Always-on setup, then the selected script's run (or the plain job)."""
        job.notes += scripts.call("setup", p, failed=job.failed)
        processed = None
        if selected is not None:
            try:
                processed = selected.run(p, *args[selected.args_from:selected.args_to])
            except Exception as e:
                problem = self.problems.record(selected.extension, f"run of {scripts.title_of(selected)}", e)
                raise ScriptFailed(f"script {scripts.title_of(selected)} ({problem.extension}) failed: "
                                   f"{problem.message}") from e
        if processed is None:
            processed = job.process_images(p)
        return processed

    def _output_folders(self, tab: str) -> tuple[str | None, str | None]:
        """Where this tab's images and grids go (A1111's ``p.outpath_samples`` / ``outpath_grids``)."""
        paths, options = self.engine.paths, self.engine.options
        if paths is None:
            return None, None
        try:
            return (str(paths.output_folder(options, f"outdir_{tab}_samples")),
                    str(paths.output_folder(options, f"outdir_{tab}_grids")))
        except ValueError:  # a folder outside the allowed roots: the engine reports it when saving
            return None, None

    def _loop_callbacks(self) -> bool:
        kinds = ("cfg_denoiser", "cfg_denoised", "cfg_after_cfg", "before_image_saved", "image_saved")
        return any(self.registry.has(kind) for kind in kinds)


class ScriptedJob:
    """One job's scripted run: its control, the images made so far, the notes for its info."""

    def __init__(self, jobs: ScriptedJobs, control: JobControl):
        self.jobs = jobs
        self.control = control
        self.made = 0  # images the engine made in this job so far
        self.part: tuple[int, int] | None = None  # (index, count): see job_part
        self.notes: list[str] = []
        self.failed: set[str] = set()

    def process_images(self, p: Processing) -> Processed:
        """A1111's ``process_images`` for a p of this job (or one a script made)."""
        scripts = p.scripts
        if scripts is not None:
            self.notes += scripts.call("before_process", p, failed=self.failed)
        request = p.to_request()
        _set_prompts_and_seeds(p, request, self.jobs.engine)
        if scripts is not None:
            self.notes += scripts.call("process", p, failed=self.failed)
        request = p.to_request()  # process may have changed p's settings too
        hooks = ScriptLoopHooks(p, scripts, self.jobs.registry, self.notes, self.failed)
        native: list[Any] = []
        if scripts is not None:
            native, notes = scripts.loop_callbacks(p, self.failed)
            self.notes += notes
        additions = JobAdditions(
            callbacks=(hooks, *native),
            prompts=tuple(str(t) for t in p.all_prompts or ()), negative_prompts=tuple(str(t) for t in p.all_negative_prompts or ()),
            seeds=tuple(int(s) for s in p.all_seeds or ()), subseeds=tuple(int(s) for s in p.all_subseeds or ()),
            extra_params={str(k): v for k, v in p.extra_generation_params.items() if v is not None},
        )
        control: Any = _Numbered(self.control, self.made)
        if self.part is not None:
            control = _Part(control, *self.part)
        result = self.jobs.engine.run(request, control, additions)
        self.made += len(result.images)
        processed = Processed.from_result(p, result)
        if scripts is not None:
            self.notes += scripts.call("postprocess", p, processed, failed=self.failed)
        return processed


def _set_prompts_and_seeds(p: Processing, request: GenerationRequest, engine: Engine) -> None:
    """``all_prompts`` (styles applied) and ``all_seeds`` from p, as A1111 sets them at each
    process_images; scripts rewrite them in ``process``."""
    count = request.image_count
    prompt, negative = styled_prompts(request, engine.options.snapshot(), engine.styles)
    p.all_prompts = [prompt] * count
    p.all_negative_prompts = [negative] * count
    first = request.seed if request.seed >= 0 else random.randrange(2**32 - 1)
    p.all_seeds = [first + i for i in range(count)]
    first = request.subseed if request.subseed >= 0 else random.randrange(2**32 - 1)
    p.all_subseeds = [first + i for i in range(count)]
    p.seed, p.subseed = p.all_seeds[0], p.all_subseeds[0]


class _Numbered:
    """A job's control for one engine run inside it: its images numbered after ``offset``."""

    def __init__(self, control: JobControl, offset: int):
        self._control = control
        self._offset = offset

    def __getattr__(self, name: str) -> Any:
        return getattr(self._control, name)

    def saved_image(self, index: int) -> dict | None:
        return self._control.saved_image(self._offset + index)

    def image_tag(self, index: int) -> dict[str, str] | None:
        return self._control.image_tag(self._offset + index)

    def image_starting(self, index: int, folder: str) -> None:
        self._control.image_starting(self._offset + index, folder)

    def record_image(self, index: int, path: str | None, record: dict) -> None:
        self._control.record_image(self._offset + index, path, record)


class _Part:
    """A job's control for the runs of one part of a script (cell ``index`` of ``count``): its
    progress reports count as that share of the whole job, not as the whole job."""

    def __init__(self, control: Any, index: int, count: int):
        self._control = control
        self._index = index
        self._count = max(1, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._control, name)

    def report(self, step: int, total: int, *, image_index: int = 0, image_count: int = 1,
               preview: object | None = None) -> None:
        image_count = max(1, image_count)
        self._control.report(step, total, image_index=self._index * image_count + image_index,
                             image_count=self._count * image_count, preview=preview)


@contextlib.contextmanager
def job_part(index: int, count: int) -> Iterator[None]:
    """Inside the block, ``process_images`` reports its progress as part ``index`` of ``count`` of
    the running job (a script making many images one call at a time: X/Y/Z plot's cells)."""
    job = context.current_job()
    if job is None:
        yield
        return
    saved, job.part = job.part, (index, count)
    try:
        yield
    finally:
        job.part = saved


def job_control() -> JobControl:
    """The running job's control (``interrupted``, ``skipped``), or a stand-in outside a job."""
    job = context.current_job()
    return job.control if job is not None else NoControl()


def process_images(p: Processing) -> Processed:
    """Run ``p``: inline inside a job, otherwise as a new job through the queue (waiting for it)."""
    job = context.current_job()
    if job is not None:
        return job.process_images(p)
    result = context.plugins().submit_and_wait(p.to_request(), owner=p.user)
    return Processed.from_result(p, result)
