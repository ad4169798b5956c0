"""The extra networks panel (🎴): tabs of cards for checkpoints, embeddings, LoRAs, hypernetworks.

Cards are one HTML block per tab, built only when the panel opens, a search changes or a refresh
is asked for, and capped at ``CARD_LIMIT`` matches, so folders with thousands of files stay fast.
Clicking a card does what A1111's does: the prompt text is appended at the end of the prompt,
after a space (A1111's separator), and clicking a card whose text is already there removes it;
an embedding goes to the negative prompt when that box was the last one focused. A checkpoint
card switches the model (the top bar wires ``checkpoint_cards.click``; see ``webui.ui``).

Previews are served by ``preview_router``: the client names a network (kind + name), the server
finds its preview through the catalog; no path ever comes from the client.
"""

from __future__ import annotations

import html
import mimetypes
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from webui.ui.network_cards import PREVIEW_SUFFIXES, Card, cards, checkpoint_preview
from webui.ui.protocol import StudioView

CARD_LIMIT = 200
_BADGES = {"refused": "⛔", "incompatible": "🚫"}
PREVIEW_ROUTE = "/extra-networks/preview"
# (tab key, label, icon shown on cards without a preview)
TABS = (("checkpoint", "Checkpoints", "🧠"), ("embedding", "Textual Inversion", "🔤"),
        ("lora", "Lora", "🧩"), ("hypernetwork", "Hypernetworks", "🕸️"))

CSS = """
.sd-en-panel { margin-top: 0.5em; }
.sd-en-bar { align-items: center; gap: 0.5em; }
.sd-en-grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(9.5em, 1fr)); gap: 0.6em;
  max-height: 34em; overflow-y: auto; padding: 0.2em; }
.sd-en-card { position: relative; aspect-ratio: 3 / 4; border-radius: 8px; overflow: hidden; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-secondary);
  transition: transform 0.08s ease, box-shadow 0.08s ease; }
.sd-en-card:hover { transform: translateY(-2px); box-shadow: 0 3px 10px rgba(0, 0, 0, 0.25);
  border-color: var(--color-accent); }
.sd-en-card.active { outline: 2px solid var(--color-accent); }
.sd-en-card img { width: 100%; height: 100%; object-fit: cover; display: block; }
.sd-en-noimg { width: 100%; height: 100%; display: flex; align-items: center; justify-content: center;
  font-size: 2.6em; opacity: 0.45;
  background: linear-gradient(135deg, var(--background-fill-secondary), var(--border-color-primary)); }
.sd-en-name { position: absolute; left: 0; right: 0; bottom: 0; padding: 0.35em 0.5em; font-size: 0.85em;
  color: #fff; background: linear-gradient(transparent, rgba(0, 0, 0, 0.78) 35%); overflow-wrap: anywhere;
  text-shadow: 0 1px 2px #000; display: -webkit-box; -webkit-line-clamp: 3; -webkit-box-orient: vertical;
  overflow: hidden; }
.sd-en-empty, .sd-en-more { padding: 0.6em 0.2em; opacity: 0.75; font-size: 0.9em; }
.sd-en-card.incompatible { opacity: 0.45; filter: grayscale(0.7); }
.sd-en-card.refused { opacity: 0.6; cursor: not-allowed; border-color: #e03c3c; }
.sd-en-badge { position: absolute; top: 0.3em; right: 0.4em; font-size: 1.2em; text-shadow: 0 1px 2px #000; }
"""

