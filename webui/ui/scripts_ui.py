"""The extensions' script controls in a generation tab, laid out as A1111 lays them out.

Inside ``#<tab>_script_container``: every always-on script's controls (each in a group, as its
``ui()`` builds them), then the "Script" dropdown (A1111's ``script_list``: "None" and the
selectable scripts' titles), then each selectable script's controls in a group shown only while
it is chosen. The layout comes from ``ScriptSet.lay_out``, so the positions the UI sends are
those the API's ``script_args`` / ``alwayson_scripts`` use.

The tab's run function gets the dropdown's value and every control's value appended to its own
inputs; :meth:`ScriptsUi.request_fields` turns them into the request's ``script_name``,
``script_args`` and ``alwayson_scripts``. :func:`with_script_params` names those extra inputs
(``script_name``, ``script_arg_<n>``) so API clients can still call the tab by keyword.
"""

from __future__ import annotations

import inspect
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import gradio as gr

from webui.plugins.script import Script
from webui.plugins.script_set import ScriptArgsError, ScriptSet
from webui.request import GenerationRequest
from webui.ui.protocol import StudioView

NO_SCRIPT = "None"
PRIVATE: dict[str, Any] = {"api_visibility": "private", "queue": False}

__all__ = ["NO_SCRIPT", "ScriptArgsError", "ScriptsUi", "build_scripts", "with_script_params"]


@dataclass
class _Placed:
    """One script's place in the flat args (fixed when this tab was built)."""

    script: Script
    title: str
    start: int  # args_from: index 0 of the flat args is the selected script
    stop: int


@dataclass
class ScriptsUi:
    """The built script controls of one tab and how their values become request fields."""

    tab: str
    script_set: ScriptSet | None
    dropdown: gr.Dropdown
    controls: list[Any] = field(default_factory=list)  # what the scripts' ui() returned, in args order
    alwayson: list[_Placed] = field(default_factory=list)
    selectable: list[_Placed] = field(default_factory=list)

    @property
    def components(self) -> list[gr.components.Component]:
        """The controls that are Gradio inputs (a ui() may return other things: they stay constants)."""
        return [c for c in self.controls if _is_input(c)]

    @property
    def inputs(self) -> list[gr.components.Component]:
        """The dropdown first, then every script control, in args order."""
        return [self.dropdown, *self.components]

    @property
    def titles(self) -> list[str]:
        return [placed.title for placed in self.selectable]

    def flat_args(self, values: Sequence[Any]) -> list[Any]:
        """``values`` (as :attr:`inputs`) as the flat args after slot 0, constants put back in place."""
        given = iter(values[1:])
        return [next(given, None) if _is_input(c) else getattr(c, "value", c) for c in self.controls]

    def request_fields(self, values: Sequence[Any]) -> dict[str, Any]:
        """``script_name``, ``script_args`` and ``alwayson_scripts`` from the values of :attr:`inputs`.

        Images from gr.Image controls (PIL or numpy) are passed as they are: the request stores them.
        """
        if not values:
            return {}
        name = values[0] if isinstance(values[0], str) and values[0] != NO_SCRIPT else None
        flat = [None, *self.flat_args(values)]
        fields: dict[str, Any] = {}
        alwayson = {p.title: {"args": flat[p.start:p.stop]} for p in self.alwayson if p.stop > p.start}
        if alwayson:
            fields["alwayson_scripts"] = alwayson
        if name is not None:
            chosen = next((p for p in self.selectable if p.title == name), None)
            fields["script_name"] = name  # an unknown name is refused by check(), with the list
            fields["script_args"] = flat[chosen.start:chosen.stop] if chosen is not None else []
        return fields

    def check(self, request: GenerationRequest) -> None:
        """Raise ScriptArgsError (shown in the tab) for scripts the request cannot run."""
        if self.script_set is not None:
            self.script_set.check(request)


def _is_input(component: Any) -> bool:
    return isinstance(component, gr.components.Component)


