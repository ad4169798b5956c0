"""A1111's ``modules.shared``: ``opts``, ``OptionInfo``, ``state``, ``cmd_opts``, ``sd_model``...

Each name is a view of SD Studio's own object: ``opts`` reads and writes the studio's Options
(config.json), ``state`` the job queue's flags for the running job, ``cmd_opts`` the command line.
A name A1111 has and SD Studio does not raises an AttributeError that says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import threading
import weakref
from pathlib import Path
from typing import Any, Callable

import torch

from modules import missing, not_provided
from modules.scripts import caller_extension_root
from webui.flags import CommandLine, Paths
from webui.plugins import context
from webui.plugins.options import add_option as _add_option
from webui.settings import A1111_DEFAULTS

log = logging.getLogger("sd")

script_path = str(Path(__file__).resolve().parents[3])
demo = None  # the Gradio app is built by SD Studio's UI; extensions add tabs with on_ui_tabs


# --- options ------------------------------------------------------------------------------------

class OptionInfo:
    """A1111's option declaration; ``opts.add_option`` turns it into SD Studio's."""

    def __init__(self, default: Any = None, label: str = "", component: Any = None, component_args: Any = None,
                 onchange: Callable[[], Any] | None = None, section: Any = None, refresh: Any = None,
                 comment_before: str = "", comment_after: str = "", infotext: str | None = None,
                 restrict_api: bool = False, category_id: str | None = None):
        self.default, self.label, self.component, self.component_args = default, label, component, component_args
        self.onchange, self.section, self.refresh, self.infotext = onchange, section, refresh, infotext
        self.comment_before, self.comment_after = comment_before, comment_after
        self.restrict_api, self.category_id = restrict_api, category_id
        self.do_not_save = False

    # Presentation helpers: kept for the author's sake; SD Studio's Settings tab shows the label.
    def info(self, info: str) -> OptionInfo:
        self.comment_after += f" ({info})"
        return self

    def html(self, html: str) -> OptionInfo:
        self.comment_after += html
        return self

    def link(self, label: str, url: str) -> OptionInfo:
        self.comment_before += f"[{label}]({url})"
        return self

    def js(self, label: str, js_func: str) -> OptionInfo:
        return self

    def needs_restart(self) -> OptionInfo:
        self.comment_after += " (requires restart)"
        return self

    def needs_reload_ui(self) -> OptionInfo:
        self.comment_after += " (requires Reload UI)"
        return self


class OptionHTML(OptionInfo):
    """Explanatory HTML between settings: accepted and not shown (nothing is declared)."""

    def __init__(self, text: str):
        super().__init__(str(text).strip(), label="")


def options_section(section_identifier: tuple[str, str], options_dict: dict[str, OptionInfo]) -> dict[str, OptionInfo]:
    """A1111's helper: every option of ``options_dict`` in ``section_identifier`` ((id, name))."""
    for info in options_dict.values():
        info.section = section_identifier
    return options_dict


def _component_args(info: OptionInfo) -> dict[str, Any]:
    args = info.component_args() if callable(info.component_args) else info.component_args
    return dict(args) if isinstance(args, dict) else {}


def _choices(args: dict[str, Any]) -> list[Any] | None:
    choices = args.get("choices")
    if callable(choices):
        choices = choices()
    if choices is None:
        return None
    # Gradio accepts (label, value) pairs; the value is what gets stored.
    return [c[1] if isinstance(c, (tuple, list)) and len(c) == 2 else c for c in choices]


def _section_name(section: Any) -> str | None:
    if isinstance(section, (tuple, list)) and len(section) >= 2:
        return str(section[1])
    if isinstance(section, str):
        return section
    root = caller_extension_root()  # during on_ui_settings nothing is loading: name the caller's extension
    return root.name if root is not None else None


_pending = threading.local()  # key -> the new value, while an A1111 onchange runs (it reads opts.<key>)


def _onchange_listener(key: str, func: Callable[[], Any]) -> Callable[[Any], None]:
    # A1111 calls onchange() with no argument after the value is set; SD Studio's listeners run
    # before it is applied (a listener may refuse), so opts.<key> shows the new value meanwhile.
    def listener(value: Any) -> None:
        pending = getattr(_pending, "values", None)
        if pending is None:
            pending = _pending.values = {}
        pending[key] = value
        try:
            func()
        finally:
            pending.pop(key, None)

    return listener


