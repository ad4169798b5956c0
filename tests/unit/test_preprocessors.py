"""ControlNet preprocessors: the extension's module table, the weight-free maps, annotator files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from webui.control.preprocessors import PreprocessorError, Preprocessors


@pytest.fixture
def pre(tmp_path: Path) -> Preprocessors:
    return Preprocessors(tmp_path / "annotators")


def rectangle(size: int = 64) -> Image.Image:
    image = Image.new("RGB", (size, size), "black")
    ImageDraw.Draw(image).rectangle([16, 16, 47, 47], fill="white")
    return image


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_canny_finds_the_edges_of_a_drawn_rectangle(pre):
    edges = pixels(pre.run("canny", rectangle(), 64, 100, 200))[:, :, 0]
    assert edges.shape == (64, 64)
    ring = np.zeros((64, 64), bool)
    ring[14:50, 14:50] = True
    ring[18:46, 18:46] = False  # a band of ±2 px around the rectangle's border
    assert edges[~ring].max() == 0  # nothing in the middle, nothing far outside
    for side in (edges[14:18, 20:44], edges[46:50, 20:44], edges[20:44, 14:18], edges[20:44, 46:50]):
        assert (side.max(axis=0 if side.shape[0] < side.shape[1] else 1) == 255).all()  # every border line


def test_canny_uses_its_thresholds_and_the_processor_resolution(pre):
    faint = Image.new("RGB", (64, 64), (0, 0, 0))
    ImageDraw.Draw(faint).rectangle([16, 16, 47, 47], fill=(20, 20, 20))
    assert pixels(pre.run("canny", faint, 64, 100, 200)).max() == 0  # a weak edge under the thresholds
    assert pixels(pre.run("canny", faint, 64, 10, 20)).max() == 255
    assert pre.run("canny", Image.new("RGB", (96, 64)), 128, -1, -1).size == (192, 128)  # short side = res


def test_invert_threshold_and_color_grid(pre):
    drawing = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(drawing).line([(0, 32), (63, 32)], fill="black", width=3)
    inverted = pixels(pre.run("invert (from white bg & black line)", drawing))
    assert (inverted == 255 - pixels(drawing)).all()

    ramp = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8) * 4, (64, 1)), "L")
    binary = pixels(pre.run("threshold", ramp, 64, 100))[:, :, 0]
    assert set(np.unique(binary)) == {0, 255}
    assert (binary[:, :24] == 0).all() and (binary[:, 27:] == 255).all()  # 4·25 = 100: the cut

    quarters = Image.new("RGB", (128, 128))
    draw = ImageDraw.Draw(quarters)
    for (x, y), colour in zip(((0, 0), (64, 0), (0, 64), (64, 64)), ("red", "lime", "blue", "yellow")):
        draw.rectangle([x, y, x + 63, y + 63], fill=colour)
    noisy = pixels(quarters).astype(np.int16) + np.random.default_rng(0).integers(-40, 40, (128, 128, 3))
    grid = pixels(pre.run("t2ia_color_grid", Image.fromarray(noisy.clip(0, 255).astype(np.uint8)), 128))
    assert grid.shape == (128, 128, 3)
    for x, y in ((0, 0), (64, 0), (0, 64), (64, 64)):
        block = grid[y:y + 64, x:x + 64].reshape(-1, 3)
        assert (block == block[0]).all()  # one colour per 64-px cell
    assert grid[0, 0, 0] > grid[0, 0, 2] and grid[127, 0, 2] > grid[127, 0, 0]  # red cell, blue cell


def test_shuffle_is_deterministic_per_image(pre):
    first = rectangle()
    ImageDraw.Draw(first).ellipse([4, 4, 20, 30], fill="red")
    a = pixels(pre.run("shuffle", first, 64))
    pre.cache.clear()
    b = pixels(pre.run("shuffle", first, 64))
    assert (a == b).all()
    assert not (a == pixels(first)).all()  # it did move content
    assert not (pixels(pre.run("shuffle", rectangle(), 64)) == a).all()


def test_results_are_cached_by_image_and_settings(pre):
    image = rectangle()
    first = pre.run("canny", image, 64, 100, 200)
    assert pre.cache.misses == 1 and pre.cache.hits == 0
    again = pre.run("canny", image.copy(), 64, 100, 200)
    assert pre.cache.hits == 1 and (pixels(first) == pixels(again)).all()
    pre.run("canny", image, 64, 50, 200)  # other thresholds: computed again
    assert pre.cache.misses == 2
    pre.cache.resize(1)
    assert len(pre.cache) == 1


def test_the_extensions_module_names_labels_and_sliders(pre):
    names, labels = pre.modules(), pre.modules(labels=True)
    assert names[0] == "none" and labels[0] == "none"
    assert {"canny", "depth", "openpose_full", "lineart_standard", "inpaint_only", "tile_resample", "shuffle",
            "scribble_xdog", "reference_only", "hed", "pidinet"} <= set(names)
    assert {"depth_midas", "lineart_standard (from white bg & black line)", "softedge_hed",
            "invert (from white bg & black line)", "inpaint_global_harmonious", "t2ia_color_grid"} <= set(labels)
    assert pre.detail()["canny"] == {"model_free": False, "sliders": [
        {"name": "Resolution", "value": 512, "min": 64, "max": 2048, "step": 8},
        {"name": "Low Threshold", "value": 100, "min": 1, "max": 255, "step": 1},
        {"name": "High Threshold", "value": 200, "min": 1, "max": 255, "step": 1}]}
    assert pre.detail()["invert"]["sliders"] == []
    assert pre.detail(labels=True)["reference_only"]["model_free"] is True
    assert pre.find("depth_midas") == "depth" and pre.find("Depth") == "depth" and pre.find("te_hed") == "softedge_teed"
    assert pre.find("no such module") is None
    assert pre.defaults("mlsd") == (512, 0.1, 0.1) and pre.defaults("tile_resample")[1] == 1.0


def test_control_types_filter_modules_and_models(pre):
    types = pre.control_types(["control_v11p_sd15_canny [01234567]", "control_sd15_depth [89abcdef]"])
    assert {"All", "Canny", "Depth", "OpenPose", "Tile", "Inpaint"} <= set(types)
    canny = types["Canny"]
    assert canny["module_list"] == ["none", "canny", "invert (from white bg & black line)"]
    assert canny["model_list"] == ["None", "control_v11p_sd15_canny [01234567]"]
    assert canny["default_option"] == "canny" and canny["default_model"] == "control_v11p_sd15_canny [01234567]"
    assert types["Depth"]["default_option"] == "depth_midas"
    assert types["Scribble"]["model_list"] == ["None"]


def test_a_module_without_its_annotator_file_says_which_file_and_where(pre):
    reason = pre.unavailable("openpose_full")
    assert "body_pose_model.pth" in reason and "facenet.pth" in reason and str(pre.annotators_dir) in reason
    assert pre.detail()["depth"]["unavailable"] == f"needs dpt_hybrid-midas-501f0c75.pt: put it in {pre.annotators_dir}"
    assert "unavailable" not in pre.detail()["canny"]
    with pytest.raises(PreprocessorError, match="needs dpt_hybrid-midas-501f0c75.pt"):
        pre.run("depth_midas", rectangle())
    with pytest.raises(PreprocessorError, match="not supported"):
        pre.run("reference_only", rectangle())
    with pytest.raises(PreprocessorError, match="processor_res"):
        pre.run("canny", rectangle(), 10_000)


def _pidinet_file(path: Path, seed: int = 0) -> None:
    """table5_pidinet.pth as lllyasviel/Annotators ships it: {"state_dict": {"module.<name>": tensor}}."""
    from controlnet_aux.pidi.model import pidinet

    torch.manual_seed(seed)
    net = pidinet()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, path)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_an_annotator_loads_from_the_local_folder_and_unsafe_files_are_refused(pre, tmp_path):
    assert pre.unavailable("softedge_pidinet")
    _pidinet_file(pre.annotators_dir / "pidinet" / "table5_pidinet.pth")  # the extension's sub-folder layout
    assert pre.unavailable("softedge_pidinet") is None
    soft = pre.run("softedge_pidinet", Image.new("RGB", (96, 64), "gray"), 64)
    assert soft.size == (96, 64) and soft.mode == "RGB"

    evil = Preprocessors(tmp_path / "evil")
    (tmp_path / "evil").mkdir()
    torch.save({"state_dict": _RunsCode()}, tmp_path / "evil" / "table5_pidinet.pth")
    with pytest.raises(PreprocessorError, match="refused.*posix.system|refused.*os.system"):
        evil.run("softedge_pidinet", rectangle(), 64)
