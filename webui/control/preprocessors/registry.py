"""The preprocessor ("module") table of sd-webui-controlnet v1.1.455: names, UI labels, sliders, tags.

The names, labels, slider defaults and control-type tags are the extension's interface (its
/controlnet/module_list and /controlnet/control_types answers, and the module strings clients send),
so they are reproduced as data here; what each module does lives in weight_free.py / annotators.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Slider:
    """One slider as module_detail lists it (``name`` is the UI label)."""

    name: str
    value: float
    min: float
    max: float
    step: float = 0.01

    def as_json(self) -> dict:
        return {"name": self.name, "value": self.value, "min": self.min, "max": self.max, "step": self.step}


RESOLUTION = Slider("Resolution", 512, 64, 2048, 8)


@dataclass(frozen=True)
class Module:
    name: str  # what module_list returns and the API's "module" takes
    label: str  # what the UI shows (also accepted as "module")
    tags: tuple[str, ...] = ()
    priority: int = 0  # the extension sorts by priority, then label, both descending
    resolution: Slider | None = RESOLUTION  # None: no resolution slider
    slider_1: Slider | None = None
    slider_2: Slider | None = None
    model_free: bool = False  # works without a ControlNet model (reference_*, revision_*)
    mask: bool = False  # needs the unit's mask (inpaint modules)

    @property
    def sliders(self) -> list[Slider]:
        return [s for s in (self.resolution, self.slider_1, self.slider_2) if s is not None]

    def defaults(self) -> tuple[int, float, float]:
        """(processor_res, threshold_a, threshold_b) the extension uses for -1."""
        res = int(self.resolution.value) if self.resolution is not None else 512
        a = self.slider_1.value if self.slider_1 is not None else 0.5
        b = self.slider_2.value if self.slider_2 is not None else 0.5
        return res, float(a), float(b)


def _m(name: str, label: str | None = None, tags: tuple[str, ...] = (), priority: int = 0, **kw) -> Module:
    return Module(name=name, label=label or name, tags=tags, priority=priority, **kw)


_S = Slider
_STYLE = _S("Style Fidelity (only for Balanced mode)", 0.5, 0.0, 1.0)
_NOISE_AUG = _S("Noise Augmentation", 0.0, 0.0, 1.0)
_GAMMA = _S("Gamma Correction", 1.0, 0.1, 2.0, 0.001)
_VARIATION = _S("Variation", 8.0, 3.0, 32.0, 1.0)
_SAFE_STEPS = _S("Safe Steps", 2, 0, 10, 1)
_DEPTH_CUT = (_S("Remove Near %", 0, 0, 100, 0.1), _S("Remove Background %", 0, 0, 100, 0.1))
OPENPOSE, DEPTH, LINEART, SOFTEDGE, SCRIBBLE = ("OpenPose",), ("Depth",), ("Lineart",), ("SoftEdge",), ("Scribble", "SparseCtrl")

# Every module of v1.1.455, weight-free or not, supported here or not: the names are the contract.
MODULES: tuple[Module, ...] = (
    _m("none", tags=("InstructP2P",), priority=10),
    _m("canny", tags=("Canny",), priority=100,
       slider_1=_S("Low Threshold", 100, 1, 255, 1), slider_2=_S("High Threshold", 200, 1, 255, 1)),
    _m("invert", "invert (from white bg & black line)", ("Canny", "Lineart", "Scribble", "MLSD"), 20,
       resolution=None),
    _m("blur_gaussian", tags=("Tile",), slider_1=_S("Sigma", 9.0, 0.01, 64.0)),
    _m("scribble_xdog", tags=SCRIBBLE, slider_1=_S("XDoG Threshold", 32, 1, 64)),
    _m("shuffle", tags=("Shuffle",), resolution=None),
    _m("inpaint", "inpaint_global_harmonious", ("Inpaint",), resolution=None, mask=True),
    _m("inpaint_only", tags=("Inpaint",), priority=100, resolution=None, mask=True),
    _m("inpaint_only+lama", tags=("Inpaint",), resolution=None, mask=True),
    _m("softedge_teed", tags=SOFTEDGE, slider_1=_SAFE_STEPS),
    _m("softedge_anyline", tags=SOFTEDGE, resolution=_S("Resolution", 1280, 64, 2048, 8), slider_1=_SAFE_STEPS),
    _m("facexlib", resolution=None),
    _m("ip-adapter_pulid", tags=("IP-Adapter",), resolution=None),
    _m("ip-adapter-auto", tags=("IP-Adapter",), priority=1000),
    _m("normal_dsine", tags=("NormalMap",), slider_1=_S("Fov", 60, 0, 360, 0.1), slider_2=_S("Iterations", 5, 1, 20, 1)),
    _m("mobile_sam", tags=("Segmentation",)),
    # The extension's "legacy" table: these always report the default Resolution slider.
    _m("animal_openpose", tags=OPENPOSE),
    _m("densepose", "densepose (pruple bg & purple torso)", OPENPOSE),
    _m("densepose_parula", "densepose_parula (black bg & blue torso)", OPENPOSE),
    _m("depth_anything", tags=DEPTH),
    _m("depth_anything_v2", tags=DEPTH),
    _m("depth_hand_refiner", tags=DEPTH),
    _m("depth_leres", tags=DEPTH, slider_1=_DEPTH_CUT[0], slider_2=_DEPTH_CUT[1]),
    _m("depth_leres++", tags=DEPTH, slider_1=_DEPTH_CUT[0], slider_2=_DEPTH_CUT[1]),
    _m("depth", "depth_midas", DEPTH, 100),
    _m("depth_zoe", tags=DEPTH),
    _m("dw_openpose_full", tags=OPENPOSE),
    _m("instant_id_face_embedding", tags=("Instant-ID",)),
    _m("instant_id_face_keypoints", tags=("Instant-ID",)),
    _m("ip-adapter_clip_sd15", "ip-adapter_clip_h", ("IP-Adapter",), 100),
    _m("ip-adapter_clip_sdxl", "ip-adapter_clip_g", ("IP-Adapter",)),
    _m("ip-adapter_clip_sdxl_plus_vith", tags=("IP-Adapter",)),
    _m("ip-adapter_face_id", tags=("IP-Adapter",)),
    _m("ip-adapter_face_id_plus", tags=("IP-Adapter",)),
    _m("lineart_anime", tags=LINEART),
    _m("lineart_anime_denoise", tags=LINEART),
    _m("lineart_coarse", tags=LINEART),
    _m("lineart", "lineart_realistic", LINEART),
    _m("lineart_standard", "lineart_standard (from white bg & black line)", LINEART, 100),
    _m("mediapipe_face", slider_1=_S("Max Faces", 1, 1, 10, 1), slider_2=_S("Min Face Confidence", 0.5, 0.01, 1.0)),
    _m("mlsd", tags=("MLSD",), priority=100, slider_1=_S("MLSD Value Threshold", 0.1, 0.01, 2.0),
       slider_2=_S("MLSD Distance Threshold", 0.1, 0.01, 20.0)),
    _m("normal_bae", tags=("NormalMap",), priority=100),
    _m("normal_map", "normal_midas", ("NormalMap",), slider_1=_S("Normal Background Threshold", 0.4, 0.0, 1.0)),
    _m("openpose", tags=OPENPOSE),
    _m("openpose_face", tags=OPENPOSE),
    _m("openpose_faceonly", tags=OPENPOSE),
    _m("openpose_full", tags=OPENPOSE, priority=100),
    _m("openpose_hand", tags=OPENPOSE),
    _m("recolor_intensity", tags=("Recolor",), slider_1=_GAMMA),
    _m("recolor_luminance", tags=("Recolor",), priority=100, slider_1=_GAMMA),
    _m("reference_adain", tags=("Reference",), slider_1=_STYLE, model_free=True),
    _m("reference_adain+attn", tags=("Reference",), slider_1=_STYLE, model_free=True),
    _m("reference_only", tags=("Reference",), priority=100, slider_1=_STYLE, model_free=True),
    _m("revision_clipvision", tags=("Revision",), priority=100, slider_1=_NOISE_AUG, model_free=True),
    _m("revision_ignore_prompt", tags=("Revision",), slider_1=_NOISE_AUG, model_free=True),
    _m("scribble_hed", tags=SCRIBBLE),
    _m("pidinet_scribble", "scribble_pidinet", SCRIBBLE, 100),
    _m("anime_face_segment", "seg_anime_face", ("Segmentation",)),
    _m("oneformer_ade20k", "seg_ofade20k", ("Segmentation",), 100),
    _m("oneformer_coco", "seg_ofcoco", ("Segmentation",)),
    _m("segmentation", "seg_ufade20k", ("Segmentation",)),
    _m("hed", "softedge_hed", SOFTEDGE),
    _m("hed_safe", "softedge_hedsafe", SOFTEDGE),
    _m("pidinet", "softedge_pidinet", SOFTEDGE, 100),
    _m("pidinet_safe", "softedge_pidisafe", SOFTEDGE),
    _m("color", "t2ia_color_grid", ("T2I-Adapter",)),
    _m("pidinet_sketch", "t2ia_sketch_pidi", ("T2I-Adapter",)),
    _m("clip_vision", "t2ia_style_clipvision", ("T2I-Adapter",)),
    _m("threshold", slider_1=_S("Binarization Threshold", 127, 0, 255)),
    _m("tile_colorfix", tags=("Tile",), slider_1=_VARIATION),
    _m("tile_colorfix+sharp", tags=("Tile",), slider_1=_VARIATION, slider_2=_S("Sharpness", 1.0, 0.0, 2.0)),
    _m("tile_resample", tags=("Tile",), priority=100, slider_1=_S("Down Sampling Rate", 1.0, 1.0, 8.0)),
)

BY_NAME: dict[str, Module] = {m.name: m for m in MODULES}
BY_LABEL: dict[str, Module] = {m.label: m for m in MODULES}
# Names older extension versions used for modules renamed since (their global_state aliases).
OLD_NAMES = {"te_hed": "softedge_teed"}


def sorted_modules() -> list[Module]:
    """The extension's order: "none" first, then by priority and label, both descending."""
    rest = [m for m in MODULES if m.name != "none"]
    rest.sort(key=lambda m: str(m.priority).zfill(8) + m.label, reverse=True)
    return [BY_NAME["none"], *rest]


