"""Segment Anything click-to-mask: shapes → variant, safe loading, a click on an object, mask growth, the API."""

from __future__ import annotations

import base64
import io
import os
import pickle
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from tests.kit.sam import IMG_SIZE, write_tiny_sam
from webui.segment import (
    HOW_TO_ADD,
    Segmenter,
    SegmentError,
    build_sam,
    grow_mask,
    identify_variant,
    list_sam_checkpoints,
    load_sam,
    read_shape,
)

TRAIN_STEPS = 80  # 6-20 s on one core; over seeds 0-4 the scenes below score ≥ 0.86, untrained ≤ 0.49

# (size, rectangle, colour): not the model's 128², so resizing and both paddings are exercised.
SCENES = [((240, 160), (140, 45, 225, 115), (70, 200, 240)), ((120, 200), (15, 110, 95, 185), (230, 60, 50))]


@pytest.fixture(scope="session")
def trained_sam(tmp_path_factory) -> Path:
    return write_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth", train_steps=TRAIN_STEPS)


def picture(size=SCENES[0][0], box=SCENES[0][1], colour=SCENES[0][2]) -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 40, (size[1], size[0], 3)).astype(np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = colour
    return Image.fromarray(pixels)


def share(mask: np.ndarray, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    return float(mask[y0:y1, x0:x1].mean())


# --- shapes → variant --------------------------------------------------------------------------


@pytest.mark.parametrize("variant,heads,global_blocks", [
    ("vit_b", 12, (2, 5, 8, 11)), ("vit_l", 16, (5, 11, 17, 23)), ("vit_h", 16, (7, 15, 23, 31))])
def test_real_layouts_are_recognised_from_shapes_and_rebuilt_exactly(variant, heads, global_blocks):
    from segment_anything import sam_model_registry

    with torch.device("meta"):  # shapes only: no vit_h weights are allocated
        reference = sam_model_registry[variant]().state_dict()
        shape = read_shape(reference)
        rebuilt = build_sam(shape).state_dict()
    assert identify_variant(reference) == variant
    assert (shape.num_heads, shape.global_attn_indexes, shape.window_size, shape.img_size) == (
        heads, global_blocks, 14, 1024)
    assert {k: v.shape for k, v in rebuilt.items()} == {k: v.shape for k, v in reference.items()}


def test_the_file_name_does_not_decide_the_variant(tmp_path):
    path = write_tiny_sam(tmp_path / "sam_vit_h_4b8939.safetensors", fmt="safetensors")
    model = load_sam(path)
    assert model.image_encoder.img_size == IMG_SIZE
    shape = read_shape(model.state_dict())
    assert identify_variant(model.state_dict()) == "custom"
    assert (shape.embed_dim, shape.depth, shape.num_heads, shape.window_size, shape.global_attn_indexes) == (
        64, 2, 2, 4, (1,))


# --- safe loading ------------------------------------------------------------------------------


class RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path, writer):
    marker, path = tmp_path / "ran", tmp_path / "sam_vit_b_01ec64.pth"
    payload = {"image_encoder.pos_embed": RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(SegmentError):
        load_sam(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", ["not a model", "tensors of something else"])
def test_a_file_that_is_not_sam_is_a_segment_error(tmp_path, content):
    path = tmp_path / "other.pth"
    if content == "not a model":
        path.write_text("hello")
    else:
        torch.save({"model.diffusion_model.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(SegmentError, match="not|cannot|unreadable"):
        load_sam(path)


def test_checkpoints_are_listed_by_suffix(tmp_path):
    assert list_sam_checkpoints(tmp_path / "missing") == []
    for name in ("b.pth", "a.safetensors", "c.pt", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in list_sam_checkpoints(tmp_path)] == ["a.safetensors", "b.pth", "c.pt"]
    assert str(tmp_path) in HOW_TO_ADD.format(folder=tmp_path)


# --- a click on an object ----------------------------------------------------------------------


@pytest.mark.parametrize("size,box,colour", SCENES)
def test_a_click_inside_an_object_masks_that_object(trained_sam, size, box, colour):
    x0, y0, x1, y1 = box
    mask = Segmenter("cpu").predict(trained_sam, picture(size, box, colour), [((x0 + x1) / 2, (y0 + y1) / 2, 1)])
    assert mask.mode == "L" and mask.size == size
    assert set(np.unique(np.asarray(mask))) <= {0, 255}
    selected = np.asarray(mask) > 0
    assert share(selected, box) > 0.75, "most of the object is in the mask"
    assert 0.7 < selected.sum() / ((x1 - x0) * (y1 - y0)) < 1.3, "and little else is"


def test_prompts_reach_sam_in_image_pixels_and_the_best_mask_wins(tmp_path, monkeypatch):
    from segment_anything import SamPredictor

    calls = []
    masks = np.zeros((3, 160, 240), dtype=bool)
    masks[1, 10:20, 30:50] = True  # the best-scored of three

    def spy(self, point_coords=None, point_labels=None, box=None, multimask_output=True, **_):
        calls.append((point_coords, point_labels, box, multimask_output))
        count = 3 if multimask_output else 1
        return masks[1:2] if count == 1 else masks, np.array([0.2, 0.9, 0.5][:count]), None

    monkeypatch.setattr(SamPredictor, "predict", spy)
    path, segmenter, image = write_tiny_sam(tmp_path / "sam.pth"), Segmenter("cpu"), picture()
    single = segmenter.predict(path, image, [(30.5, 40, 1)])
    segmenter.predict(path, image, [(30.5, 40, 1), (200, 20, 0)], box=(1, 2, 230, 150))
    segmenter.predict(path, image, [], box=(1, 2, 230, 150))
    assert np.array_equal(np.asarray(single) > 0, masks[1])
    (coords, labels, box, multi), (coords2, labels2, box2, multi2), (coords3, _, box3, multi3) = calls
    assert coords.tolist() == [[30.5, 40]] and labels.tolist() == [1] and box is None and multi
    assert coords2.tolist() == [[30.5, 40], [200, 20]] and labels2.tolist() == [1, 0] and not multi2
    assert box2.tolist() == [1, 2, 230, 150] and coords3 is None and box3.tolist() == [1, 2, 230, 150] and not multi3


def test_the_model_is_cached_until_the_file_changes(trained_sam, tmp_path):
    path = Path(shutil.copy(trained_sam, tmp_path / "sam.pth"))
    segmenter, image = Segmenter("cpu"), picture()
    segmenter.predict(path, image, [(50, 80, 1)], box=(10, 20, 100, 140))
    first = segmenter._predictor
    segmenter.predict(path, image, [(180, 80, 1), (50, 80, 0)])
    assert segmenter._predictor is first
    os.utime(path, ns=(1, 1))
    segmenter.predict(path, image, [(50, 80, 1)])
    assert segmenter._predictor is not first


@pytest.mark.parametrize("points,box,message", [
    ([], None, "at least one point"),
    ([(241, 10, 1)], None, "outside"),
    ([(10, -1, 1)], None, "outside"),
    ([(10, 10, 2)], None, "label"),
    ([], (50, 10, 20, 30), "box"),
    ([], (0, 0, 250, 100), "box"),
])
def test_bad_prompts_are_refused_before_any_model_is_loaded(tmp_path, points, box, message):
    with pytest.raises(SegmentError, match=message):
        Segmenter("cpu").predict(tmp_path / "never-read.pth", picture(), points, box)


def test_a_missing_checkpoint_file_is_a_segment_error(tmp_path):
    with pytest.raises(SegmentError, match="cannot read gone.pth"):
        Segmenter("cpu").predict(tmp_path / "gone.pth", picture(), [(10, 10, 1)])


# --- growing the mask --------------------------------------------------------------------------


def square_mask() -> Image.Image:
    mask = Image.new("L", (100, 100), 0)
    mask.paste(255, (40, 40, 60, 60))
    return mask


@pytest.mark.parametrize("pixels,side", [(0, 20), (5, 30), (-5, 10), (-10, 0), (1000, 20 + 2 * 64)])
def test_grow_mask_dilates_and_erodes(pixels, side):
    grown = np.asarray(grow_mask(square_mask(), pixels))
    assert set(np.unique(grown)) <= {0, 255}
    assert int((grown > 0).sum()) == min(side, 100) ** 2


# --- the router, with a stand-in studio --------------------------------------------------------


def test_the_router_lists_models_segments_and_refuses_bad_input(trained_sam, tmp_path):
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from webui.api.segment_api import segment_router

    studio = SimpleNamespace(paths=SimpleNamespace(models_dir=tmp_path), options={"limit_pixels_per_image": 240 * 160},
                             segmenter=Segmenter(), sam_dir=tmp_path / "sam")
    app = FastAPI()
    app.include_router(segment_router(studio))
    client = TestClient(app)
    buffer = io.BytesIO()
    picture().save(buffer, format="PNG")
    body = {"image": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode(), "points": [[180, 80, 1]]}

    empty = client.post("/sdapi/v1/segment", json=body)
    assert empty.status_code == 422 and "sam_vit_b_01ec64.pth" in empty.json()["message"]

    (tmp_path / "sam").mkdir()
    shutil.copy(trained_sam, tmp_path / "sam" / "tiny.pth")
    assert client.get("/sdapi/v1/sam-models").json() == ["tiny.pth"]
    answer = client.post("/sdapi/v1/segment", json={**body, "grow": 4})
    assert answer.status_code == 200 and answer.json()["checkpoint"] == "tiny.pth"
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(answer.json()["mask"])))) > 0
    assert mask.shape == (160, 240) and share(mask, SCENES[0][1]) > 0.75

    for bad in ({"image": "%%%"}, {"points": [[999, 5, 1]]}, {"checkpoint": "nope.pth"}, {"points": []}):
        refused = client.post("/sdapi/v1/segment", json={**body, **bad})
        assert refused.status_code == 422 and refused.json()["message"], bad
    (tmp_path / "sam" / "junk.pth").write_bytes(b"\x80not a model")
    junk = client.post("/sdapi/v1/segment", json={**body, "checkpoint": "junk.pth"})
    assert junk.status_code == 422 and "junk.pth" in junk.json()["message"]
    studio.options["limit_pixels_per_image"] = 100
    assert client.post("/sdapi/v1/segment", json=body).json()["error"] == "LimitExceeded"
