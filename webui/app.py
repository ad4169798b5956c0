"""The running studio: one object that owns settings, models, the job queue and the engine.

Front ends (Gradio tabs, REST routers, scripts) receive a Studio and talk only to its queue,
catalog, manager and options; they never build pipelines or run generation themselves.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from webui import limits
from webui.auth.authenticator import Authenticator
from webui.auth.users import UserStore, parse_pairs
from webui.control.models import ControlNets
from webui.control.preprocessors import Preprocessors
from webui.engine.runner import Engine
from webui.flags import CommandLine, OutsideFolder, Paths
from webui.job_codec import RequestCodec
from webui.jobs import Job, JobQueue, JobState, JobStore
from webui.models.catalog import Catalog
from webui.models.demo import DEMO_NOTICE, ensure_demo_checkpoint, is_synthetic
from webui.models.hashes import HashCache
from webui.models.manager import ModelManager
from webui.models.refusals import RefusedFiles
from webui.models.safe_load import CheckpointError
from webui.models.startup import startup_candidates
from webui.networks.catalog import NetworkCatalog
from webui.outputs import remove_partial_files
from webui.plugins.extensions import Extension, disable_all_mode, discover
from webui.plugins.installer import ExtensionInstaller, InstallReport
from webui.plugins.jobs import ScriptedJobs
from webui.plugins.loader import Plugins, load_plugins
from webui.request import GenerationRequest
from webui.result import Result
from webui.segment import Segmenter
from webui.settings import OUTPUT_FOLDER_OPTIONS, OptionError, Options
from webui.styles import StyleDatabase
from webui.upscaling import Upscalers

log = logging.getLogger(__name__)


class DataDirError(RuntimeError):
    """The data dir cannot be used (read-only, full, not a folder); the message says what to do."""


def check_data_dir(data_dir: Path) -> None:
    """Fail at start, with a sentence, when the data dir cannot be written."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe = data_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise DataDirError(f"the data dir {data_dir} cannot be written ({e.strerror or e}): give a writable "
                           "folder with --data-dir, or free some space") from None


def flag_users(cmd: CommandLine) -> dict[str, str]:
    """Users from A1111's --gradio-auth, --gradio-auth-path and --api-auth (admins, in memory)."""
    users: dict[str, str] = {}
    if cmd.gradio_auth:
        users.update(parse_pairs(cmd.gradio_auth, "--gradio-auth"))
    if cmd.gradio_auth_path:
        try:
            text = cmd.gradio_auth_path.read_text(encoding="utf-8")
        except OSError as e:
            raise DataDirError(f"--gradio-auth-path {cmd.gradio_auth_path}: {e.strerror or e}") from None
        users.update(parse_pairs(text, "--gradio-auth-path"))
    if cmd.api_auth:
        users.update(parse_pairs(cmd.api_auth, "--api-auth"))
    return users