# Runs once per tab's HTML block: card clicks edit the prompt boxes in place (and dispatch "input"
# so Gradio sees the new value); a checkpoint card is sent to the server as a click event.
CARDS_JS = """
if (!window.sdExtraNetworksFocus) {
  window.sdExtraNetworksFocus = true;
  window.sdActivePrompt = {};  // tab → 'prompt' | 'neg', the prompt box focused last
  document.addEventListener('focusin', (e) => {
    const box = e.target.closest('[id$="_neg_prompt"], [id$="_prompt"]');
    if (!box) return;
    const neg = box.id.endsWith('_neg_prompt');
    window.sdActivePrompt[box.id.replace(neg ? /_neg_prompt$/ : /_prompt$/, '')] = neg ? 'neg' : 'prompt';
  });
}
element.addEventListener('click', (e) => {
  const card = e.target.closest('.sd-en-card');
  if (!card || card.classList.contains('refused')) return;
  if (card.dataset.kind === 'checkpoint') { trigger('click', {title: card.dataset.title}); return; }
  const panel = element.closest('[id$="_extra_networks_panel"]');
  const tab = panel ? panel.id.replace(/_extra_networks_panel$/, '') : 'txt2img';
  const neg = card.dataset.kind === 'embedding' && window.sdActivePrompt[tab] === 'neg';
  const box = document.querySelector(neg ? `#${tab}_neg_prompt textarea` : `#${tab}_prompt textarea`);
  if (!box) return;
  const text = card.dataset.text;
  const at = box.value.indexOf(text);
  if (at >= 0) {
    const before = box.value.slice(0, at).replace(/ $/, '');
    box.value = before + box.value.slice(at + text.length);
  } else {
    box.value = box.value + (box.value.trim() ? ' ' : '') + text;
  }
  box.dispatchEvent(new Event('input', {bubbles: true}));
});
"""


@dataclass
class ExtraNetworksPanel:
    checkpoint_cards: gr.HTML  # .click carries ``evt.title`` of the checkpoint card clicked


