"""What the ControlNet accordion asks of the studio: lists, control types, detection, the unit count.

The studio's ``controlnets`` (model files) and ``preprocessors`` services, reached the way built-in
scripts reach the studio (``context.plugins().studio``). Without a running studio (a script set
laid out for the API's defaults in a test or a tool) the lists hold only "none" / "None".
The preprocessor dropdown shows the extension's labels (``depth_midas`` for ``depth``), as the
extension does; the API and the infotext take either.
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from webui.control import hints, ui_values
from webui.control.preprocessors import registry
from webui.control.units import ResizeMode
from webui.plugins import context

UNIT_COUNT_KEY = "control_net_unit_count"


class Services:
    """The studio's ControlNet services, with the fallbacks above."""

    def __init__(self, studio: Any):
        self.studio = studio
        self.controlnets = getattr(studio, "controlnets", None)
        self.preprocessors = getattr(studio, "preprocessors", None)

    @classmethod
    def current(cls) -> Services:
        return cls(context.current_studio())

    def unit_count(self) -> int:
        """The setting ``control_net_unit_count`` (read when the page is built, as the extension does)."""
        options = getattr(self.studio, "options", None)
        try:
            count = int(options.get(UNIT_COUNT_KEY)) if options is not None else ui_values.DEFAULT_UNIT_COUNT
        except (AttributeError, KeyError, TypeError, ValueError):
            count = ui_values.DEFAULT_UNIT_COUNT
        return max(1, min(ui_values.MAX_UNIT_COUNT, count))

    # --- lists ---------------------------------------------------------------------------------

    def model_titles(self) -> list[str]:
        titles = list(self.controlnets.titles()) if self.controlnets is not None else []
        return titles if ui_values.NO_MODEL in titles else [ui_values.NO_MODEL, *titles]

    def refresh_models(self) -> None:
        if self.controlnets is not None:
            self.controlnets.refresh()

    def type_names(self) -> list[str]:
        return registry.control_types()

    def filtered(self, kind: str) -> tuple[list[str], list[str], str, str]:
        """(preprocessor labels, model titles, default label, default model) of a Control Type."""
        choice = registry.choose(kind if kind in registry.control_types() else ui_values.ALL_TYPES,
                                 self.model_titles())
        return choice.modules, choice.models, choice.default_module, choice.default_model

    def detail(self, module: str | None) -> dict[str, Any] | None:
        """The module's ``module_detail`` entry (sliders), by name or label."""
        found = registry.lookup(module or "")
        if found is None:
            return None
        return {"model_free": found.model_free, "sliders": [s.as_json() for s in found.sliders]}

    def unavailable(self, module: str | None) -> str:
        """Why a module cannot run here (a missing annotator file and where to put it), or ""."""
        if self.preprocessors is None or not module:
            return ""
        name = self.preprocessors.find(module)
        reason = self.preprocessors.unavailable(name or module)
        return f"⚠️ {module}: {reason}" if reason else ""

    def find_module(self, name: str | None) -> str | None:
        """The dropdown label of a module given by name or label, or None when unknown."""
        found = registry.lookup(name or "")
        return found.label if found is not None else None

    def find_model(self, query: str | None) -> str | None:
        """The title of a model given by title, stem or hash ("None" for none), or None when not here."""
        if not query or query == ui_values.NO_MODEL:
            return ui_values.NO_MODEL
        found = self.controlnets.find(query) if self.controlnets is not None else None
        return found.title if found is not None else None

    def _max_pixels(self) -> int | None:
        options = getattr(self.studio, "options", None)
        try:
            return int(options.get("limit_pixels_per_image")) if options is not None else None
        except (AttributeError, KeyError, TypeError, ValueError):
            return None

    # --- preview ---------------------------------------------------------------------------------

    def detect(self, module: str, image: Image.Image, mask: Image.Image | None, res: float, a: float, b: float,
               pixel_perfect: bool, resize_mode: str, target: tuple[float | None, float | None]) -> Image.Image:
        """The detected map of ``image`` (only the preprocessor runs). ValueError with a sentence."""
        if self.preprocessors is None:
            raise ValueError("the preprocessors are not running (no studio)")
        name = self.preprocessors.find(module or "")
        if name is None:
            raise ValueError(f"unknown preprocessor {module!r}")
        missing = self.preprocessors.unavailable(name)
        if missing:
            raise ValueError(f"{module} {missing}")
        limit = self._max_pixels()
        if limit and image.width * image.height > limit:  # as a job would refuse it
            raise ValueError(f"the image has {image.width}x{image.height} pixels; the limit "
                             f"(limit_pixels_per_image) is {limit}")
        resolution, slider_a, slider_b = ui_values.sliders(self.detail(name))
        width, height = target
        if pixel_perfect and width and height:
            res = hints.pixel_perfect_resolution(image.size, int(width), int(height), ResizeMode(resize_mode))
        picture = image.convert("RGB")
        if mask is not None and self.preprocessors.needs_mask(name):
            picture = picture.copy()  # inpaint modules read the mask as the alpha channel
            picture.putalpha(mask.convert("L").resize(picture.size))
        return self.preprocessors.run(name, picture, int(res) if resolution.visible else -1,
                                      float(a) if slider_a.visible else -1, float(b) if slider_b.visible else -1)
