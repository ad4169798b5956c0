"""Click-to-mask with Segment Anything (SAM): find checkpoints, load them safely, predict a mask.

The model is rebuilt from the tensor shapes of the file, never from its name, so a renamed
``sam_vit_h`` still loads as vit_h and the tiny test checkpoints take the same path as real ones.
Files are read by webui.models.safe_load (safetensors, or ``torch.load(weights_only=True)``): a
``.pth`` that would run code is refused, not unpickled.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from webui.models import safe_load

SUFFIXES = (".safetensors", ".pth", ".pt")
VARIANTS = {(768, 12): "vit_b", (1024, 24): "vit_l", (1280, 32): "vit_h"}
MAX_GROW = 64
HOW_TO_ADD = ("No Segment Anything checkpoint found: put sam_vit_b_01ec64.pth (or sam_vit_l_0b3195.pth, "
              "sam_vit_h_4b8939.pth) into {folder}.")

Point = tuple[float, float, int]  # x, y in image pixels; label 1 = object, 0 = not object
Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels

_ENC = "image_encoder."
_BLOCK = re.compile(r"image_encoder\.blocks\.(\d+)\.")
_LAYER = re.compile(r"mask_decoder\.transformer\.layers\.(\d+)\.")
_IOU = re.compile(r"mask_decoder\.iou_prediction_head\.layers\.(\d+)\.weight")


class SegmentError(ValueError):
    """A request or a file we cannot segment with; the message is one sentence for the user."""


def list_sam_checkpoints(folder: Path) -> list[Path]:
    """The checkpoint files under ``folder`` (models/sam), sorted; none when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)


@dataclass(frozen=True)
class SamShape:
    """Everything the Sam constructor needs, as read from a state dict's shapes."""

    img_size: int
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    mlp_ratio: float
    window_size: int
    global_attn_indexes: tuple[int, ...]
    prompt_dim: int
    mask_in_chans: int
    decoder_depth: int
    decoder_mlp_dim: int
    num_multimask: int
    iou_head_depth: int
    iou_head_hidden: int


