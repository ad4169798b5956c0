"""A test extension written the A1111 way: `from modules import ...` only."""

import gradio as gr
from fastapi import FastAPI

from modules import images, processing, script_callbacks, scripts, shared


class PromptRewriter(scripts.Script):
    """Always on: appends a word and a counter to every image's prompt, and says so in the infotext."""

    def title(self):
        return "Prompt rewriter"

    def show(self, is_img2img):
        return scripts.AlwaysVisible

    def ui(self, is_img2img):
        with gr.Accordion("Prompt rewriter", open=False):
            enabled = gr.Checkbox(False, label="Rewrite prompts", elem_id=self.elem_id("enabled"))
            word = gr.Textbox("rewritten", label="Word to add", elem_id=self.elem_id("word"))
        return [enabled, word]

    def process(self, p, enabled, word):
        if not enabled:
            return
        p.all_prompts = [f"{prompt}, {word} {i}" for i, prompt in enumerate(p.all_prompts)]
        p.extra_generation_params["Prompt rewriter"] = word


class RunTwice(scripts.Script):
    """Selectable: generates, then generates again from a new p with another seed; returns both."""

    def title(self):
        return "Run twice"

    def ui(self, is_img2img):
        return [gr.Slider(1, 1000, value=7, step=1, label="Seed offset of the second run")]

    def run(self, p, offset):
        first = processing.process_images(p)
        second_p = processing.StableDiffusionProcessingTxt2Img(
            sd_model=shared.sd_model, prompt=p.prompt + ", again", negative_prompt=p.negative_prompt,
            seed=first.seed + int(offset), steps=p.steps, cfg_scale=p.cfg_scale, width=p.width, height=p.height,
            sampler_name=p.sampler_name, do_not_save_samples=True, do_not_save_grid=True,
        )
        second = processing.process_images(second_p)
        return processing.Processed(p, first.images + second.images, first.seed, first.info,
                                    infotexts=first.infotexts + second.infotexts,
                                    all_seeds=first.all_seeds + second.all_seeds)


def on_ui_settings():
    section = ("a1111_style", "A1111-style test extension")
    shared.opts.add_option("a1111_style_greeting", shared.OptionInfo("hello", "Greeting the route answers with",
                                                                     section=section))


def on_app_started(demo, app: FastAPI):
    @app.get("/a1111-style/hello")
    def hello():
        return {"greeting": shared.opts.a1111_style_greeting, "interrupted": shared.state.interrupted,
                "save_image": callable(images.save_image)}


def on_ui_tabs():
    with gr.Blocks(analytics_enabled=False) as tab:
        gr.Markdown("Hello from the A1111-style extension", elem_id="a1111_style_tab_text")
    return [(tab, "A1111 style", "a1111_style_tab")]


script_callbacks.on_ui_settings(on_ui_settings)
script_callbacks.on_app_started(on_app_started)
script_callbacks.on_ui_tabs(on_ui_tabs)