class Studio:
    def __init__(self, cmd: CommandLine):
        self.cmd = cmd
        self.paths = Paths.from_cmd(cmd)
        check_data_dir(self.paths.data_dir)
        self.options = Options(self.paths.config_file)
        self.users = UserStore(self.paths.data_dir / "users.json", flag_users(cmd))
        self.auth = Authenticator(self.users)
        self.hashes = HashCache(self.paths.cache_file)
        if not cmd.no_demo_model:
            ensure_demo_checkpoint(self.paths.ckpt_dir)
        self.paths.vae_dir.mkdir(parents=True, exist_ok=True)
        self.refused = RefusedFiles(self.paths.data_dir / "refused.json")
        self.catalog = Catalog(self.paths.ckpt_dir, self.paths.vae_dir, self.hashes, self.refused)
        self.styles = StyleDatabase(self.paths.data_dir / "styles.csv")
        network_folders = self.paths.network_folders()
        for folders in network_folders.values():
            folders[0].mkdir(parents=True, exist_ok=True)
        self.networks = NetworkCatalog(network_folders, self.hashes, self.refused)
        offload = "sequential" if cmd.lowvram else "model" if cmd.medvram else None
        self.manager = ModelManager(
            self.catalog, device=cmd.device, half=not cmd.no_half, offload=offload,
            ram_cache=self.options.sd_checkpoint_cache,
        )
        # Upscalers (None/Lanczos/Nearest + model files): shared by hires fix, Extras and scripts.
        self.upscalers = Upscalers.for_models_dir(self.paths.models_dir, self.paths.esrgan_dir,
                                                  device=self.manager.device, dtype=self.manager.dtype,
                                                  options=self.options)
        self.engine = Engine(self.manager, self.options, self.paths, styles=self.styles, networks=self.networks,
                             upscalers=self.upscalers)
        self.plugins = self._load_extensions()
        self.jobs = ScriptedJobs(self.engine, self.plugins.scripts, self.plugins.callbacks, self.plugins.problems)
        self.queue = JobQueue(
            self.jobs.run, store=JobStore(self.paths.data_dir / "jobs.sqlite"), codec=RequestCodec(),
            preview_every=self.options.show_progress_every_n_steps,
            max_per_owner=self.options.queue_max_per_user, max_total=self.options.queue_max_total,
        )
        # Click-to-mask: one SAM model at a time, shared by the UI and the API (vit_h is 2.5 GB).
        self.segmenter = Segmenter()
        self.sam_dir = self.paths.models_dir / "sam"
        # ControlNet preprocessors: annotator weights from a local folder only; a detector holds the
        # model lock only while its network is on the GPU.
        self.preprocessors = Preprocessors(self.paths.annotators_dir, device=self.manager.device,
                                           device_lock=lambda: self.manager.lock)
        # ControlNet models: models/ControlNet and --controlnet-dir, listed as the extension lists them.
        self.controlnets = ControlNets([self.paths.models_dir / "ControlNet", self.paths.controlnet_dir],
                                       cache_size=lambda: self.options.control_net_model_cache_size,
                                       exclude=[self.paths.annotators_dir])
        self.load_error: str | None = None
        self._wire_options()

    def _load_extensions(self) -> Plugins:
        """Discover extensions (config.json and flags say which are on) and import their scripts."""
        mode = disable_all_mode(self.options.get("disable_all_extensions"), disable_all=self.cmd.disable_all_extensions,
                                disable_extra=self.cmd.disable_extra_extensions)
        # No git calls: nothing at start reads an extension's commit (the Extensions tab reads its own).
        found = discover(self.paths.extensions_dir, disabled=self.options.get("disabled_extensions") or (),
                         disable_all=mode, read_git=False)
        installs = self._run_installs(found)
        plugins = load_plugins(found, options=self.options, cmd=self.cmd)
        for report in installs:  # an install.py that failed: its extension still loads, as in A1111
            plugins.problems.record(report.name, "install.py", RuntimeError(f"{report.message}\n{report.output}"))
        plugins.submit_and_wait = self.generate
        plugins.studio = self
        for name, error in self.cmd.preload_errors:
            plugins.problems.record(name, "preload.py", RuntimeError(error))
        return plugins

    def _run_installs(self, extensions: list[Extension]) -> list[InstallReport]:
        """install.py of extensions installed, updated or with new requirements since it last ran."""
        installer = ExtensionInstaller(self.paths.extensions_dir, self.paths.data_dir / "extensions_state.json",
                                       skip_install=self.cmd.skip_install)
        failed = []
        for ext in extensions:
            if ext.enabled and not ext.builtin:
                report = installer.run_install_if_needed(ext)
                if report is not None:
                    log.info("extension %s: install.py: %s", ext.name, report.message)
                    if not report.ok:
                        failed.append(report)
        return failed

    def _wire_options(self) -> None:
        opts = self.options
        opts.on_change("sd_model_checkpoint", lambda title: self._switch(title))
        opts.on_change("sd_vae", lambda vae: self.manager.set_vae(vae))
        opts.on_change("sd_checkpoint_cache", lambda n: self.manager.set_ram_cache(n))
        opts.on_change("control_net_model_cache_size", lambda n: self.controlnets.set_cache_size(n))
        opts.on_change("show_progress_every_n_steps", lambda n: setattr(self.queue, "preview_every", n))
        opts.on_change("queue_max_per_user", lambda n: setattr(self.queue, "max_per_owner", n))
        opts.on_change("queue_max_total", lambda n: setattr(self.queue, "max_total", n))
        for key in OUTPUT_FOLDER_OPTIONS:
            opts.on_change(key, self._check_output_folder)

    def _check_output_folder(self, folder: str) -> None:
        """Output folders stay inside the data dir (or folders the admin allowed at start)."""
        if folder:
            try:
                self.paths.outputs(folder)
            except OutsideFolder as e:
                raise OptionError(str(e)) from None

    def _switch(self, title: str) -> None:
        model = self.manager.load(title, self.options.sd_vae)
        self.load_error = None
        log.info("checkpoint %s loaded", model.file.title)
        self.plugins.callbacks.call("model_loaded", model)  # the manager's lock is released by now

    def start(self) -> None:
        self._clean_outputs()
        self.load_initial_model()
        revived = self.queue.recover()
        if revived:
            log.info("%d job(s) from before the restart will run", revived)
        forgotten = self.queue.forget_finished(float(self.options.jobs_keep_days) * 86400)
        if forgotten:
            log.info("%d finished job(s) older than %s days forgotten", forgotten, self.options.jobs_keep_days)
        self.queue.start()

    def _clean_outputs(self) -> None:
        """Half-written files a crash left in the output folders."""
        for key in OUTPUT_FOLDER_OPTIONS:
            folder = self.options.get(key)
            if not folder:
                continue
            try:
                path = self.paths.outputs(folder)
            except OutsideFolder:
                continue
            if path.is_dir():
                remove_partial_files(path)

    def stop(self) -> None:
        self.queue.stop(timeout=10)
        self.plugins.shutdown()

    def load_initial_model(self) -> None:
        """--ckpt, else the saved choice, else the best candidate that loads (see startup.py)."""
        wanted = [str(self.cmd.ckpt)] if self.cmd.ckpt else []
        if self.options.sd_model_checkpoint:
            wanted.append(self.options.sd_model_checkpoint)
        wanted += [f.title for f in startup_candidates(self.catalog)]
        for title in wanted:
            try:
                model = self.manager.load(title, self.options.sd_vae)
            except CheckpointError as e:
                self.load_error = str(e)
                log.error("could not load %s: %s", title, e)
                continue
            changed = self.options.update({"sd_model_checkpoint": model.file.title})
            self.load_error = None
            if not changed:  # otherwise the option's listener (_switch) has told the extensions
                self.plugins.callbacks.call("model_loaded", model)
            return
        log.warning("no checkpoint could be loaded; generation is unavailable until one is added")

    def model_notice(self) -> str | None:
        """A line for the UI when the active model deserves a warning (demo weights, load error)."""
        active = self.manager.selected
        if active is None:
            return self.load_error or "No checkpoint loaded: add one to models/Stable-diffusion and refresh."
        if is_synthetic(active.file.path):
            return DEMO_NOTICE
        return None

    def refresh_checkpoints(self) -> None:
        self.catalog.refresh()

    def count_tokens(self, text: str, steps: int = 20) -> tuple[int, int]:
        """(tokens, limit) for the prompt box counter, e.g. (80, 150); (0, 75) with no model.

        A1111's counting (``count_prompt_tokens``), after removing # comments when they are on.
        Reads the active model without ``manager.use()``: that lock is held for a whole job, so the
        counter would freeze while generating; only the (pure Python) tokenizer is used, and the
        reference keeps the model alive if a switch replaces it meanwhile.
        """
        from webui.prompts.conditioning import count_prompt_tokens
        from webui.prompts.encoder import PromptEncoder
        from webui.prompts.parser import strip_comments

        model = self.manager.selected
        if model is None:
            return 0, 75
        encoder = PromptEncoder(model.pipe, sdxl=model.spec.is_sdxl, emphasis=self.options.get("emphasis"),
                                comma_backtrack=self.options.get("comma_padding_backtrack"))
        text = strip_comments(text or "") if self.options.get("enable_prompt_comments") else text or ""
        try:
            return count_prompt_tokens(encoder, text, steps)
        except Exception:  # a half-typed prompt the grammar refuses: count it as plain text
            return encoder.count_tokens(text)

    def submit(self, request: GenerationRequest, owner: str | None = None) -> Job:
        """Queue a job for ``owner``: LimitExceeded past a work limit, QueueFull past a queue cap."""
        work_limits = limits.Limits.from_options(self.options.snapshot())
        limits.check(request, work_limits)
        self.jobs.script_set(request).check(request)  # ScriptArgsError: a script not there (a 422)
        if request.styles:
            limits.check_styled(request, self.styles, work_limits)
        return self.queue.submit(request, owner=owner)

    def generate(self, request: GenerationRequest, owner: str | None = None) -> Result:
        """Run through the queue and wait (used by synchronous endpoints)."""
        job = self.submit(request, owner=owner)
        job.done_event.wait()
        if job.error:
            raise GenerationFailed(job.error)
        if job.state is JobState.CANCELLED:
            raise GenerationCancelled("the job was cancelled before it finished")
        return job.result


class GenerationFailed(RuntimeError):
    """The job failed; the message is the engine's error, for the caller to show."""


class GenerationCancelled(GenerationFailed):
    """The job was cancelled (DELETE /api/v1/jobs/{id}) before it produced images."""