def read_shape(state_dict: Mapping[str, torch.Tensor]) -> SamShape:
    """Read the architecture from tensor shapes; ``SegmentError`` when this is no SAM state dict.

    Encoder heads come from the relative-position tables (embed_dim / head_dim), global-attention
    blocks are those whose table spans the whole grid. The decoder's head count leaves no trace in
    the shapes: it follows segment_anything's ratio, prompt_dim // 32 (8 heads for 256).
    """
    try:
        patch = state_dict[_ENC + "patch_embed.proj.weight"].shape  # (embed, 3, p, p)
        grid = state_dict[_ENC + "pos_embed"].shape[1]  # (1, img/p, img/p, embed)
        embed_dim, patch_size = int(patch[0]), int(patch[-1])
        depth = 1 + max(int(m.group(1)) for k in state_dict if (m := _BLOCK.match(k)))
        mlp_dim = state_dict[_ENC + "blocks.0.mlp.lin1.weight"].shape[0]
        rel = [state_dict[f"{_ENC}blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]  # (2*span-1, head)
        spans = [(int(r[0]) + 1) // 2 for r in rel]
        global_blocks = tuple(i for i, span in enumerate(spans) if span == grid)
        window = next((span for span in spans if span != grid), 0)
        heads = embed_dim // int(rel[0][1])
        prompt_dim = int(state_dict[_ENC + "neck.0.weight"].shape[0])
        mask_in = int(state_dict["prompt_encoder.mask_downscaling.3.weight"].shape[0])
        layers = 1 + max(int(m.group(1)) for k in state_dict if (m := _LAYER.match(k)))
        dec_mlp = int(state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0])
        tokens = int(state_dict["mask_decoder.mask_tokens.weight"].shape[0])
        iou_depth = 1 + max(int(m.group(1)) for k in state_dict if (m := _IOU.match(k)))
        iou_hidden = int(state_dict["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0])
    except (KeyError, ValueError, IndexError, AttributeError, TypeError):
        raise SegmentError("this file is not a Segment Anything (SAM) checkpoint") from None
    return SamShape(grid * patch_size, patch_size, embed_dim, depth, heads, mlp_dim / embed_dim, window,
                    global_blocks, prompt_dim, mask_in, layers, dec_mlp, tokens - 1, iou_depth, iou_hidden)


def identify_variant(state_dict: Mapping[str, torch.Tensor]) -> str:
    """"vit_b", "vit_l" or "vit_h" from encoder width and depth; "custom" for any other SAM."""
    shape = read_shape(state_dict)
    return VARIANTS.get((shape.embed_dim, shape.depth), "custom")


def build_sam(shape: SamShape) -> torch.nn.Module:
    """A Sam with random weights and the given shape (segment_anything's own _build_sam, generalised)."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = shape.img_size // shape.patch_size
    encoder = ImageEncoderViT(
        depth=shape.depth, embed_dim=shape.embed_dim, img_size=shape.img_size, mlp_ratio=shape.mlp_ratio,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6), num_heads=shape.num_heads, patch_size=shape.patch_size,
        qkv_bias=True, use_rel_pos=True, global_attn_indexes=shape.global_attn_indexes,
        window_size=shape.window_size, out_chans=shape.prompt_dim)
    prompt = PromptEncoder(embed_dim=shape.prompt_dim, image_embedding_size=(grid, grid),
                           input_image_size=(shape.img_size, shape.img_size), mask_in_chans=shape.mask_in_chans)
    transformer = TwoWayTransformer(depth=shape.decoder_depth, embedding_dim=shape.prompt_dim,
                                    mlp_dim=shape.decoder_mlp_dim, num_heads=max(1, shape.prompt_dim // 32))
    decoder = MaskDecoder(num_multimask_outputs=shape.num_multimask, transformer=transformer,
                          transformer_dim=shape.prompt_dim, iou_head_depth=shape.iou_head_depth,
                          iou_head_hidden_dim=shape.iou_head_hidden)
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375]).eval()


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors only, through the checkpoint loader: a pickle that asks for code is refused unrun."""
    try:
        return safe_load.load_state_dict(path)
    except safe_load.CheckpointError as e:
        raise SegmentError(str(e)) from None


def load_sam(path: Path, device: str = "cpu") -> torch.nn.Module:
    """Build the Sam the file's shapes describe and load its weights, strictly."""
    state_dict = load_state_dict(path)
    model = build_sam(read_shape(state_dict))
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError:
        raise SegmentError(f"{path.name} does not match any Segment Anything (SAM) layout") from None
    return model.to(device)


class Segmenter:
    """One loaded SAM (the last used; vit_h is 2.5 GB) and its predictor; one prediction at a time."""

    def __init__(self, device: str | None = None):
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._lock = threading.Lock()  # one lock, never nested: loading happens under it too
        self._key: tuple[str, int, int] | None = None
        self._predictor = None
        self._image_key: str | None = None  # the image whose embedding is set (clicks reuse it)

    def _prepare(self, checkpoint: Path):
        try:
            stat = checkpoint.stat()
        except OSError as e:
            raise SegmentError(f"cannot read {checkpoint.name}: {e.strerror}") from None
        key = (str(checkpoint.resolve()), stat.st_mtime_ns, stat.st_size)
        if key != self._key:
            from segment_anything import SamPredictor

            self._predictor, self._key, self._image_key = None, None, None  # free the old model first
            self._predictor = SamPredictor(load_sam(checkpoint, self.device))
            self._key = key
        return self._predictor

    def predict(self, checkpoint: Path | str, image: Image.Image, points: Sequence[Point] = (),
                box: Box | None = None) -> Image.Image:
        """A 0/255 "L" mask the size of ``image`` for the clicked points and/or box.

        One point alone is ambiguous (a shirt or the person?), so SAM gives three masks and we keep
        the one it scores best; with more prompts SAM's authors advise a single mask.
        """
        width, height = image.size
        coords, labels = validate_prompts(points, box, width, height)
        rgb = np.asarray(image.convert("RGB"))
        image_key = hashlib.sha1(rgb.tobytes()).hexdigest() + f"{width}x{height}"
        multimask = len(points) == 1 and box is None
        with self._lock, torch.inference_mode():
            predictor = self._prepare(Path(checkpoint))
            if image_key != self._image_key:
                predictor.set_image(rgb)
                self._image_key = image_key
            masks, scores, _ = predictor.predict(
                point_coords=coords, point_labels=labels, multimask_output=multimask,
                box=np.asarray(box, dtype=np.float32) if box is not None else None)
        best = masks[int(np.argmax(scores))]
        return Image.fromarray(np.where(best, 255, 0).astype(np.uint8))  # 2-D uint8: mode "L"


def validate_prompts(points: Sequence[Point], box: Box | None, width: int,
                     height: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Points and box inside the image, labels 0/1, at least one prompt; SAM's arrays for the points."""
    if not points and box is None:
        raise SegmentError("give at least one point or a box")
    for x, y, label in points:
        if label not in (0, 1):
            raise SegmentError(f"a point's label must be 1 (object) or 0 (not object), not {label!r}")
        if not (0 <= x <= width and 0 <= y <= height):
            raise SegmentError(f"point ({x}, {y}) is outside the {width}x{height} image")
    if box is not None:
        x0, y0, x1, y1 = box
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise SegmentError(f"box {tuple(box)} must have x0 < x1, y0 < y1 and lie inside the "
                               f"{width}x{height} image")
    if not points:
        return None, None
    return (np.array([(x, y) for x, y, _ in points], dtype=np.float32),
            np.array([label for _, _, label in points], dtype=np.int64))


def grow_mask(mask: Image.Image, pixels: int) -> Image.Image:
    """Dilate (pixels > 0) or erode (< 0) by up to 64 px, so inpainting blends past the edge."""
    pixels = max(-MAX_GROW, min(MAX_GROW, int(pixels)))
    if pixels == 0:
        return mask.convert("L")
    size = 2 * abs(pixels) + 1  # a max pool: a large PIL MaxFilter is quadratic in its size
    values = torch.from_numpy(np.asarray(mask.convert("L"), dtype=np.float32))[None, None]
    sign = 1.0 if pixels > 0 else -1.0
    grown = sign * torch.nn.functional.max_pool2d(sign * values, size, stride=1, padding=abs(pixels))
    return Image.fromarray(grown[0, 0].numpy().astype(np.uint8))
