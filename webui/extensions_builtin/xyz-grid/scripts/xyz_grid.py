"""X/Y/Z plot: up to three axes of settings, one image per combination, labelled grids.

The controls and args are A1111 v1.10.1's (same order, same element ids), so its API calls work
as they are; the logic lives in webui/scripts/ (xyz_values, xyz_axes, xyz_plot, grid_labels).
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from webui.plugins import context
from webui.plugins.api import Processed, Processing, Script, process_images
from webui.scripts.xyz_axes import IMG2IMG, TXT2IMG, AxisEnv, axes_for, find_axis
from webui.scripts.xyz_plot import TITLE, plan_plot, run_plot
from webui.scripts.xyz_values import AxisValueError, join_values, split_values

FILL = "\U0001f4d2"  # 📒 fills the values with every choice


def _env() -> AxisEnv:
    studio = context.current_studio()
    return AxisEnv.from_studio(studio) if studio is not None else AxisEnv()


def _options() -> Any:
    studio = context.current_studio()
    return studio.options.snapshot() if studio is not None else None


def _styles() -> Any:
    studio = context.current_studio()
    return getattr(studio, "styles", None) if studio is not None else None


class XYZPlot(Script):
    def title(self) -> str:
        return TITLE

    def show(self, is_img2img: bool) -> bool:
        return True

    def elem_id(self, item_id: str) -> str:
        # A1111 drops the title's punctuation: script_txt2img_xyz_plot_x_type.
        return f"script_{IMG2IMG if self.is_img2img else TXT2IMG}_xyz_plot_{item_id}"

    def ui(self, is_img2img: bool) -> list[Any]:
        tab = IMG2IMG if is_img2img else TXT2IMG
        labels = [a.label for a in axes_for(tab)]
        rows = []
        for axis, default in (("x", labels[1]), ("y", labels[0]), ("z", labels[0])):
            with gr.Row():
                kind = gr.Dropdown(labels, value=default, type="index", label=f"{axis.upper()} type",
                                   elem_id=self.elem_id(f"{axis}_type"))
                text = gr.Textbox(label=f"{axis.upper()} values", lines=1, elem_id=self.elem_id(f"{axis}_values"))
                dropdown = gr.Dropdown(label=f"{axis.upper()} values", choices=[], value=[], multiselect=True,
                                       visible=False, interactive=True,
                                       elem_id=self.elem_id(f"{axis}_values_dropdown"))
                fill = gr.Button(FILL, visible=False, elem_id=f"xyz_grid_fill_{axis}_tool_button",
                                 elem_classes=["tool"], min_width=40, scale=0)
            rows.append((kind, text, dropdown, fill))
        with gr.Row(elem_id=self.elem_id("axis_options")):
            with gr.Column():
                draw_legend = gr.Checkbox(True, label="Draw legend", elem_id=self.elem_id("draw_legend"))
                no_fixed_seeds = gr.Checkbox(False, label="Keep -1 for seeds", elem_id=self.elem_id("no_fixed_seeds"))
                with gr.Row():
                    vary = [gr.Checkbox(False, label=f"Vary seeds for {a.upper()}", elem_id=self.elem_id(f"vary_seeds_{a}"))
                            for a in "xyz"]
            with gr.Column():
                include_lone_images = gr.Checkbox(False, label="Include Sub Images",
                                                  elem_id=self.elem_id("include_lone_images"))
                include_sub_grids = gr.Checkbox(False, label="Include Sub Grids",
                                                elem_id=self.elem_id("include_sub_grids"))
                csv_mode = gr.Checkbox(False, label="Use text inputs instead of dropdowns",
                                       elem_id=self.elem_id("csv_mode"))
            with gr.Column():
                margin_size = gr.Slider(0, 500, value=0, step=2, label="Grid margins (px)",
                                        elem_id=self.elem_id("margin_size"))
        with gr.Row():
            swaps = [gr.Button(f"Swap {a}/{b} axes", elem_id=f"{a.lower()}{b.lower()}_grid_swap_axes_button")
                     for a, b in (("X", "Y"), ("Y", "Z"), ("X", "Z"))]
        self._wire(tab, rows, csv_mode, swaps)
        (xk, xt, xd, _), (yk, yt, yd, _), (zk, zt, zd, _) = rows
        return [xk, xt, xd, yk, yt, yd, zk, zt, zd, draw_legend, include_lone_images, include_sub_grids,
                no_fixed_seeds, *vary, margin_size, csv_mode]

    def _wire(self, tab: str, rows: list[tuple[Any, ...]], csv_mode: Any, swaps: list[Any]) -> None:
        """Dropdown axes show a value picker (or the text box in csv mode); swap and fill buttons."""

        def select(kind: Any, text: str, chosen: list[str] | None, as_text: bool) -> tuple[Any, Any, Any]:
            axis = _axis_or_nothing(tab, kind)
            if axis.choices is None:
                return gr.update(visible=False), gr.update(visible=True), gr.update(visible=False, choices=[], value=[])
            choices = axis.choices(_env())
            if as_text:
                if chosen:
                    text = join_values([c for c in chosen if c in choices])
                return gr.update(visible=True), gr.update(visible=True, value=text), \
                    gr.update(visible=False, choices=choices, value=[])
            picked = [c for c in (chosen or []) if c in choices] or [v for v in split_values(text) if v in choices]
            return gr.update(visible=True), gr.update(visible=False, value=""), \
                gr.update(visible=True, choices=choices, value=picked)

        def fill(kind: Any, as_text: bool) -> tuple[Any, Any]:
            axis = _axis_or_nothing(tab, kind)
            if axis.choices is None:
                return gr.update(), gr.update()
            choices = axis.choices(_env())
            return (gr.update(value=join_values(choices)), gr.update()) if as_text else (gr.update(), gr.update(value=choices))

        for kind, text, dropdown, button in rows:
            kind.change(select, inputs=[kind, text, dropdown, csv_mode], outputs=[button, text, dropdown],
                        show_progress="hidden")
            button.click(fill, inputs=[kind, csv_mode], outputs=[text, dropdown], show_progress="hidden")

        def change_mode(as_text: bool, *values: Any) -> list[Any]:
            out: list[Any] = []
            for i in range(3):
                out += select(values[3 * i], values[3 * i + 1], values[3 * i + 2], as_text)
            return out

        flat = [c for kind, text, dropdown, _ in rows for c in (kind, text, dropdown)]
        csv_mode.change(change_mode, inputs=[csv_mode, *flat],
                        outputs=[c for _, text, dropdown, button in rows for c in (button, text, dropdown)],
                        show_progress="hidden")

        labels = [a.label for a in axes_for(tab)]

        def swap(kind_a: Any, text_a: str, drop_a: Any, kind_b: Any, text_b: str, drop_b: Any) -> tuple[Any, ...]:
            return (_label(labels, kind_b), text_b, drop_b, _label(labels, kind_a), text_a, drop_a)

        for button, (a, b) in zip(swaps, ((0, 1), (1, 2), (0, 2))):
            pair = [*rows[a][:3], *rows[b][:3]]
            button.click(swap, inputs=pair, outputs=pair, show_progress="hidden")

    def check_args(self, p: Processing, *args: Any) -> None:
        """Every axis and value, before anything is queued (a ValueError is the API's 422)."""
        plan_plot(p, args, _env(), _options(), _styles())

    def run(self, p: Processing, *args: Any) -> Processed:
        return run_plot(p, plan_plot(p, args, _env(), _options(), _styles()), process_images)


def _axis_or_nothing(tab: str, kind: Any) -> Any:
    try:
        return find_axis(tab, kind if kind is not None else 0)
    except AxisValueError:
        return axes_for(tab)[0]


def _label(labels: list[str], kind: Any) -> str:
    if isinstance(kind, int) and 0 <= kind < len(labels):
        return labels[kind]
    return str(kind) if kind in labels else labels[0]