def build_scripts(studio: StudioView, tab: str) -> ScriptsUi:
    """The scripts' controls of ``tab`` ("txt2img" | "img2img"), in the current column."""
    plugins = getattr(studio, "plugins", None)
    script_set: ScriptSet | None = plugins.scripts.get(tab) if plugins is not None else None
    built: dict[str, Any] = {}
    groups: list[tuple[Script, gr.Group]] = []

    def dropdown(titles: list[str]) -> gr.Dropdown:
        if "dropdown" not in built:
            built["dropdown"] = gr.Dropdown([NO_SCRIPT, *titles], value=NO_SCRIPT, label="Script",
                                            elem_id="script_list")
        return built["dropdown"]

    with gr.Column(elem_id=f"{tab}_script_container"):
        if script_set is None:
            return ScriptsUi(tab, None, dropdown([]))
        titles = [script_set.title_of(s) for s in script_set.selectable]

        def create(script: Script, make: Callable[[], list[Any]]) -> list[Any]:
            if not script.alwayson:
                dropdown(titles)  # between the always-on and the selectable scripts, as in A1111
            with gr.Group(visible=script.alwayson, elem_id=f"{tab}_script_{_slug(script_set.title_of(script))}") \
                    as group:
                try:
                    made = make()
                except Exception:
                    group.visible = False  # ui() raised (lay_out records it): no empty box on the page
                    raise
            if not made:
                group.visible = False
            if not script.alwayson:
                script.group = group
                if made:  # chosen, a script without controls shows nothing
                    groups.append((script, group))
            return made

        controls = script_set.lay_out(create=create)
        menu = dropdown(titles)

    placed = {id(s): _Placed(s, script_set.title_of(s), s.args_from, s.args_to) for s in script_set.scripts}
    ui = ScriptsUi(tab, script_set, menu, controls, [placed[id(s)] for s in script_set.alwayson],
                   [placed[id(s)] for s in script_set.selectable])
    if groups:
        def show(choice: str | None) -> Any:
            updates = [gr.update(visible=script_set.title_of(s) == choice) for s, _ in groups]
            return updates[0] if len(updates) == 1 else updates  # one output takes one value, not a list

        menu.change(show, inputs=menu, outputs=[g for _, g in groups], **PRIVATE)
    return ui


def _slug(title: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in title.lower()).strip("_") or "script"


def with_script_params(run: Callable[..., Iterator[tuple]], scripts: ScriptsUi) -> Callable[..., Iterator[tuple]]:
    """``run`` with the scripts' inputs as named parameters before ``request``.

    ``run`` takes its own parameters and ``request`` by keyword, and ``script_values`` (the values
    of ``scripts.inputs``). Gradio reads the names from the signature: the API's keyword names of
    the tab stay as they were, and the script inputs become ``script_name``, ``script_arg_1``...
    (their position in A1111's flat args), each optional.
    """
    signature = inspect.signature(run)
    hints = typing.get_type_hints(run)
    own = [p for p in signature.parameters.values() if p.name not in ("request", "script_values")]
    request = signature.parameters["request"]
    extra = [inspect.Parameter("script_name", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=NO_SCRIPT,
                               annotation=str | None)]
    position = 0
    for control in scripts.controls:
        position += 1
        if _is_input(control):
            value = getattr(control, "value", None)  # the ui() default, when it is a plain value
            extra.append(inspect.Parameter(f"script_arg_{position}", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                           default=value if isinstance(value, (bool, int, float, str)) else None,
                                           annotation=Any))
    names = [p.name for p in own]

    def wrapped(*args: Any, **kwargs: Any) -> Iterator[tuple]:
        bound = wrapped.__signature__.bind(*args, **kwargs)  # type: ignore[attr-defined]
        bound.apply_defaults()
        values = bound.arguments
        yield from run(**{n: values[n] for n in names}, request=values["request"],
                       script_values=[values[p.name] for p in extra])

    wrapped.__signature__ = signature.replace(parameters=[*own, *extra, request])  # type: ignore[attr-defined]
    wrapped.__annotations__ = {**{k: v for k, v in hints.items() if k != "script_values"},
                               **{p.name: p.annotation for p in extra}}
    wrapped.__name__ = wrapped.__qualname__ = getattr(run, "__name__", "run")
    wrapped.__doc__ = run.__doc__
    return wrapped
