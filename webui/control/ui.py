"""The ControlNet accordion of txt2img and img2img: one tab per unit, as sd-webui-controlnet lays it out.

``build_units_ui(script, is_img2img)`` is called by the ControlNet Script's ``ui()`` and returns one
``gr.State`` per unit, holding that unit as the API's unit dict (webui/control/ui_values.py); every
control of the unit rewrites it on change, so the Script's N args at Generate are the N units.
Element ids are the extension's (``txt2img_controlnet_ControlNet-0_controlnet_enable_checkbox``...),
so its users' scripts and styles find the same controls.

Preview runs only the preprocessor (in Gradio's worker threads, off the event loop) and shows the
detected map; "send dimensions" sets the tab's Width / Height from the unit's image. A script's
``ui()`` has no handle on the tab's own fields: those (and img2img's init image) are looked up by
element id among the blocks already built on the page, and the buttons that need them are hidden
when they are not there (a throwaway Blocks, as the API builds for the defaults).

Paste (↙, Send to, PNG Info): ``script.infotext_fields`` restores each ``ControlNet N`` of the text
into unit N and turns the units the text does not name off (webui/ui/paste_params.py reads it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

import gradio as gr
from PIL import Image

from webui.control import ui_values
from webui.control.ui_services import Services
from webui.control.ui_values import (
    ALL_TYPES,
    CONTROL_MODES,
    DEFAULT_RESOLUTION,
    HR_OPTIONS,
    NO_MODEL,
    NO_MODULE,
    RESIZE_MODES,
    Slider,
)

log = logging.getLogger(__name__)

PRIVATE: dict[str, Any] = {"api_visibility": "private", "show_progress": "hidden"}
# Text symbols, not emoji: the page must not depend on an emoji font (headless browsers have none).
ICONS = {"preview": "\u2739", "refresh": "\u21bb", "dimensions": "\u2922"}  # ✹ ↻ ⤢


@dataclass
class UnitControls:
    """One unit's controls (fields named as the API's unit fields where there is one)."""

    index: int
    elem: str  # the extension's prefix: <tab>_controlnet_ControlNet-<i>
    image_panel: gr.Group
    image: gr.Image
    mask: gr.Image
    preview: gr.Image
    independent: gr.Checkbox | None  # img2img: "Upload independent control image" (off: the img2img image)
    enabled: gr.Checkbox
    low_vram: gr.Checkbox
    pixel_perfect: gr.Checkbox
    allow_preview: gr.Checkbox
    use_mask: gr.Checkbox
    type_filter: gr.Radio
    module: gr.Dropdown
    run_preview: gr.Button
    model: gr.Dropdown
    refresh: gr.Button
    send_dimensions: gr.Button
    weight: gr.Slider
    guidance_start: gr.Slider
    guidance_end: gr.Slider
    processor_res: gr.Slider
    threshold_a: gr.Slider
    threshold_b: gr.Slider
    control_mode: gr.Radio
    resize_mode: gr.Radio
    hr_option: gr.Radio
    note: gr.Markdown
    state: gr.State

    def value_inputs(self) -> list[gr.components.Component]:
        """What the unit's dict is made from (see :func:`_unit_value`), in that order."""
        own = [self.enabled, self.image, self.use_mask, self.mask, self.module, self.model, self.weight,
               self.resize_mode, self.processor_res, self.threshold_a, self.threshold_b, self.guidance_start,
               self.guidance_end, self.pixel_perfect, self.control_mode, self.low_vram, self.hr_option]
        return own + ([self.independent] if self.independent is not None else [])


