"""Per job: the extra networks applied to each model, and each pass's prompts encoded by it.

A job may use up to three models (its own, the hires checkpoint, the refiner) and two prompt
sets (the first pass's and hires fix's). Networks are applied to a model once and kept until
the job ends, unless a later pass of the same model names other networks; prompts are encoded
once per (model, pass). Everything applied is removed when the job ends, also after an error.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Mapping

from webui.engine.plan import PassPlan
from webui.models.manager import ActiveModel
from webui.prompts.conditioning import PromptSchedule, encode_schedule
from webui.prompts.encoder import PromptEncoder

log = logging.getLogger(__name__)


def _refs_key(plan: PassPlan) -> tuple:
    return tuple((r.kind, r.name, tuple(r.args)) for r in plan.networks), plan.prompt, plan.negative


class _Applied:
    def __init__(self, key: tuple, stack: contextlib.ExitStack, networks: Any):
        self.key = key
        self.stack = stack
        self.networks = networks  # webui.networks.apply.AppliedNetworks, or None without a catalog


class Preparation:
    """Networks and encoded prompts for the models and passes of one job (close() at the end)."""

    def __init__(self, options: Mapping[str, Any], network_catalog: Any = None):
        self.options = options
        self.catalog = network_catalog
        self.warnings: list[str] = []
        self.infotext: dict[str, str] = {}
        self._applied: dict[int, _Applied] = {}
        self._encoded: dict[tuple, PromptSchedule] = {}

    def prompts(self, model: ActiveModel, plan: PassPlan, clip_skip: int) -> PromptSchedule:
        """The pass's prompt schedule encoded by ``model`` (with the pass's networks applied)."""
        applied = self._networks(model, plan)
        key = (id(model), id(applied), plan.prompt, plan.negative, plan.steps, clip_skip)
        if key not in self._encoded:
            encoder = PromptEncoder(
                model.pipe, sdxl=model.spec.is_sdxl, emphasis=self.options["emphasis"],
                comma_backtrack=self.options["comma_padding_backtrack"],
                embedding_ids=applied.embedding_token_ids if applied else frozenset(),
            )
            expand = applied.expand if applied else (lambda text: text)
            self._encoded[key] = encode_schedule(encoder, plan.prompt, plan.negative, plan.steps, clip_skip, expand)
        return self._encoded[key]

    def _networks(self, model: ActiveModel, plan: PassPlan) -> Any:
        if self.catalog is None:
            return None
        key = _refs_key(plan)
        current = self._applied.get(id(model))
        if current is not None and current.key == key:
            return current.networks
        if current is not None:  # the same model, other networks (a hires prompt with its own tags)
            self._applied.pop(id(model)).stack.close()
        from webui.networks.apply import applied_networks

        stack = contextlib.ExitStack()
        networks = stack.enter_context(applied_networks(
            model.pipe, model.spec, plan.networks, [plan.prompt, plan.negative], self.catalog, self.catalog.hashes,
        ))
        self._applied[id(model)] = _Applied(key, stack, networks)
        for note in networks.notes:
            if note not in self.warnings:
                log.warning("%s", note)
                self.warnings.append(note)
        self.infotext.update(networks.infotext)
        return networks

    def close(self) -> None:
        """Remove every network from every model (in reverse order of application)."""
        errors = []
        for applied in reversed(list(self._applied.values())):
            try:
                applied.stack.close()
            except Exception as e:  # keep removing the others; report the first
                errors.append(e)
        self._applied.clear()
        self._encoded.clear()
        if errors:
            raise errors[0]