def _preview_url(kind: str, name: str, path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        stamp = int(path.stat().st_mtime)
    except OSError:
        return None
    query = urllib.parse.urlencode({"kind": kind, "name": name, "t": stamp})
    return f"{PREVIEW_ROUTE}?{query}"


def _with_preview(studio: StudioView, card: Card) -> Card:
    if card.kind == "checkpoint":
        found = studio.catalog.find_checkpoint(card.title)
        path = checkpoint_preview(found.path) if found is not None else None
        card.preview = _preview_url("checkpoint", card.title, path)
    else:
        found = studio.networks.find(card.kind, card.name)
        card.preview = _preview_url(card.kind, card.name, found.preview if found is not None else None)
    return card


def render(studio: StudioView, kind: str, search: str = "") -> str:
    """The HTML grid of one tab: the first ``CARD_LIMIT`` cards matching every word of ``search``."""
    words = (search or "").lower().split()
    matching = [c for c in cards(studio, kind) if all(w in c.search for w in words) and not c.hidden]
    icon = next(i for k, _, i in TABS if k == kind)
    if not matching:
        what = "matches the search" if words else "found: add files to its folder and press ↻"
        return f'<div class="sd-en-empty">Nothing {html.escape(what)}.</div>'
    parts = ['<div class="sd-en-grid">']
    for card in matching[:CARD_LIMIT]:
        _with_preview(studio, card)
        image = (f'<img loading="lazy" alt="" src="{html.escape(card.preview)}">' if card.preview
                 else f'<div class="sd-en-noimg">{icon}</div>')
        classes = " ".join(["sd-en-card", *(["active"] if card.active else []), *([card.state] if card.state else [])])
        badge = f'<div class="sd-en-badge">{_BADGES[card.state]}</div>' if card.state else ""
        hover = card.title or card.name
        if card.note:
            hover = f"{hover}\n{card.note}"
        parts.append(
            f'<div class="{classes}" data-kind="{card.kind}" '
            f'data-name="{html.escape(card.name)}" data-text="{html.escape(card.text)}" '
            f'data-title="{html.escape(card.title)}" title="{html.escape(hover)}">'
            f'{image}{badge}<div class="sd-en-name">{_breakable(card.name)}</div></div>'
        )
    parts.append("</div>")
    if len(matching) > CARD_LIMIT:
        parts.append(f'<div class="sd-en-more">{len(matching) - CARD_LIMIT} more — refine the search.</div>')
    return "".join(parts)


def _breakable(name: str) -> str:
    """Escaped, with line-break chances after _ - . (long file names wrap at their separators)."""
    escaped = html.escape(name)
    for sep in ("_", "-", "."):
        escaped = escaped.replace(sep, sep + "<wbr>")
    return escaped


def refresh(studio: StudioView, kind: str) -> None:
    if kind == "checkpoint":
        studio.refresh_checkpoints()
    else:
        studio.networks.refresh(kind)


def build_extra_networks(studio: StudioView, toggle: gr.Button, tab: str = "txt2img") -> ExtraNetworksPanel:
    """The (hidden) panel; ``toggle`` opens and closes it. Call where the panel should appear."""
    private: dict[str, Any] = {"api_visibility": "private", "queue": False}
    grids: dict[str, gr.HTML] = {}
    searches: dict[str, gr.Textbox] = {}
    with gr.Column(visible=False, elem_id=f"{tab}_extra_networks_panel", elem_classes=["sd-en-panel"]) as panel:
        with gr.Tabs(elem_id=f"{tab}_extra_tabs"):
            for kind, label, _icon in TABS:
                with gr.Tab(label, id=f"{tab}_extra_{kind}", elem_id=f"{tab}_extra_tab_{kind}"):
                    with gr.Row(elem_classes=["sd-en-bar"]):
                        search = gr.Textbox(show_label=False, placeholder="Search...", scale=1, container=False,
                                            elem_id=f"{tab}_extra_{kind}_search")
                        button = gr.Button("\u21bb", elem_classes=["tool-button"], scale=0, min_width=40,  # ↻
                                           elem_id=f"{tab}_extra_{kind}_refresh")
                    grid = gr.HTML("", elem_id=f"{tab}_extra_{kind}_cards", js_on_load=CARDS_JS)
                grids[kind], searches[kind] = grid, search
                search.change(lambda text, k=kind: render(studio, k, text), inputs=search, outputs=grid,
                             trigger_mode="always_last", show_progress="hidden", **private)
                button.click(lambda text, k=kind: (refresh(studio, k), render(studio, k, text))[1], inputs=search,
                             outputs=grid, show_progress="hidden", **private)
    opened = gr.State(False)

    def flip(is_open: bool, *texts: str) -> tuple:
        if is_open:
            return (False, gr.update(visible=False), *(gr.skip() for _ in TABS))
        return (True, gr.update(visible=True), *(render(studio, k, t) for (k, _, _), t in zip(TABS, texts)))

    toggle.click(flip, inputs=[opened, *searches.values()], outputs=[opened, panel, *grids.values()], **private)
    return ExtraNetworksPanel(checkpoint_cards=grids["checkpoint"])


def preview_router(studio: StudioView) -> APIRouter:
    """GET /extra-networks/preview?kind=lora&name=x: the preview image found through the catalog."""
    router = APIRouter(include_in_schema=False)

    @router.get(PREVIEW_ROUTE)
    def preview(kind: str = Query(...), name: str = Query(...)):
        path: Path | None = None
        if kind == "checkpoint":
            found = studio.catalog.find_checkpoint(name)
            path = checkpoint_preview(found.path) if found is not None else None
        elif kind in ("embedding", "lora", "hypernetwork"):
            found = studio.networks.find(kind, name)
            if found is not None and found.preview is not None and _inside(found.preview, studio.networks.folders[kind]):
                path = found.preview
        if path is None or path.suffix.lower() not in PREVIEW_SUFFIXES or not path.is_file():
            raise HTTPException(status_code=404, detail="no preview")
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"Cache-Control": "max-age=3600"})

    return router


def _inside(path: Path, folders: list[Path]) -> bool:
    target = os.path.abspath(path)
    return any(os.path.commonpath([target, os.path.abspath(f)]) == os.path.abspath(f) for f in folders)