def build_units_ui(script: Any, is_img2img: bool) -> list[gr.State]:
    """The accordion, in the current Blocks; one State per unit (the Script's args)."""
    tab = "img2img" if is_img2img else "txt2img"
    services = Services.current()
    page = _PageFields(tab)
    units: list[UnitControls] = []
    with gr.Group(elem_id=f"{tab}_controlnet"):
        with gr.Accordion("ControlNet", open=False, elem_id=f"{tab}_controlnet_accordion"):
            with gr.Tabs(elem_id=f"{tab}_controlnet_tabs"):
                for index in range(services.unit_count()):
                    with gr.Tab(f"ControlNet Unit {index}", elem_id=f"{tab}_controlnet_ControlNet-{index}_tab"):
                        units.append(_build_unit(services, tab, index, is_img2img, page))
    for unit in units:
        _wire_unit(services, unit, page)
    script.infotext_fields = [pair for unit in units for pair in _paste_fields(services, unit, len(units))]
    script.paste_field_names = [key for _, key in script.infotext_fields if isinstance(key, str)]
    return [unit.state for unit in units]


# --- layout ------------------------------------------------------------------------------------------

def _build_unit(services: Services, tab: str, index: int, is_img2img: bool, page: _PageFields) -> UnitControls:
    elem = f"{tab}_controlnet_ControlNet-{index}"
    with gr.Group(visible=not is_img2img, elem_id=f"{elem}_image_panel") as image_panel:
        with gr.Row(equal_height=True):
            image = gr.Image(label="Control image", type="pil", image_mode="RGB", sources=["upload", "clipboard"],
                             format="png", height=256, elem_id=f"{elem}_input_image")
            preview = gr.Image(label="Preprocessor Preview", type="pil", interactive=False, visible=False,
                               format="png", height=256, elem_id=f"{elem}_generated_image")
        mask = gr.Image(label="Mask (white: the area an inpaint preprocessor repaints)", type="pil", image_mode="L",
                        sources=["upload", "clipboard"], format="png", height=192, visible=False,
                        elem_id=f"{elem}_mask_image")
    with gr.Row():
        enabled = gr.Checkbox(False, label="Enable", elem_id=f"{elem}_controlnet_enable_checkbox")
        low_vram = gr.Checkbox(False, label="Low VRAM", elem_id=f"{elem}_controlnet_low_vram_checkbox")
        pixel_perfect = gr.Checkbox(False, label="Pixel Perfect", elem_id=f"{elem}_controlnet_pixel_perfect_checkbox")
        allow_preview = gr.Checkbox(False, label="Allow Preview",
                                    elem_id=f"{elem}_controlnet_preprocessor_preview_checkbox")
        use_mask = gr.Checkbox(False, label="Mask", elem_id=f"{elem}_controlnet_mask_upload_checkbox")
        send_dimensions = gr.Button(ICONS["dimensions"], elem_classes=["tool-button"], scale=0, min_width=40,
                                    visible=page.has_size, elem_id=f"{elem}_controlnet_send_dimen_button")
    independent = None
    if is_img2img:
        independent = gr.Checkbox(False, label="Upload independent control image (off: the unit uses the img2img image)",
                                  elem_id=f"{elem}_controlnet_same_img2img_checkbox")
    types = services.type_names()
    type_filter = gr.Radio(types, value=ALL_TYPES, label="Control Type",
                           elem_id=f"{elem}_controlnet_type_filter_radio")
    modules, models, default_module, default_model = services.filtered(ALL_TYPES)
    with gr.Row(equal_height=True):
        module = gr.Dropdown(modules, value=NO_MODULE if NO_MODULE in modules else default_module, label="Preprocessor",
                             elem_id=f"{elem}_controlnet_preprocessor_dropdown")
        run_preview = gr.Button(ICONS["preview"], elem_classes=["tool-button"], scale=0, min_width=40,
                                elem_id=f"{elem}_controlnet_trigger_preprocessor")
        model = gr.Dropdown(models, value=NO_MODEL if NO_MODEL in models else default_model, label="Model",
                            elem_id=f"{elem}_controlnet_model_dropdown")
        refresh = gr.Button(ICONS["refresh"], elem_classes=["tool-button"], scale=0, min_width=40,
                            elem_id=f"{elem}_controlnet_refresh_models")
    with gr.Row():
        weight = gr.Slider(0.0, 2.0, step=0.05, value=1.0, label="Control Weight",
                           elem_id=f"{elem}_controlnet_control_weight_slider")
        guidance_start = gr.Slider(0.0, 1.0, step=0.01, value=0.0, label="Starting Control Step",
                                   elem_id=f"{elem}_controlnet_start_control_step_slider")
        guidance_end = gr.Slider(0.0, 1.0, step=0.01, value=1.0, label="Ending Control Step",
                                 elem_id=f"{elem}_controlnet_ending_control_step_slider")
    resolution, slider_a, slider_b = ui_values.sliders(services.detail(module.value))
    with gr.Row():
        processor_res = gr.Slider(**_slider_kwargs(resolution if resolution.visible else DEFAULT_RESOLUTION),
                                  visible=resolution.visible,
                                  elem_id=f"{elem}_controlnet_preprocessor_resolution_slider")
        threshold_a = gr.Slider(**_slider_kwargs(slider_a), visible=slider_a.visible,
                                elem_id=f"{elem}_controlnet_threshold_A_slider")
        threshold_b = gr.Slider(**_slider_kwargs(slider_b), visible=slider_b.visible,
                                elem_id=f"{elem}_controlnet_threshold_B_slider")
    control_mode = gr.Radio(list(CONTROL_MODES), value=CONTROL_MODES[0], label="Control Mode",
                            elem_id=f"{elem}_controlnet_control_mode_radio")
    resize_mode = gr.Radio(list(RESIZE_MODES), value=RESIZE_MODES[1], label="Resize Mode",
                           elem_id=f"{elem}_controlnet_resize_mode_radio")
    hr_option = gr.Radio(list(HR_OPTIONS), value=HR_OPTIONS[0], label="Hires-Fix Option", visible=not is_img2img,
                         elem_id=f"{elem}_controlnet_hr_option_radio")
    note = gr.Markdown("", elem_id=f"{elem}_controlnet_note")
    state = gr.State(ui_values.default_unit())
    return UnitControls(index, elem, image_panel, image, mask, preview, independent, enabled, low_vram, pixel_perfect,
                        allow_preview, use_mask, type_filter, module, run_preview, model, refresh, send_dimensions,
                        weight, guidance_start, guidance_end, processor_res, threshold_a, threshold_b, control_mode,
                        resize_mode, hr_option, note, state)


