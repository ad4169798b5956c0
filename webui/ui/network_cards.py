"""The cards of the extra networks panel: what each file is, and whether it fits the loaded model.

A card carries a state shown on it: ``refused`` (⛔, the file could not be read safely; the reason
is in its tooltip) or ``incompatible`` (🚫, made for another Stable Diffusion version than the
loaded model's: dimmed, or hidden when the ``lora_show_all`` setting is off). Networks of unknown
version are hidden only for the versions listed in ``lora_hide_unknown_for_versions``, as A1111.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webui.networks.catalog import NetworkFile
from webui.networks.versions import embedding_file_version, lora_version, model_version
from webui.ui.protocol import StudioView

PREVIEW_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


@dataclass
class Card:
    kind: str
    name: str
    text: str  # what a click adds to the prompt ("" for checkpoints)
    search: str  # lower-case text the search box matches
    preview: str | None = None  # URL
    title: str = ""  # hover text; the checkpoint title for checkpoint cards
    active: bool = False
    state: str = ""  # "", "refused" or "incompatible"
    note: str = ""  # why, for the tooltip
    hidden: bool = False


def prompt_text(kind: str, name: str) -> str:
    if kind == "lora":
        return f"<lora:{name}:1>"
    if kind == "hypernetwork":
        return f"<hypernet:{name}:1>"
    return name  # an embedding is used by its name


def checkpoint_preview(path: Path) -> Path | None:
    """``<stem>.<ext>`` or ``<stem>.preview.<ext>`` beside a checkpoint, as A1111 looks for them."""
    stem = path.with_suffix("")
    for pattern in ("{}{}", "{}.preview{}"):
        for ext in PREVIEW_SUFFIXES:
            candidate = Path(pattern.format(stem, ext))
            if candidate.is_file():
                return candidate
    return None


def _version(file: NetworkFile) -> str | None:
    if file.kind == "lora":
        return lora_version(file.path)
    if file.kind == "embedding":
        return embedding_file_version(file.path)
    return None  # hypernetworks: telling would mean reading the whole (large) file


def _network_card(studio: StudioView, file: NetworkFile, loaded: str | None) -> Card:
    card = Card(file.kind, file.name, prompt_text(file.kind, file.name),
                f"{file.name} {file.path.as_posix()}".lower(), None, str(file.name))
    refused = studio.networks.refused.reason(file.path)
    if refused:
        card.state, card.note = "refused", f"Refused: {refused}"
        return card
    if loaded is None:
        return card
    made_for = _version(file)
    if made_for is not None and made_for != loaded:
        card.state, card.note = "incompatible", f"Made for {made_for}; the loaded model is {loaded}"
        card.hidden = not studio.options.get("lora_show_all")
    elif made_for is None and loaded in (studio.options.get("lora_hide_unknown_for_versions") or ()):
        card.hidden = True
    return card


def cards(studio: StudioView, kind: str) -> list[Card]:
    if kind == "checkpoint":
        active = studio.manager.selected
        active_path = active.file.path if active is not None else None
        found = []
        for f in studio.catalog.checkpoints:
            card = Card("checkpoint", f.model_name, "", f"{f.name} {f.title}".lower(), None, f.title,
                        f.path == active_path)
            refused = studio.catalog.refused.reason(f.path)
            if refused:
                card.state, card.note = "refused", f"Refused: {refused}"
            found.append(card)
        return found
    active = studio.manager.selected
    loaded = model_version(active.spec.family) if active is not None else None
    return [_network_card(studio, f, loaded) for f in studio.networks.list(kind)]
