"""Per job: the extra networks applied to each model, and each pass's prompts encoded by it.

A job may use up to three models (its own, the hires checkpoint, the refiner) and two prompt
sets (the first pass's and hires fix's). Networks are applied to a model once and kept until
the job ends, unless a later pass of the same model names other networks; prompts are encoded
once per (model, pass). Everything applied is removed when the job ends, also after an error.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any, Mapping

from webui.engine.plan import PassPlan
from webui.models.manager import ActiveModel
from webui.prompts.conditioning import PromptSchedule, encode_schedule
from webui.prompts.encoder import PromptEncoder

log = logging.getLogger(__name__)


def _refs_key(plan: PassPlan) -> tuple:
    return tuple((r.kind, r.name, tuple(r.args)) for r in plan.networks), plan.prompt, plan.negative


class _Prepared:
    """One model of the job: the networks applied to it (under ``key``) and prompts it encoded."""

    def __init__(self, model: ActiveModel):
        self.model = model
        self.key: tuple | None = None
        self.stack = contextlib.ExitStack()
        self.networks: Any = None  # webui.networks.apply.AppliedNetworks, or None without a catalog
        self.encoded: dict[tuple, PromptSchedule] = {}

    def reset(self) -> None:
        self.stack.close()
        self.stack = contextlib.ExitStack()
        self.key, self.networks = None, None
        self.encoded.clear()


class Preparation:
    """Networks and encoded prompts for the models and passes of one job (close() at the end).

    One entry per checkpoint file: when the manager hands out a new object for a file (it was
    dropped from the RAM cache and read again), the entry for the old object is closed, so
    neither its pipeline stays alive nor its networks or encodings are reused for the new one.
    """

    def __init__(self, options: Mapping[str, Any], network_catalog: Any = None):
        self.options = options
        self.catalog = network_catalog
        self.warnings: list[str] = []
        self.infotext: dict[str, str] = {}
        self._entries: dict[Path, _Prepared] = {}

    def prompts(self, model: ActiveModel, plan: PassPlan, clip_skip: int) -> PromptSchedule:
        """The pass's prompt schedule encoded by ``model`` (with the pass's networks applied)."""
        entry = self._entry(model)
        applied = self._networks(entry, plan)
        key = (plan.prompt, plan.negative, plan.run_steps, clip_skip)
        if key not in entry.encoded:
            encoder = PromptEncoder(
                model.pipe, sdxl=model.spec.is_sdxl, emphasis=self.options["emphasis"],
                comma_backtrack=self.options["comma_padding_backtrack"],
                embedding_ids=applied.embedding_token_ids if applied else frozenset(),
            )
            expand = applied.expand if applied else (lambda text: text)
            entry.encoded[key] = encode_schedule(encoder, plan.prompt, plan.negative, plan.run_steps, clip_skip, expand)
        return entry.encoded[key]

    def _entry(self, model: ActiveModel) -> _Prepared:
        path = model.file.path
        entry = self._entries.get(path)
        if entry is not None and entry.model is not model:
            entry.reset()
            del self._entries[path]
            entry = None
        if entry is None:
            entry = self._entries[path] = _Prepared(model)
        return entry

    def _networks(self, entry: _Prepared, plan: PassPlan) -> Any:
        if self.catalog is None:
            return None
        key = _refs_key(plan)
        if entry.key == key:
            return entry.networks
        entry.reset()  # the same model, other networks (a hires prompt with its own tags)
        from webui.networks.apply import applied_networks

        model = entry.model
        entry.networks = entry.stack.enter_context(applied_networks(
            model.pipe, model.spec, plan.networks, [plan.prompt, plan.negative], self.catalog, self.catalog.hashes,
        ))
        entry.key = key
        for note in entry.networks.notes:
            if note not in self.warnings:
                log.warning("%s", note)
                self.warnings.append(note)
        self.infotext.update(entry.networks.infotext)
        return entry.networks

    def close(self) -> None:
        """Remove every network from every model (in reverse order of application)."""
        errors = []
        for entry in reversed(list(self._entries.values())):
            try:
                entry.reset()
            except Exception as e:  # keep removing the others; report the first
                errors.append(e)
        self._entries.clear()
        if errors:
            raise errors[0]