def _slider_kwargs(slider: Slider) -> dict[str, Any]:
    return {"minimum": slider.minimum, "maximum": slider.maximum, "step": slider.step, "value": slider.value,
            "label": slider.label or "Threshold"}


def _slider_updates(services: Services, module: str, pixel_perfect: bool, values: bool) -> list[dict]:
    """Updates of (resolution, threshold A, threshold B) for ``module``: ranges and labels always,
    the module's defaults as values only when the user picked it (a paste keeps its own values)."""
    updates = []
    for position, slider in enumerate(ui_values.sliders(services.detail(module))):
        visible = slider.visible and not (position == 0 and pixel_perfect)
        if not slider.visible:
            updates.append(gr.update(visible=False))
            continue
        kwargs = _slider_kwargs(slider)
        if not values:
            kwargs.pop("value")
        updates.append(gr.update(visible=visible, **kwargs))
    return updates


# --- behaviour ---------------------------------------------------------------------------------------

def _unit_value(services: Services, enabled: bool, image: Image.Image | None, use_mask: bool,
                mask: Image.Image | None, module: str, model: str, weight: float, resize_mode: str,
                processor_res: float, threshold_a: float, threshold_b: float, guidance_start: float,
                guidance_end: float, pixel_perfect: bool, control_mode: str, low_vram: bool, hr_option: str,
                independent: bool = True) -> dict[str, Any]:
    return ui_values.unit_value(
        enabled=enabled, image=image if independent else None, mask=mask if use_mask and independent else None,
        module=module, model=model, weight=weight, resize_mode=resize_mode, processor_res=processor_res,
        threshold_a=threshold_a, threshold_b=threshold_b, guidance_start=guidance_start, guidance_end=guidance_end,
        pixel_perfect=pixel_perfect, control_mode=control_mode, low_vram=low_vram, hr_option=hr_option,
        detail=services.detail(module))


