"""A test extension on SD Studio's native API."""

import gradio as gr

from webui.plugins.api import AlwaysVisible, Script, add_option, get_option, on_app_started, on_ui_settings, on_ui_tabs


class Signature(Script):
    """Always on: writes an infotext key with the batch size it saw in process()."""

    def title(self):
        return "Signature"

    def show(self, is_img2img):
        return AlwaysVisible

    def ui(self, is_img2img):
        return [gr.Checkbox(True, label="Sign images"), gr.Textbox("native", label="Signature")]

    def process(self, p, sign, signature):
        if sign:
            p.extra_generation_params["Signature"] = f"{signature}/{len(p.all_prompts)}"


on_ui_settings(lambda: add_option("native_style_color", "teal", "Colour of the native tab", choices=["teal", "plum"]))
on_app_started(lambda demo, app: app.add_api_route("/native-style/color", lambda: {"color": get_option("native_style_color")}))


def _tab():
    with gr.Blocks() as tab:
        gr.Markdown("Native tab", elem_id="native_style_tab_text")
    return [(tab, "Native", "native_style_tab")]


on_ui_tabs(_tab)
