"""The active model: loading, switching, the RAM cache, VAE choice, device and dtype.

One lock serialises everything that touches the active pipeline: a switch requested while an
image is being generated waits for it, and a failed load leaves the current model in place.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch

from webui.models.catalog import Catalog, ModelFile
from webui.models.load import (
    LoadedCheckpoint,
    build_vae,
    load_checkpoint,
    load_vae_state_dict,
)
from webui.models.safe_load import CheckpointError

log = logging.getLogger(__name__)

VAE_AUTOMATIC = "Automatic"
VAE_NONE = "None"


@dataclass
class ActiveModel:
    """What the engine needs: the pipeline plus the names infotext and the API report."""

    file: ModelFile
    checkpoint: LoadedCheckpoint
    own_vae: torch.nn.Module
    vae_file: ModelFile | None = None
    # Where its computations run: the manager's device, also under CPU offload (when the modules
    # themselves report "cpu" or "meta" between calls).
    device: torch.device = torch.device("cpu")

    @property
    def pipe(self):
        return self.checkpoint.pipe

    @property
    def spec(self):
        return self.checkpoint.spec


class ModelManager:
    def __init__(
        self,
        catalog: Catalog,
        *,
        device: str | None = None,
        half: bool = True,
        offload: str | None = None,
        ram_cache: int = 1,
    ):
        self.catalog = catalog
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        # fp16 only where it is fast and supported; CPU fp16 is slow and lossy.
        self.dtype = torch.float16 if half and self.device.type == "cuda" else torch.float32
        self.offload = offload if self.device.type == "cuda" else None
        self.ram_cache = ram_cache
        self.lock = threading.RLock()
        self._active: ActiveModel | None = None
        self._selected: ActiveModel | None = None
        self._cache: OrderedDict[Path, ActiveModel] = OrderedDict()
        self._session: ModelSession | None = None  # the innermost session (under the lock)

    @property
    def active(self) -> ActiveModel | None:
        """The model on the device now (during a job: the stage's, e.g. the refiner)."""
        return self._active

    @property
    def selected(self) -> ActiveModel | None:
        """The model chosen for generation: during a job, the one active when it started.

        Listings and the token counter read this, so a refiner stage does not change them.
        """
        return self._selected if self._selected is not None else self._active

    @contextlib.contextmanager
    def use(self) -> Iterator[ActiveModel]:
        """Hold the active model for one block; switching waits until the block ends."""
        with self.lock:
            if self._active is None:
                raise CheckpointError("no checkpoint is loaded: add one to models/Stable-diffusion")
            yield self._active

    @contextlib.contextmanager
    def session(self) -> Iterator["ModelSession"]:
        """Hold the model lock for a whole job; the job asks the session for each model it needs.

        A switch requested meanwhile (the top bar, POST /sdapi/v1/options) waits for the job.
        """
        with self.lock:
            outer = self._selected  # a job run inside a job (a script's process_images) keeps the outer's
            parent = self._session
            self._selected = self._active if outer is None else outer
            self._session = ModelSession(self, parent)
            try:
                yield self._session
            finally:
                self._selected, self._session = outer, parent

    def load(self, query: str, vae: str = VAE_AUTOMATIC) -> ActiveModel:
        """Make ``query`` (title, name or hash) the active checkpoint, with ``vae`` applied."""
        file = self.catalog.find_checkpoint(query)
        if file is None:
            raise CheckpointError(f"checkpoint not found: {query!r}")
        with self.lock:
            return self._activate(file, vae)

    def _activate(self, file: ModelFile, vae: str) -> ActiveModel:
        if self._active is not None and self._active.file.path == file.path:
            self._apply_vae(self._active, vae)
            return self._active
        model = self._cache.pop(file.path, None) or self._read(file)
        try:
            self._apply_vae(model, vae)
        except CheckpointError:
            self._remember(model)
            raise
        previous = self._active
        if previous is not None:
            # Off the device first, so two large models never share the GPU.
            self._remember(previous)
        self._place(model.pipe, self.device)
        model.device = self.device
        self._active = model
        return model

    def set_ram_cache(self, size: int) -> None:
        with self.lock:
            self.ram_cache = size
            self._trim()

    def set_vae(self, vae: str) -> None:
        with self.lock:
            if self._active is not None:
                self._apply_vae(self._active, vae)

    def cached_titles(self) -> list[str]:
        return [m.file.title for m in self._cache.values()]

    def _read(self, file: ModelFile) -> ActiveModel:
        log.info("loading %s", file.name)
        try:
            checkpoint = load_checkpoint(file.path, dtype=self.dtype)
        except CheckpointError as e:
            self.catalog.refused.refuse(file.path, str(e))  # listings mark it; start-up skips it
            raise
        self.catalog.refused.forget(file.path)
        file = self.catalog.with_hash(file)
        return ActiveModel(file=file, checkpoint=checkpoint, own_vae=checkpoint.pipe.vae)

    def _remember(self, model: ActiveModel) -> None:
        self._place(model.pipe, torch.device("cpu"))
        self._cache[model.file.path] = model
        self._cache.move_to_end(model.file.path)
        self._trim()

    def _trim(self) -> None:
        while len(self._cache) > self.ram_cache:
            self._cache.popitem(last=False)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _place(self, pipe, device: torch.device) -> None:
        if device.type == "cuda" and self.offload == "model":
            pipe.enable_model_cpu_offload(device=device)
        elif device.type == "cuda" and self.offload == "sequential":
            pipe.enable_sequential_cpu_offload(device=device)
        else:
            pipe.to(device)

    def _resolve_vae(self, model: ActiveModel, choice: str) -> ModelFile | None:
        if choice in ("", VAE_NONE):
            return None
        if choice == VAE_AUTOMATIC:
            return self._sibling_vae(model.file)
        found = self.catalog.find_vae(choice)
        if found is None:
            raise CheckpointError(f"VAE not found: {choice!r}")
        return found

    def _sibling_vae(self, file: ModelFile) -> ModelFile | None:
        # A1111's "Automatic": <checkpoint stem>.vae.* beside the checkpoint or in the VAE folder.
        stem = file.path.stem
        for candidate in self.catalog.vaes:
            if candidate.path.name.split(".vae.")[0] == stem and ".vae." in candidate.path.name:
                return candidate
        for suffix in (".vae.safetensors", ".vae.pt", ".vae.ckpt"):
            beside = file.path.with_name(stem + suffix)
            if beside.is_file():
                return ModelFile(beside, beside.name, None)
        return None

    def _apply_vae(self, model: ActiveModel, choice: str) -> None:
        target = self._resolve_vae(model, choice)
        current = model.vae_file.path if model.vae_file else None
        if (target.path if target else None) == current:
            return
        pipe = model.pipe
        if target is None:
            vae = model.own_vae
        else:
            try:
                vae = torch.nn.Module.to(build_vae(model.spec, load_vae_state_dict(target.path)), dtype=self.dtype)
            except CheckpointError as e:
                self.catalog.refused.refuse(target.path, str(e))
                raise
        pipe.vae = vae.to(pipe.unet.device) if self.offload is None else vae
        pipe.register_modules(vae=pipe.vae)
        # Infotext names the VAE with its hash (A1111's "VAE hash"), known from here on.
        model.vae_file = self.catalog.with_hash(target) if target is not None else None


class ModelSession:
    """A job's hold on the models (see ``ModelManager.session``): each stage asks for its model.

    ``get`` switches the active model inside the job's lock (the previous one goes to the RAM
    cache, as ``sd_checkpoint_cache`` allows); ``restore`` brings back the model that was active
    when the job started. A session inside another (each ``process_images`` of a script) starts
    from the outer job's model and leaves its restore to the outer session's ``finish``: a script
    that runs several checkpoints in a row (X/Y/Z plot) then loads each once, not once per image.
    """

    def __init__(self, manager: ModelManager, parent: ModelSession | None = None):
        self._manager = manager
        self.parent = parent
        self.starting: ActiveModel | None = manager.active if parent is None else parent.starting
        self.restore_pending = False

    def get(self, query: str | ModelFile | None, vae: str = VAE_AUTOMATIC) -> ActiveModel:
        """The model for ``query`` (a file, a title/name/hash, or None: the job's) with ``vae``."""
        manager = self._manager
        if query is None:
            current = self.starting or manager.active
            if current is None:
                raise CheckpointError("no checkpoint is loaded: add one to models/Stable-diffusion")
            file = current.file
        elif isinstance(query, ModelFile):
            file = query
        else:
            file = manager.catalog.find_checkpoint(query)
            if file is None:
                raise CheckpointError(f"checkpoint not found: {query!r}")
        return manager._activate(file, vae)

    def restore(self, vae: str = VAE_AUTOMATIC) -> None:
        """Make the model active at the start of the job active again, with ``vae`` (inside an outer
        session: when that one finishes)."""
        if self.parent is not None:
            self.parent.restore_pending = True
        elif self.starting is not None:
            self._manager._activate(self.starting.file, vae)

    def finish(self, vae: str = VAE_AUTOMATIC) -> None:
        """End of an outer session: the restore its inner sessions put off, if they asked for one."""
        if self.restore_pending:
            self.restore_pending = False
            self.restore(vae)
