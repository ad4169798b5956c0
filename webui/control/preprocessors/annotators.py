"""Modules that need annotator weights: controlnet-aux detectors built from a local folder.

The files carry the names of the lllyasviel/Annotators repository and are read from the annotators
folder (or one folder below it, as the extension's downloads/<module>/ layout has them). Nothing is
ever downloaded. Every file is opened with ``weights_only=True`` first (webui/models/safe_load.py),
so a pickle that asks for code is refused with a sentence before controlnet-aux sees it; the small
networks are then filled from that dict directly, the large ones through controlnet-aux's own
loaders, whose ``torch.load`` is weights-only by default on this torch (refused when the
environment turns that default off).
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from webui.models.safe_load import CheckpointError, read_torch_dict

Detector = Any
Call = Callable[[Detector, np.ndarray, int, float, float], Any]


class AnnotatorError(ValueError):
    """An annotator file that is missing, unsafe or unreadable; the message says what to do."""


@dataclass(frozen=True)
class Annotator:
    files: tuple[str, ...]  # lllyasviel/Annotators names, all needed
    build: Callable[[dict[str, Path]], Detector]  # file name → path, to a detector on the CPU
    call: Call  # (detector, padded RGB image, its short side, slider 1, slider 2) → map


def controlnet_aux():
    """The controlnet_aux package, imported quietly (its timm/jit imports warn on every start)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import controlnet_aux
    return controlnet_aux


def safe_dict(path: Path) -> dict:
    """The file's top-level dict, loaded so that nothing in it can run."""
    try:
        return read_torch_dict(path, "annotator file")
    except CheckpointError as e:
        raise AnnotatorError(str(e)) from None


def _check_torch_default() -> None:
    # controlnet-aux calls torch.load without weights_only; torch >= 2.6 makes that weights-only
    # unless this variable says otherwise.
    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "").strip().lower() in ("1", "true", "yes", "on"):
        raise AnnotatorError("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD is set, so annotator files could run code when "
                             "loaded: unset it to use this preprocessor")


def _strip(state: dict, prefix: str = "module.") -> dict:
    return {k.replace(prefix, "", 1) if k.startswith(prefix) else k: v for k, v in state.items()}


def _fill(net, state: dict, name: str):
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise AnnotatorError(f"{name} does not fit its network ({first}): use the file from lllyasviel/Annotators") from None
    return net.float().eval()


# ---- builders: small networks filled from the safe dict ----

def _hed(paths: dict[str, Path]) -> Detector:
    aux = controlnet_aux()
    from controlnet_aux.hed import ControlNetHED_Apache2

    return aux.HEDdetector(_fill(ControlNetHED_Apache2(), safe_dict(paths["ControlNetHED.pth"]), "ControlNetHED.pth"))


def _pidinet(paths: dict[str, Path]) -> Detector:
    aux = controlnet_aux()
    from controlnet_aux.pidi.model import pidinet

    raw = safe_dict(paths["table5_pidinet.pth"])
    state = raw.get("state_dict", raw) if isinstance(raw.get("state_dict"), dict) else raw
    return aux.PidiNetDetector(_fill(pidinet(), _strip(state), "table5_pidinet.pth"))


def _lineart(name: str, paths: dict[str, Path]) -> Detector:
    aux = controlnet_aux()
    from controlnet_aux.lineart import Generator

    net = _fill(Generator(3, 1, 3), safe_dict(paths[name]), name)
    return aux.LineartDetector(net, net)  # one file per module: the coarse flag picks the same net


def _lineart_anime(paths: dict[str, Path]) -> Detector:
    import torch.nn as nn

    aux = controlnet_aux()
    from controlnet_aux.lineart_anime import UnetGenerator

    norm = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    net = UnetGenerator(3, 1, 8, 64, norm_layer=norm, use_dropout=False)
    return aux.LineartAnimeDetector(_fill(net, _strip(safe_dict(paths["netG.pth"])), "netG.pth"))


def _mlsd(paths: dict[str, Path]) -> Detector:
    aux = controlnet_aux()
    from controlnet_aux.mlsd.models.mbv2_mlsd_large import MobileV2_MLSD_Large

    name = "mlsd_large_512_fp32.pth"
    return aux.MLSDdetector(_fill(MobileV2_MLSD_Large(), safe_dict(paths[name]), name))


# ---- builders: large networks through controlnet-aux's loaders, after the safety check ----

def _checked(paths: dict[str, Path]) -> Path:
    """The folder holding every file (they may sit in different sub-folders), after the checks."""
    _check_torch_default()
    for path in paths.values():
        safe_dict(path)  # refuses code; zip files are memory-mapped, so this reads little
    return Path(os.path.commonpath([str(p.parent) for p in paths.values()]))


def _from_pretrained(class_name: str, **kwargs: str) -> Callable[[dict[str, Path]], Detector]:
    """controlnet-aux's loader, given the folder and each file's path below it (never a repo id)."""
    def build(paths: dict[str, Path]) -> Detector:
        folder = _checked(paths)
        names = {key: paths[file].relative_to(folder).as_posix() for key, file in kwargs.items()}
        try:
            return getattr(controlnet_aux(), class_name).from_pretrained(str(folder), **names)
        except (RuntimeError, KeyError) as e:
            raise AnnotatorError(f"{', '.join(p.name for p in paths.values())} could not be loaded "
                                 f"({str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__})") from None
    return build


def _openpose(paths: dict[str, Path]) -> Detector:
    _checked(paths)
    from controlnet_aux.open_pose import Body, Face, Hand

    aux = controlnet_aux()
    body = Body(str(paths["body_pose_model.pth"]))
    hand = Hand(str(paths["hand_pose_model.pth"])) if "hand_pose_model.pth" in paths else None
    face = Face(str(paths["facenet.pth"])) if "facenet.pth" in paths else None
    return aux.OpenposeDetector(body, hand, face)


