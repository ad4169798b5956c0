"""The scripts of one tab (txt2img or img2img): their controls, their args, their hooks.

Args are laid out as A1111 does: one flat list ``[selected script (1-based, 0 = none), the args
of every script in order...]``; each script reads ``args[script.args_from:script.args_to]``.
The layout comes from calling every script's ``ui()`` once, in a Blocks of its own; the values
of those controls are the defaults the API's ``script_args`` / ``alwayson_scripts`` fill in.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any, Sequence

from webui.plugins.problems import Problems
from webui.plugins.processing import Processing
from webui.plugins.script import JOB_HOOKS, AlwaysVisible, Script, overrides
from webui.request import GenerationRequest

log = logging.getLogger(__name__)


class ScriptArgsError(ValueError):
    """A request names a script that is not there, or names it the wrong way (a 422)."""

    def __init__(self, message: str, field: str = "script_name"):
        super().__init__(message)
        self.field = field  # the request field at fault: script_name, script_args or alwayson_scripts


@dataclass(frozen=True)
class ScriptControl:
    """One of a script's controls, as listed by GET /sdapi/v1/script-info."""

    label: str | None
    value: Any
    minimum: Any = None
    maximum: Any = None
    step: Any = None
    choices: Any = None


class ScriptSet:
    """The scripts shown in one tab, always-on first, in load order."""

    def __init__(self, scripts: Sequence[Script], is_img2img: bool, problems: Problems):
        self.is_img2img = is_img2img
        self.problems = problems
        self.alwayson: list[Script] = []
        self.selectable: list[Script] = []
        for script in scripts:
            script.is_img2img, script.is_txt2img = is_img2img, not is_img2img
            shown = self._guarded(script, "show", lambda s=script: s.show(is_img2img), default=False)
            if shown is AlwaysVisible:
                script.alwayson = True
                self.alwayson.append(script)
            elif shown:
                self.selectable.append(script)
        self.defaults: list[Any] = [None]
        self.controls: dict[int, list[ScriptControl]] = {}
        self._lock = threading.Lock()
        self._laid_out = False

    @property
    def scripts(self) -> list[Script]:
        return [*self.alwayson, *self.selectable]

    @property
    def tab(self) -> str:
        return "img2img" if self.is_img2img else "txt2img"

    def title_of(self, script: Script) -> str:
        return self._guarded(script, "title", script.title, default=type(script).__name__) or type(script).__name__

    def find(self, title: str) -> Script | None:
        wanted = title.strip().lower()
        return next((s for s in self.scripts if self.title_of(s).lower() == wanted), None)

    # --- controls and args -----------------------------------------------------------------

    def lay_out(self, create: Any = None) -> list[Any]:
        """Call every script's ``ui()`` (inside the current Blocks, or a throwaway one) and fix
        ``args_from`` / ``args_to``. Returns the components, in args order after the first slot.

        ``create(script, make)`` wraps each call (the UI puts each script in its own group);
        a ``ui()`` that raises gets no controls and its problem is recorded.
        """
        import gradio as gr

        components: list[Any] = []
        defaults: list[Any] = [None]
        owned = gr.context.Context.root_block is None
        holder = gr.Blocks() if owned else None
        with holder if holder is not None else contextlib.nullcontext():
            for script in self.scripts:
                def make(s: Script = script) -> list[Any]:
                    made = s.ui(self.is_img2img)
                    return list(made) if made is not None else []
                made = self._guarded(script, "ui", (lambda s=script, m=make: create(s, m)) if create else make,
                                     default=[]) or []
                script.args_from = len(defaults)
                script.args_to = len(defaults) + len(made)
                script.controls = made
                components += made
                defaults += [getattr(c, "value", c) for c in made]
                self.controls[id(script)] = [_describe(c) for c in made]
        with self._lock:
            self.defaults = defaults
            self._laid_out = True
        return components

    def ensure_laid_out(self) -> None:
        if not self._laid_out:
            self.lay_out()

    def job_args(self, request: GenerationRequest) -> tuple[Script | None, list[Any]]:
        """The selected script and the flat args of a request (A1111's ``init_script_args``)."""
        self.ensure_laid_out()
        args = list(self.defaults)
        selected = None
        if request.script_name:
            selected = self.find(request.script_name)
            if selected is None:
                raise ScriptArgsError(f"script {request.script_name!r} not found in {self.tab}; scripts: "
                                      f"{', '.join(self.title_of(s) for s in self.selectable) or 'none'}")
            if selected.alwayson:
                raise ScriptArgsError(f"{request.script_name!r} is an always-on script: send its args in "
                                      "alwayson_scripts, not as script_name")
            args[0] = self.selectable.index(selected) + 1
            _place(args, selected, request.script_args, "script_args")
        for title, given in request.alwayson_scripts.items():
            script = self.find(title)
            if script is None:
                raise ScriptArgsError(f"always-on script {title!r} not found in {self.tab}; always-on scripts: "
                                      f"{', '.join(self.title_of(s) for s in self.alwayson) or 'none'}",
                                      "alwayson_scripts")
            if not script.alwayson:
                raise ScriptArgsError(f"{title!r} is a selectable script: send it as script_name with script_args, "
                                      "not in alwayson_scripts", "alwayson_scripts")
            _place(args, script, given.args, "alwayson_scripts")
        return selected, args

    def check(self, request: GenerationRequest) -> None:
        """Raise ScriptArgsError for a request whose scripts cannot run (before it is queued).

        A script (selectable, or always on) may define ``check_args(p, *args)``: it raises ValueError
        with a sentence for args it cannot run with (a bad choice, too much work): a 422, not a failed job.
        """
        if request.script_name or request.alwayson_scripts:
            selected, args = self.job_args(request)
            checked = [(s, "alwayson_scripts") for s in self.alwayson if overrides(s, "check_args")]
            if selected is not None and overrides(selected, "check_args"):
                checked.append((selected, "script_args"))
            p = Processing.from_request(request) if checked else None
            for script, field in checked:
                try:
                    script.check_args(p, *args[script.args_from:script.args_to])
                except ValueError as e:
                    raise ScriptArgsError(f"{self.title_of(script)}: {e}", field) from None

    # --- hooks ---------------------------------------------------------------------------------

    def has_hooks(self) -> bool:
        """Whether any always-on script defines a job hook (otherwise jobs skip this layer)."""
        return any(overrides(s, hook) for s in self.alwayson for hook in JOB_HOOKS)

    def call(self, hook: str, p: Any, *before: Any, failed: set[str] | None = None, **kwargs: Any) -> list[str]:
        """Call ``hook`` on every always-on script that defines it, with its args from ``p.script_args``.

        ``before`` are passed ahead of the script's args (postprocess's ``processed``). Returns a
        note per script that raised; ``failed`` collects their keys (for switching off repeat offenders).
        """
        notes = []
        for script in self.alwayson:
            if not overrides(script, hook):
                continue
            key = self.key(script, hook)
            if self.problems.is_off(key):
                continue
            args = p.script_args[script.args_from:script.args_to]
            try:
                getattr(script, hook)(p, *before, *args, **kwargs)
            except Exception as e:
                problem = self.problems.record(script.extension, f"{hook} of {self.title_of(script)}", e)
                notes.append(f"extension {problem.extension}: {hook} of {self.title_of(script)} failed "
                             f"({problem.message}); the job went on without it")
                if failed is not None:
                    failed.add(key)
        return notes

    def loop_callbacks(self, p: Any, failed: set[str]) -> tuple[list[Any], list[str]]:
        """The engine loop callbacks the always-on scripts give for this job, and notes for those that raised."""
        found: list[Any] = []
        notes = []
        for script in self.alwayson:
            if not overrides(script, "loop_callbacks") or self.problems.is_off(self.key(script, "loop_callbacks")):
                continue
            try:
                found += list(script.loop_callbacks(p, *p.script_args[script.args_from:script.args_to]) or [])
            except Exception as e:
                problem = self.problems.record(script.extension, f"loop_callbacks of {self.title_of(script)}", e)
                notes.append(f"extension {problem.extension}: loop_callbacks of {self.title_of(script)} failed "
                             f"({problem.message}); the job went on without it")
                failed.add(self.key(script, "loop_callbacks"))
        return found, notes

    def key(self, script: Script, hook: str) -> str:
        return f"{script.extension}: {self.title_of(script)} ({self.tab}) {hook}"

    def hook_keys(self) -> list[str]:
        return [self.key(s, h) for s in self.alwayson for h in JOB_HOOKS if overrides(s, h)]

    def _guarded(self, script: Script, what: str, call: Any, default: Any) -> Any:
        try:
            return call()
        except Exception as e:
            self.problems.record(script.extension, f"{what}() of {type(script).__name__} ({self.tab})", e)
            return default


def _place(args: list[Any], script: Script, given: Sequence[Any], field: str) -> None:
    """Copy ``given`` by position over the script's defaults (extra values are an error)."""
    width = script.args_to - script.args_from
    if len(given) > width:
        raise ScriptArgsError(f"{script.title()}: {len(given)} args given, it takes {width}", field)
    args[script.args_from:script.args_from + len(given)] = list(given)


def _describe(component: Any) -> ScriptControl:
    return ScriptControl(
        label=getattr(component, "label", None), value=getattr(component, "value", None),
        minimum=getattr(component, "minimum", None), maximum=getattr(component, "maximum", None),
        step=getattr(component, "step", None), choices=getattr(component, "choices", None),
    )

