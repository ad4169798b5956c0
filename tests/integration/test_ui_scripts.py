"""Extensions in the Gradio UI, built in process: script controls, extension tabs, page assets, settings.

A Studio over a data dir whose extensions/ holds copies of the kit's a1111-style, native-style and
broken-ui extensions (plus files that must never reach the page), then ``build_ui(studio)``. The
txt2img event is called as Gradio calls it, by its API parameter names, and runs real (tiny) jobs.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import gradio as gr
import pytest
from PIL import Image

from tests.conftest import build_studio
from webui.plugins import context
from webui.plugins.script_set import ScriptSet
from webui.ui import build_ui
from webui.ui.extension_assets import MAX_ASSET_BYTES
from webui.ui.scripts_ui import build_scripts

KIT = Path(__file__).resolve().parents[1] / "kit" / "extensions"
TINY = dict(steps=2, width=64, height=64, cfg_scale=5.0, sampler_name="Euler", scheduler="Automatic", seed=11)


@pytest.fixture(scope="module")
def built(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("ui-scripts")
    for name in ("a1111-style", "native-style", "broken-ui"):
        shutil.copytree(KIT / name, data_dir / "extensions" / name)
    ext = data_dir / "extensions" / "a1111-style"
    # Never on the page: not a script, not in javascript/, a link out of the extension, too big.
    (ext / "javascript" / "notes.txt").write_text("NOT-A-SCRIPT-MARKER")
    (ext / "other").mkdir()
    (ext / "other" / "elsewhere.js").write_text("ELSEWHERE-MARKER")
    outside = data_dir / "outside.js"
    outside.write_text("SYMLINK-MARKER")
    (ext / "javascript" / "linked.js").symlink_to(outside)
    (ext / "javascript" / "huge.js").write_text("HUGE-MARKER" + " " * MAX_ASSET_BYTES)
    # A file that tries to close the head's <script>, and a localization chosen in config.json.
    (ext / "javascript" / "closing.js").write_text('window.sdClosing = "</script><b>bold</b>";')
    (ext / "localizations").mkdir()
    (ext / "localizations" / "xx_Test.json").write_text(json.dumps({"Generate": "Erzeugen", "n": 3}))
    (data_dir / "config.json").write_text(json.dumps({"localization": "xx_Test"}))

    studio = build_studio(data_dir, checkpoint_store, ("sd15",))
    context.activate(studio.plugins)
    demo, launch_kwargs = build_ui(studio)
    yield studio, demo, launch_kwargs
    studio.stop()


def _components(demo: gr.Blocks, elem_id: str) -> list[Any]:
    return [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id]


def _endpoint(demo: gr.Blocks, name: str) -> tuple[Any, list[dict]]:
    fn = next(f for f in demo.fns.values() if f.api_name == name)
    return fn.fn, demo.get_api_info()["named_endpoints"][f"/{name}"]["parameters"]


def _param(parameters: list[dict], label: str) -> str:
    return next(p["parameter_name"] for p in parameters if p.get("label") == label)


def _txt2img(demo: gr.Blocks, **fields: Any) -> tuple:
    """Call the txt2img event as an API client does, by keyword; the last output (the results)."""
    run, parameters = _endpoint(demo, "txt2img")
    values = {p["parameter_name"]: p["parameter_default"] for p in parameters if p.get("parameter_has_default")}
    values.update(prompt="a fox", negative_prompt="", styles=[], **TINY)
    values.update(fields)
    *_, last = run(**values)
    return last


def test_script_dropdown_lists_the_selectable_scripts(built) -> None:
    _, demo, _ = built
    menus = [c for c in _components(demo, "script_list") if isinstance(c, gr.Dropdown)]
    assert len(menus) == 2  # txt2img and img2img, as A1111's #<tab>_script_container #script_list
    builtin = {"Prompt matrix", "Prompts from file or textbox", "X/Y/Z plot"}
    img2img_only = {"SD upscale", "Outpainting mk2", "Poor man's outpainting", "Loopback"}
    txt2img_menu, img2img_menu = ([value for _, value in menu.choices] for menu in menus)
    assert txt2img_menu[0] == img2img_menu[0] == "None"
    assert set(txt2img_menu[1:]) == builtin | {"Run twice"}  # the img2img-only scripts are not offered
    assert set(img2img_menu[1:]) == builtin | img2img_only | {"Run twice"}
    assert _components(demo, "txt2img_script_container") and _components(demo, "img2img_script_container")
    # The keyword names API clients use are still there, the scripts' after them.
    _, parameters = _endpoint(demo, "txt2img")
    names = [p["parameter_name"] for p in parameters]
    assert names[:3] == ["prompt", "negative_prompt", "styles"] and "checkpoint" in names
    assert names.index("script_name") > names.index("checkpoint")


def test_always_on_values_go_into_the_request(built) -> None:
    _, demo, _ = built
    _, parameters = _endpoint(demo, "txt2img")
    gallery, info, log, *_ = _txt2img(demo, **{_param(parameters, "Rewrite prompts"): True,
                                               _param(parameters, "Word to add"): "zebra",
                                               _param(parameters, "Signature"): "from-ui"})
    assert "sd-error" not in log, log
    assert len(gallery) == 1
    assert info.startswith("a fox, zebra 0\n")
    assert "Prompt rewriter: zebra" in info and "Signature: from-ui/1" in info


def test_selectable_script_runs_from_the_tab(built) -> None:
    _, demo, _ = built
    gallery, info, log, _progress, _preview, shown, _job = _txt2img(demo, script_name="Run twice")
    assert "sd-error" not in log, log
    assert len(gallery) == 2  # the first run's image and the second's (not saved: shown as PNG)
    assert shown["infotexts"][1].startswith("a fox, again\n")


def test_unknown_script_is_shown_as_an_error(built) -> None:
    _, demo, _ = built
    gallery, _, log, *_ = _txt2img(demo, script_name="No such script")
    assert "sd-error" in log and "No such script" in log and "Run twice" in log
    assert not isinstance(gallery, list)  # nothing queued, the gallery left alone


def test_broken_ui_is_recorded_and_the_others_are_built(built) -> None:
    studio, demo, _ = built
    assert any(p.extension == "broken-ui" and "ui()" in p.where for p in studio.plugins.problems.all())
    assert _components(demo, "script_txt2img_prompt_rewriter_enabled")  # A1111's elem_id() of a script control


def test_extension_tabs_sit_between_img2img_and_settings(built) -> None:
    _, demo, _ = built
    tabs = next(b for b in demo.blocks.values() if isinstance(b, gr.Tabs) and b.elem_id == "tabs")
    titles = [t.label for t in tabs.children if isinstance(t, gr.Tab)]
    assert titles[:2] == ["txt2img", "img2img"] and titles[-2:] == ["Settings", "Extensions"]
    assert titles[2:5] == ["Extras", "PNG Info", "Checkpoint Merger"]  # A1111's order
    assert set(titles[5:-2]) == {"A1111 style", "Native"}
    assert [t.elem_id for t in tabs.children][:2] == ["tab_txt2img", "tab_img2img"]
    assert _components(demo, "a1111_style_tab_text") and _components(demo, "native_style_tab_text")


def test_a_tab_callback_returning_garbage_is_a_problem(built) -> None:
    studio, _, _ = built
    studio.plugins.callbacks.add("ui_tabs", lambda: ["not a tab"], extension="garbage-tabs")
    try:
        demo, _ = build_ui(studio)
    finally:
        studio.plugins.callbacks.remove(lambda entry: entry.extension == "garbage-tabs")
        build_ui(studio)  # lay the scripts out again for the module's first UI (args positions)
    assert any("expected a list of (gr.Blocks" in p.message for p in studio.plugins.problems.of("garbage-tabs"))
    assert _components(demo, "a1111_style_tab_text")


def test_head_has_the_helpers_and_only_the_listed_files(built) -> None:
    _, _, launch_kwargs = built
    head = launch_kwargs["head"]
    for helper in ("window.gradioApp", "window.onUiLoaded", "window.onAfterUiUpdate", "window.get_uiCurrentTab",
                   "window.uiElementIsVisible", "window.onOptionsChanged"):
        assert helper in head
    assert "data-a1111-style-js" in head and "onUiLoaded(function ()" in head  # marker.js
    assert "#a1111_style_tab_text { outline" in head  # style.css
    for marker in ("NOT-A-SCRIPT-MARKER", "ELSEWHERE-MARKER", "SYMLINK-MARKER", "HUGE-MARKER"):
        assert marker not in head
    assert head.count("</script") == 1 and head.endswith("</script>")  # closing.js cannot end it early
    assert "Erzeugen" in head  # the chosen localization
    assert '"localization": "xx_Test"' in head  # opts


def test_settings_show_the_extensions_options_and_save_them(built) -> None:
    studio, demo, _ = built
    assert _components(demo, "setting_a1111_style_greeting") and _components(demo, "setting_native_style_color")
    assert _components(demo, "setting_txt2img_default_steps")
    (language,) = _components(demo, "setting_localization")
    assert [value for _, value in language.choices] == ["None", "xx_Test"]
    apply = next(f for f in demo.fns.values() if f.api_name == "apply_settings")
    # What the page sends: the current values (lists as lists), None for the checkpoint (unchanged).
    values = [_as_sent(studio.options.get(c.elem_id[len("setting_"):])) if c.elem_id.startswith("setting_")
              else None for c in apply.inputs]
    index = [c.elem_id for c in apply.inputs].index("setting_native_style_color")
    values[index] = "plum"
    try:
        message = apply.fn(None, *values)
        assert message.startswith("1 settings changed"), message
        assert studio.options.get("native_style_color") == "plum"
        assert json.loads(studio.paths.config_file.read_text())["native_style_color"] == "plum"
    finally:
        studio.options.update({"native_style_color": "teal"})


def _as_sent(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def test_scripts_ui_turns_values_into_request_fields(built) -> None:
    studio, _, _ = built
    with gr.Blocks():
        scripts = build_scripts(studio, "txt2img")
    script_set: ScriptSet = studio.plugins.scripts["txt2img"]
    picture = Image.new("RGB", (8, 8))
    values: list[Any] = ["Run twice", *[c.value for c in scripts.components]]
    rewriter = next(p for p in scripts.alwayson if p.title == "Prompt rewriter")
    values[rewriter.start + 1] = picture  # any value travels as it is (an image from gr.Image too)
    fields = scripts.request_fields(values)
    assert fields["script_name"] == "Run twice" and fields["script_args"] == [7]
    assert fields["alwayson_scripts"]["Prompt rewriter"]["args"] == [False, picture]
    assert "Broken UI" not in fields["alwayson_scripts"]  # no controls, no args
    assert scripts.request_fields(["None", *values[1:]]).get("script_name") is None
    assert len(script_set.defaults) == len(scripts.controls) + 1