def _np(result: Any) -> np.ndarray:
    return np.asarray(result, dtype=np.uint8)


def _sized(detector_call: Callable[..., Any]) -> Call:
    """Run a controlnet-aux detector at the padded image's own size (it then resizes nothing)."""
    def call(detector: Detector, image: np.ndarray, short: int, a: float, b: float) -> np.ndarray:
        return _np(detector_call(detector, image, a, b, detect_resolution=short, image_resolution=short,
                                 output_type="np"))
    return call


def _midas_normal(detector: Detector, image: np.ndarray, short: int, a: float, b: float) -> np.ndarray:
    _, normal = detector(image, bg_th=a, depth_and_normal=True, detect_resolution=short, image_resolution=short,
                         output_type="np")
    return _np(normal)


POSE_FILES = {
    "openpose": ("body_pose_model.pth",),
    "openpose_hand": ("body_pose_model.pth", "hand_pose_model.pth"),
    "openpose_face": ("body_pose_model.pth", "facenet.pth"),
    "openpose_faceonly": ("body_pose_model.pth", "facenet.pth"),
    "openpose_full": ("body_pose_model.pth", "hand_pose_model.pth", "facenet.pth"),
}
_POSE_PARTS = {"openpose": (True, False, False), "openpose_hand": (True, True, False),
               "openpose_face": (True, False, True), "openpose_faceonly": (False, False, True),
               "openpose_full": (True, True, True)}


def _pose_call(name: str) -> Call:
    body, hand, face = _POSE_PARTS[name]
    return _sized(lambda d, img, a, b, **kw: d(img, include_body=body, include_hand=hand, include_face=face, **kw))


def _hed_call(safe: bool, scribble: bool) -> Call:
    return _sized(lambda d, img, a, b, **kw: d(img, safe=safe, scribble=scribble, **kw))


def _pidi_call(safe: bool, scribble: bool, apply_filter: bool = False) -> Call:
    return _sized(lambda d, img, a, b, **kw: d(img, safe=safe, scribble=scribble, apply_filter=apply_filter, **kw))


_plain = _sized(lambda d, img, a, b, **kw: d(img, **kw))
_HED = ("ControlNetHED.pth",)
_PIDI = ("table5_pidinet.pth",)
_MIDAS = ("dpt_hybrid-midas-501f0c75.pt",)
_LERES = ("res101.pth", "latest_net_G.pth")

ANNOTATORS: dict[str, Annotator] = {
    "hed": Annotator(_HED, _hed, _hed_call(False, False)),
    "hed_safe": Annotator(_HED, _hed, _hed_call(True, False)),
    "scribble_hed": Annotator(_HED, _hed, _hed_call(False, True)),
    "pidinet": Annotator(_PIDI, _pidinet, _pidi_call(False, False)),
    "pidinet_safe": Annotator(_PIDI, _pidinet, _pidi_call(True, False)),
    "pidinet_scribble": Annotator(_PIDI, _pidinet, _pidi_call(False, True)),
    "lineart": Annotator(("sk_model.pth",), functools.partial(_lineart, "sk_model.pth"),
                         _sized(lambda d, img, a, b, **kw: d(img, coarse=False, **kw))),
    "lineart_coarse": Annotator(("sk_model2.pth",), functools.partial(_lineart, "sk_model2.pth"),
                                _sized(lambda d, img, a, b, **kw: d(img, coarse=True, **kw))),
    "lineart_anime": Annotator(("netG.pth",), _lineart_anime, _plain),
    "mlsd": Annotator(("mlsd_large_512_fp32.pth",), _mlsd,
                      _sized(lambda d, img, a, b, **kw: d(img, thr_v=a, thr_d=b, **kw))),
    "depth": Annotator(_MIDAS, _from_pretrained("MidasDetector", filename="dpt_hybrid-midas-501f0c75.pt"), _plain),
    "normal_map": Annotator(_MIDAS, _from_pretrained("MidasDetector", filename="dpt_hybrid-midas-501f0c75.pt"),
                            _midas_normal),
    "depth_zoe": Annotator(("ZoeD_M12_N.pt",), _from_pretrained("ZoeDetector", filename="ZoeD_M12_N.pt"), _plain),
    "depth_leres": Annotator(_LERES, _from_pretrained("LeresDetector", filename="res101.pth",
                                                      pix2pix_filename="latest_net_G.pth"),
                             _sized(lambda d, img, a, b, **kw: d(img, thr_a=a, thr_b=b, boost=False, **kw))),
    "depth_leres++": Annotator(_LERES, _from_pretrained("LeresDetector", filename="res101.pth",
                                                        pix2pix_filename="latest_net_G.pth"),
                               _sized(lambda d, img, a, b, **kw: d(img, thr_a=a, thr_b=b, boost=True, **kw))),
    "normal_bae": Annotator(("scannet.pt",), _from_pretrained("NormalBaeDetector", filename="scannet.pt"), _plain),
    "softedge_teed": Annotator(("7_model.pth",), _from_pretrained("TEEDdetector", filename="7_model.pth"),
                               lambda d, img, short, a, b: _np(d(img, detect_resolution=short, safe_steps=int(a),
                                                                  output_type="np"))),
    **{name: Annotator(files, _openpose, _pose_call(name)) for name, files in POSE_FILES.items()},
}


def find_file(folder: Path, name: str) -> Path | None:
    """``name`` in the annotators folder, else in one of its sub-folders (the extension's layout)."""
    direct = folder / name
    if direct.is_file():
        return direct
    if folder.is_dir():
        for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
            if (sub / name).is_file():
                return sub / name
    return None