class Options:
    """``shared.opts``: the studio's options with A1111's methods."""

    typemap = {int: float}
    # Per live Options: (key, callback) already wired to on_change (a reload declares them again).
    _wired: weakref.WeakKeyDictionary[Any, set[tuple[str, int]]] = weakref.WeakKeyDictionary()

    @staticmethod
    def _live() -> Any:
        return context.plugins().options

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        pending = getattr(_pending, "values", None) or {}
        if key in pending:
            return pending[key]
        try:
            return self._live().get(key)
        except AttributeError:
            raise AttributeError(f"shared.opts.{key}: no such option (not SD Studio's, not A1111's, and no "
                                 "loaded extension declares it)") from None

    def __setattr__(self, key: str, value: Any) -> None:
        self.set(key, value)

    @property
    def data(self) -> dict[str, Any]:
        """Every option's value (a copy: change options with ``opts.set``)."""
        return self._live().as_dict()

    @property
    def data_labels(self) -> dict[str, OptionInfo]:
        """Every declared option as an A1111 OptionInfo (default, label, section)."""
        labels = {key: OptionInfo(default) for key, default in A1111_DEFAULTS.items()}
        for key, info in self._live().infos().items():
            labels[key] = OptionInfo(info.default, info.label, section=(info.section, info.section))
        return labels

    def add_option(self, key: str, info: OptionInfo) -> None:
        """Declare an extension's option (a value saved before is kept)."""
        if isinstance(info, OptionHTML):
            return
        args = _component_args(info)
        default = list(info.default) if isinstance(info.default, tuple) else info.default
        step = args.get("step")
        if isinstance(default, int) and not isinstance(default, bool) and any(
                isinstance(v, float) and not float(v).is_integer() for v in (step, args.get("minimum"))):
            default = float(default)  # a slider with a fractional step holds floats
        _add_option(key, default, info.label, _section_name(info.section), choices=_choices(args),
                    minimum=args.get("minimum"), maximum=args.get("maximum"))
        if info.onchange is not None:
            self._wire(key, info.onchange)

    def _wire(self, key: str, func: Callable[[], Any]) -> None:
        live = self._live()
        wired = Options._wired.setdefault(live, set())
        if (key, id(func)) not in wired:  # the listener keeps func alive: its id stays unique
            wired.add((key, id(func)))
            live.on_change(key, _onchange_listener(key, func))

    def set(self, key: str, value: Any, is_api: bool = False, run_callbacks: bool = True) -> bool:
        """Change and save one option (a bad value raises OptionError); True when it changed."""
        return bool(self._live().update({key: value}))

    def onchange(self, key: str, func: Callable[[], Any], call: bool = True) -> None:
        """Call ``func()`` after ``key`` changes (and now, when ``call``)."""
        self._wire(key, func)
        if call:
            func()

    def save(self, filename: str | None = None) -> None:
        """Nothing to do: every change is saved to config.json as it is made."""

    def get_default(self, key: str) -> Any:
        info = self._live().infos().get(key)
        return info.default if info is not None else A1111_DEFAULTS.get(key)

    def same_type(self, x: Any, y: Any) -> bool:
        if x is None or y is None:
            return True
        return self.typemap.get(type(x), type(x)) == self.typemap.get(type(y), type(y))

    def dumpjson(self) -> str:
        return json.dumps(self.data, default=str)


opts = Options()


# --- the running job ----------------------------------------------------------------------------