def _wire_unit(services: Services, unit: UnitControls, page: _PageFields) -> None:
    u = unit
    # The unit's dict follows its controls (.change also fires on pastes and programmatic updates).
    inputs = u.value_inputs()
    gr.on([c.change for c in inputs], lambda *values: _unit_value(services, *values), inputs=inputs,
          outputs=u.state, queue=False, trigger_mode="always_last", **PRIVATE)
    if page.generate is not None:  # and once more at Generate, in case a change is still on its way
        page.generate.click(lambda *values: _unit_value(services, *values), inputs=inputs, outputs=u.state,
                            queue=False, **PRIVATE)

    sliders = [u.processor_res, u.threshold_a, u.threshold_b]

    def choose_type(kind: str, pixel_perfect: bool) -> list[Any]:
        modules, models, module, model = services.filtered(kind)
        return [gr.update(choices=modules, value=module), gr.update(choices=models, value=model),
                *_slider_updates(services, module, pixel_perfect, values=True), services.unavailable(module)]

    # .input (the user's pick), not .change: a paste sets the type to All without resetting the module.
    u.type_filter.input(choose_type, inputs=[u.type_filter, u.pixel_perfect],
                        outputs=[u.module, u.model, *sliders, u.note], queue=False, **PRIVATE)
    u.module.input(lambda m, pp: [*_slider_updates(services, m, pp, values=True), services.unavailable(m)],
                   inputs=[u.module, u.pixel_perfect], outputs=[*sliders, u.note], queue=False, **PRIVATE)
    u.module.change(lambda m, pp: _slider_updates(services, m, pp, values=False), inputs=[u.module, u.pixel_perfect],
                    outputs=sliders, queue=False, **PRIVATE)
    u.pixel_perfect.change(lambda m, pp: _slider_updates(services, m, pp, values=False)[0],
                           inputs=[u.module, u.pixel_perfect], outputs=u.processor_res, queue=False, **PRIVATE)

    def refresh(kind: str, current: str) -> dict:
        services.refresh_models()
        _, models, _, default = services.filtered(kind)
        return gr.update(choices=models, value=current if current in models else default)

    u.refresh.click(refresh, inputs=[u.type_filter, u.model], outputs=u.model, queue=False, **PRIVATE)
    u.use_mask.change(lambda on: gr.update(visible=on), inputs=u.use_mask, outputs=u.mask, queue=False, **PRIVATE)
    u.allow_preview.change(lambda on: gr.update(visible=on), inputs=u.allow_preview, outputs=u.preview, queue=False,
                           **PRIVATE)
    if u.independent is not None:
        u.independent.change(lambda on: gr.update(visible=on), inputs=u.independent, outputs=u.image_panel,
                             queue=False, **PRIVATE)

    def source(data: dict) -> Image.Image | None:
        """The unit's own image, or in img2img with no independent image the init image."""
        if u.independent is not None and not data[u.independent]:
            init = data.get(page.init_image) if page.init_image is not None else None
            return init if isinstance(init, Image.Image) else None
        return data[u.image]

    def size(data: dict) -> tuple[float | None, float | None]:
        return (data[page.width], data[page.height]) if page.has_size else (None, None)

    def preview(data: dict) -> tuple:
        picture = source(data)
        if picture is None:
            return gr.skip(), gr.skip(), "Upload a control image first, then preview."
        try:
            detected = services.detect(data[u.module], picture, data[u.mask] if data[u.use_mask] else None,
                                       data[u.processor_res], data[u.threshold_a], data[u.threshold_b],
                                       data[u.pixel_perfect], data[u.resize_mode], size(data))
        except ValueError as e:  # an unknown module, a missing annotator file: say which and where
            return gr.skip(), gr.skip(), f"⚠️ Preview: {e}"
        return gr.update(value=detected, visible=True), True, ""

    # Gradio passes a set of inputs as one dict: the tab's own fields join only where they exist.
    page_inputs = {c for c in (u.independent, page.init_image, page.width, page.height) if c is not None}
    u.run_preview.click(preview, inputs={u.image, u.mask, u.use_mask, u.module, *sliders, u.pixel_perfect,
                                         u.resize_mode, *page_inputs},
                        outputs=[u.preview, u.allow_preview, u.note], concurrency_id="controlnet_preview",
                        concurrency_limit=1, **PRIVATE)

    if page.has_size:
        def send_dimensions(data: dict) -> tuple:
            picture = source(data)
            if picture is None:
                return gr.skip(), gr.skip()
            return ui_values.nearest_eight(picture.width), ui_values.nearest_eight(picture.height)

        u.send_dimensions.click(send_dimensions, inputs={u.image, *page_inputs}, outputs=[page.width, page.height],
                                queue=False, **PRIVATE)


