"""The ControlNet accordion without a browser: its units as the Script's args, and ↙ restoring them.

The studio is real (its built-in ControlNet extension, a tiny SD1 ControlNet in models/ControlNet);
the txt2img scripts are built in a Blocks as the page builds them, and the paste goes through the
same table (``PasteTab`` with the scripts' ``infotext_fields``) that ↙, Send to and PNG Info use.
"""

from __future__ import annotations

import gradio as gr
import pytest

from tests.kit.controlnets import write_controlnet
from webui.control import ui_values
from webui.ui.paste_params import PasteTab, script_paste_fields
from webui.ui.scripts_ui import build_scripts

UNIT = "txt2img_controlnet_ControlNet-{}_controlnet_{}"
PARAMS = "a cat\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: 1, Size: 64x64"


@pytest.fixture
def built(make_studio):
    """A studio (not started: no model is needed to build the page) with a tiny ControlNet, and
    the txt2img script controls of its page."""
    studio = make_studio(start=False)
    write_controlnet(studio.paths.controlnet_dir / "control_sd15_canny_ui.safetensors", "sd1")
    studio.controlnets.refresh()
    with gr.Blocks():
        scripts = build_scripts(studio, "txt2img")
    return studio, scripts


def _paste(studio, text: str) -> tuple[dict[str, object], str | None]:
    scripted = script_paste_fields(studio, "txt2img")
    tab = PasteTab({k: c for k, (c, _) in scripted.items()}, None, None, {k: r for k, (_, r) in scripted.items()})
    updates, note = tab.updates(text)
    by_id = {c.elem_id: u for (c, _), u in zip(scripted.values(), updates)}
    return by_id, note


def _value(update: object) -> object:
    return update.get("value") if isinstance(update, dict) else update


def test_the_units_are_the_scripts_args_and_off_by_default(built) -> None:
    studio, scripts = built
    placed = next(p for p in scripts.alwayson if p.title == "ControlNet")
    assert placed.stop - placed.start == ui_values.DEFAULT_UNIT_COUNT  # one arg per unit
    defaults = studio.plugins.scripts["txt2img"].defaults[placed.start:placed.stop]
    assert all(d["enabled"] is False and d["module"] == "none" and d["model"] == "None" for d in defaults)
    # The UI's values reach the request as the API's unit dicts, each in its own slot.
    first = scripts.controls[placed.start - 1]  # flat args start after the selected-script slot
    values = [scripts.dropdown.value, *[getattr(c, "value", None) for c in scripts.components]]
    values[1 + scripts.components.index(first)] = {**defaults[0], "enabled": True}
    fields = scripts.request_fields(values)
    assert fields["alwayson_scripts"]["ControlNet"]["args"][0]["enabled"] is True


def test_pasting_an_infotext_restores_the_units(built) -> None:
    studio, _ = built
    title = studio.controlnets.titles()[1]
    text = (f'{PARAMS}, ControlNet 0: "Module: canny, Model: {title}, Weight: 0.6, Resize Mode: Just Resize, '
            'Processor Res: 256, Threshold A: 50.0, Threshold B: 150.0, Guidance Start: 0.2, Guidance End: 0.8, '
            'Pixel Perfect: True, Control Mode: ControlNet is more important"')
    updates, note = _paste(studio, text)
    assert note == ""
    unit0 = {key: _value(updates[UNIT.format(0, key)]) for key in (
        "enable_checkbox", "preprocessor_dropdown", "model_dropdown", "control_weight_slider", "resize_mode_radio",
        "preprocessor_resolution_slider", "threshold_A_slider", "threshold_B_slider", "start_control_step_slider",
        "ending_control_step_slider", "pixel_perfect_checkbox", "control_mode_radio", "type_filter_radio")}
    assert unit0 == {"enable_checkbox": True, "preprocessor_dropdown": "canny", "model_dropdown": title,
                     "control_weight_slider": 0.6, "resize_mode_radio": "Just Resize",
                     "preprocessor_resolution_slider": 256, "threshold_A_slider": 50.0, "threshold_B_slider": 150.0,
                     "start_control_step_slider": 0.2, "ending_control_step_slider": 0.8,
                     "pixel_perfect_checkbox": True, "control_mode_radio": "ControlNet is more important",
                     "type_filter_radio": "All"}
    # A unit the text does not name is turned off, its other fields left as they are.
    assert updates[UNIT.format(1, "enable_checkbox")] is False
    assert updates[UNIT.format(1, "control_weight_slider")] == gr.skip()


def test_a_pasted_model_that_is_not_here_is_said_and_left_out(built) -> None:
    studio, _ = built
    updates, _ = _paste(studio, f'{PARAMS}, ControlNet 0: "Module: depth_midas, Model: control_gone [12345678], '
                                'Weight: 1.0, Resize Mode: Crop and Resize, Processor Res: 512, Threshold A: -1, '
                                'Threshold B: -1, Guidance Start: 0.0, Guidance End: 1.0, Pixel Perfect: False, '
                                'Control Mode: Balanced"')
    assert updates[UNIT.format(0, "enable_checkbox")] is True
    assert _value(updates[UNIT.format(0, "preprocessor_dropdown")]) == "depth_midas"  # a label, as the dropdown
    assert updates[UNIT.format(0, "model_dropdown")] == gr.skip()
    assert "control_gone [12345678]" in _value(updates[UNIT.format(0, "note")])
    # Text with no parameter line is a prompt: nothing is touched.
    untouched, note = _paste(studio, "just a prompt")
    assert note is None and all(u == gr.skip() for u in untouched.values())


def test_send_dimensions_rounds_to_eight() -> None:
    assert (ui_values.nearest_eight(517), ui_values.nearest_eight(389), ui_values.nearest_eight(3)) == (520, 392, 8)


def test_preview_says_what_a_preprocessor_needs_and_refuses_huge_images(built) -> None:
    from PIL import Image

    from webui.control.ui_services import Services

    studio, _ = built
    services = Services(studio)
    square = Image.new("RGB", (64, 48), "white")
    with pytest.raises(ValueError, match=r"needs dpt_hybrid-midas-501f0c75\.pt: put it in .*annotators"):
        services.detect("depth_midas", square, None, 512, -1, -1, False, "Crop and Resize", (64, 64))
    # Pixel Perfect: the map is made at the resolution that covers the tab's size (48 px → 128 px).
    detected = services.detect("canny", square, None, 512, 100, 200, True, "Crop and Resize", (128, 128))
    assert min(detected.size) == 128
    studio.options.update({"limit_pixels_per_image": 4096})
    with pytest.raises(ValueError, match="limit_pixels_per_image"):
        services.detect("canny", Image.new("RGB", (80, 64)), None, 512, 100, 200, False, "Crop and Resize", (64, 64))