class State:
    """``shared.state``: the running job's interrupt / skip flags, and progress fields scripts set."""

    job = ""
    job_count = 0
    job_no = 0
    job_timestamp = "0"
    sampling_step = 0
    sampling_steps = 0
    textinfo: str | None = None
    current_image = None
    time_start: float | None = None

    @staticmethod
    def _queue() -> Any:
        studio = context.plugins().studio
        return studio.queue if studio is not None else None

    def _flags(self) -> tuple[bool, bool]:
        queue = self._queue()
        return queue.current_flags() if queue is not None else (False, False)

    @property
    def interrupted(self) -> bool:
        return self._flags()[0]

    @interrupted.setter
    def interrupted(self, value: bool) -> None:
        if value:
            self.interrupt()

    @property
    def skipped(self) -> bool:
        return self._flags()[1]

    @skipped.setter
    def skipped(self, value: bool) -> None:
        if value:
            self.skip()

    def interrupt(self) -> None:
        """Stop the running job after its current step."""
        if (queue := self._queue()) is not None:
            queue.interrupt()

    def skip(self) -> None:
        """Stop the running job's current image."""
        if (queue := self._queue()) is not None:
            queue.skip()

    # Progress is reported by SD Studio's queue itself; these are accepted for A1111 scripts.
    def begin(self, job: str = "(unknown)") -> None:
        self.job = job

    def end(self) -> None:
        pass

    def nextjob(self) -> None:
        self.job_no += 1

    def assign_current_image(self, image: Any) -> None:
        self.current_image = image

    def set_current_image(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(not_provided(f"modules.shared.state.{name}"))


state = State()


# --- the command line -----------------------------------------------------------------------------

_SECRET = ("gradio_auth", "api_auth")  # logins are not handed to extensions
# A1111 flags SD Studio refuses or never needs, with the value they have here.
_A1111_FIXED = {"share": False, "ngrok": None, "xformers": False, "force_enable_xformers": False,
                "no_half_vae": False, "disable_safe_unpickle": False, "hide_ui_dir_config": False,
                "freeze_settings": False, "ui_debug_mode": False, "nowebui": False, "skip_torch_cuda_test": False}


class CmdOpts(argparse.Namespace):
    """``shared.cmd_opts``: the command line under A1111's names, plus extensions' preload flags."""

    def __getattr__(self, name: str) -> Any:
        why = "logins are not handed to extensions" if name in _SECRET else ""
        raise AttributeError(not_provided(f"modules.shared.cmd_opts.{name}", why))


_cmd_cache: list[tuple[Any, CmdOpts]] = []


def _cmd_opts() -> CmdOpts:
    cmd = context.plugins().cmd or CommandLine()
    if _cmd_cache and _cmd_cache[0][0] is cmd:
        return _cmd_cache[0][1]
    values: dict[str, Any] = dict(_A1111_FIXED)
    for f in dataclasses.fields(CommandLine):
        if f.name in _SECRET or f.name in ("extension_flags", "preload_errors"):
            continue
        value = getattr(cmd, f.name)
        values[f.name] = str(value) if isinstance(value, Path) else value
    values["server_name"] = cmd.host if cmd.listen else None
    values.update(getattr(cmd, "extension_flags", None) or {})
    built = CmdOpts(**values)
    _cmd_cache[:] = [(cmd, built)]
    return built


class _Tqdm:
    """A1111's total progress bar: SD Studio's progress comes from the job queue instead."""

    def updateTotal(self, new_total: int) -> None:  # noqa: N802 (A1111's name)
        pass

    def update(self) -> None:
        pass

    def clear(self) -> None:
        pass


total_tqdm = _Tqdm()


def _paths() -> Paths:
    studio = context.plugins().studio
    return studio.paths if studio is not None else Paths.from_cmd(context.plugins().cmd or CommandLine())


def __getattr__(name: str) -> Any:
    if name == "cmd_opts":
        return _cmd_opts()
    if name == "sd_model":  # SD Studio's active model (diffusers components), not an LDM model
        studio = context.plugins().studio
        return studio.manager.selected if studio is not None else None
    if name == "device":
        studio = context.plugins().studio
        if studio is not None:
            return studio.manager.device
        chosen = (context.plugins().cmd or CommandLine()).device
        return torch.device(chosen or ("cuda" if torch.cuda.is_available() else "cpu"))
    if name == "models_path":
        return str(_paths().models_dir)
    if name == "data_path":
        return str(_paths().data_dir)
    if name == "sd_upscalers":  # fresh each time: upscaler files come and go
        from webui.scripts.upscaler_choice import sd_upscalers
        return sd_upscalers()
    raise missing(f"modules.shared.{name}")