# --- paste: ControlNet N of an infotext → unit N -------------------------------------------------------

def _paste_fields(services: Services, unit: UnitControls, count: int) -> list[tuple[Any, Callable[[dict], Any]]]:
    """(component, params → value or None) pairs, A1111's ``infotext_fields`` with callable keys."""
    index = unit.index

    def pasted(params: dict) -> Any:
        return ui_values.pasted_units(params, count).get(index)

    def field(read: Callable[[Any], Any]) -> Callable[[dict], Any]:
        def value(params: dict) -> Any:
            found = pasted(params)
            return read(found) if found is not None and not isinstance(found, str) else None
        return value

    def module(found: Any) -> Any:
        name = services.find_module(found.module)
        return gr.update(choices=services.filtered(ALL_TYPES)[0], value=name) if name is not None else None

    def model(found: Any) -> Any:
        title = services.find_model(found.model)
        return gr.update(choices=services.filtered(ALL_TYPES)[1], value=title) if title is not None else None

    def note(params: dict) -> str:
        found = pasted(params)
        if found is None:
            return ""
        if isinstance(found, str):
            return f"⚠️ {found}"
        missing = []
        if services.find_module(found.module) is None:
            missing.append(f"preprocessor {found.module!r} is not known here")
        if services.find_model(found.model) is None:
            missing.append(f"model {found.model!r} is not in models/ControlNet (add it, then ↻)")
        return f"⚠️ Pasted {ui_values.unit_prefix(index)}, but {'; '.join(missing)}." if missing else ""

    def number(name: str) -> Callable[[Any], Any]:
        return lambda found: getattr(found, name) if getattr(found, name) != -1 else None

    return [
        (unit.enabled, lambda params: isinstance(pasted(params), ui_values.ControlNetUnit)),
        (unit.type_filter, field(lambda found: ALL_TYPES)),
        (unit.module, field(module)),
        (unit.model, field(model)),
        (unit.weight, field(lambda found: found.weight)),
        (unit.resize_mode, field(lambda found: found.resize_mode.value)),
        (unit.processor_res, field(number("processor_res"))),
        (unit.threshold_a, field(number("threshold_a"))),
        (unit.threshold_b, field(number("threshold_b"))),
        (unit.guidance_start, field(lambda found: found.guidance_start)),
        (unit.guidance_end, field(lambda found: found.guidance_end)),
        (unit.pixel_perfect, field(lambda found: found.pixel_perfect)),
        (unit.control_mode, field(lambda found: found.control_mode.value)),
        (unit.note, note),
    ]


# --- the tab's own fields ------------------------------------------------------------------------------

class _PageFields:
    """The tab's Width / Height, Generate button and img2img init image, if already on the page."""

    def __init__(self, tab: str):
        found = _built_by_elem_id()
        self.width = found.get(f"{tab}_width")
        self.height = found.get(f"{tab}_height")
        self.generate = found.get(f"{tab}_generate")
        self.init_image = found.get("img2img_image") if tab == "img2img" else None

    @property
    def has_size(self) -> bool:
        return self.width is not None and self.height is not None


def _built_by_elem_id() -> dict[str, Any]:
    config = gr.context.get_blocks_context()
    if config is None:
        return {}
    return {block.elem_id: block for block in list(config.blocks.values()) if getattr(block, "elem_id", None)}