def lookup(name_or_label: str) -> Module | None:
    """A module by label, name or old name (exact first, then case-insensitive)."""
    key = (name_or_label or "").strip()
    found = BY_LABEL.get(key) or BY_NAME.get(key) or BY_NAME.get(OLD_NAMES.get(key, ""))
    if found is None:
        lowered = key.lower()
        for m in MODULES:
            if lowered in (m.name.lower(), m.label.lower()):
                return m
    return found


def control_types() -> list[str]:
    """"All" and every tag, sorted (the extension's Control Type radio)."""
    return ["All", *sorted({t for m in MODULES for t in m.tags})]


def modules_of_type(tag: str) -> list[Module]:
    ordered = sorted_modules()
    if tag == "All":
        return ordered
    return [m for m in ordered if tag in m.tags or m.name == "none"]


def default_module(tag: str) -> Module:
    """The type's first module after "none" (the extension's default option)."""
    found = modules_of_type(tag)
    return found[0] if len(found) == 1 else found[1]


_TAG_ALIASES = {
    "instructp2p": ("ip2p",), "segmentation": ("seg",), "normalmap": ("normal",),
    "t2i-adapter": ("t2i_adapter", "t2iadapter", "t2ia"), "ip-adapter": ("ip_adapter", "ipadapter"),
    "openpose": ("openpose", "densepose"), "instant-id": ("instant_id", "instantid"),
    "scribble": ("sketch",), "tile": ("blur",),
}
_UNION_TAGS = {"openpose", "depth", "softedge", "scribble", "canny", "lineart", "mlsd", "normalmap",
               "segmentation", "inpaint", "tile"}


def model_keywords(tag: str) -> set[str]:
    """Substrings that put a ControlNet model in a control type's model list (the extension's filter)."""
    lowered = tag.lower()
    words = {lowered, *_TAG_ALIASES.get(lowered, ())}
    if lowered in _UNION_TAGS:
        words.add("union")
    return words


@dataclass(frozen=True)
class TypeChoice:
    modules: list[str] = field(default_factory=list)  # labels, as the extension lists them
    models: list[str] = field(default_factory=list)
    default_module: str = "none"
    default_model: str = "None"


def choose(tag: str, model_titles: list[str]) -> TypeChoice:
    """One entry of /controlnet/control_types: modules and models of a type, and their defaults."""
    if tag == "All":
        return TypeChoice([m.label for m in sorted_modules()], list(model_titles), "none", "None")
    words = model_keywords(tag)
    models = [t for t in model_titles if t.lower() == "none" or any(w in t.lower() for w in words)]
    default_model = "None"
    candidates = [t for t in models if t.lower() != "none"]
    if candidates:
        default_model = next((t for t in candidates if "11" in t.split("[")[0]), candidates[0])
    return TypeChoice([m.label for m in modules_of_type(tag)], models, default_module(tag).label, default_model)
