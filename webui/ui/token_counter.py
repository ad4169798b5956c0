"""A1111's token counter at the top-right corner of a prompt box: "12/75", "80/150" past a chunk."""

from __future__ import annotations

import html
import logging

import gradio as gr

from webui import limits
from webui.ui.protocol import StudioView

log = logging.getLogger(__name__)

CSS = """
.sd-prompt-wrap { position: relative; }
.sd-token-counter { position: absolute !important; top: 0.35em; right: 0.6em; z-index: 5; width: auto !important;
  pointer-events: none; }
.sd-token-counter span { font-size: 0.8em; padding: 0.05em 0.45em; border-radius: 0.5em; opacity: 0.85;
  background: var(--block-background-fill); border: 1px solid var(--border-color-primary); }
"""


def counter_html(used: int, limit: int) -> str:
    return f"<span>{used}/{limit}</span>"


def over_limit_html(reason: str) -> str:
    """Shown instead of a count for a prompt past the prompt limits (it is not parsed)."""
    return f'<span title="{html.escape(reason)}">over limit</span>'


def add_token_counter(studio: StudioView, box: gr.Textbox, elem_id: str) -> gr.HTML:
    """An HTML counter after ``box`` (both inside a ``.sd-prompt-wrap`` column), updated on change."""
    counter = gr.HTML(counter_html(0, 75), elem_id=elem_id, elem_classes=["sd-token-counter"], js_on_load=None)

    def count(text: str | None) -> str:
        # The prompt limits first: the prompt parser takes minutes and GBs on an unbounded text
        # (32 KB of "[a:" took 36 s), and this runs on every change of the box.
        try:
            limits.check_text("prompt", text or "", limits.Limits.from_options(studio.options.snapshot()))
        except limits.LimitExceeded as e:
            return over_limit_html(str(e))
        try:
            used, limit = studio.count_tokens(text or "")
        except Exception as e:  # a counter must never break the page
            log.warning("token count failed: %s", e)
            return counter_html(0, 75)
        return counter_html(used, limit)

    # always_last: while a count is running, further keystrokes collapse into one more call.
    box.change(count, inputs=box, outputs=counter, trigger_mode="always_last", api_visibility="private",
               queue=False, show_progress="hidden")
    return counter
