"""SD Studio's example extension: a tab, a setting, an always-on script and a route.

Everything it uses comes from ``webui.plugins.api`` (see docs/extensions.md).
"""

import gradio as gr

from webui.plugins.api import AlwaysVisible, Script, add_option, get_option, on_app_started, on_ui_settings, on_ui_tabs


class PromptSuffix(Script):
    """Always on: adds the "example_suffix" setting to every prompt when ticked."""

    def title(self):
        return "Example: prompt suffix"

    def show(self, is_img2img):
        return AlwaysVisible

    def ui(self, is_img2img):
        with gr.Accordion("Example: prompt suffix", open=False):
            enabled = gr.Checkbox(False, label="Add the suffix from Settings → SD Studio example")
        return [enabled]

    def process(self, p, enabled):
        if enabled:
            suffix = get_option("example_suffix")
            p.all_prompts = [f"{prompt}, {suffix}" for prompt in p.all_prompts]
            p.extra_generation_params["Example suffix"] = suffix


def settings():
    add_option("example_suffix", "highly detailed", "Suffix the example script adds to prompts")


def tab():
    with gr.Blocks() as blocks:
        gr.Markdown("This tab comes from `extensions/sd-studio-example`. Its route: `GET /example/suffix`.")
    return [(blocks, "Example", "sd_studio_example_tab")]


def routes(demo, app):
    @app.get("/example/suffix")
    def suffix():
        return {"suffix": get_option("example_suffix")}


on_ui_settings(settings)
on_ui_tabs(tab)
on_app_started(routes)
