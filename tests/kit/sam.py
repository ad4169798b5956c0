"""A tiny Segment Anything model for tests, built from segment_anything's own classes.

Random weights segment nothing, so ``write_tiny_sam(..., train_steps=N)`` first teaches the tiny
model one thing on synthetic pictures: one rectangle (any colour with a bright channel) on a dark
noisy background, a click inside it, and the rectangle as the answer; ~80 steps on one core.
The test then checks the mask through the real predictor (resize, padding, the way back to the
image's size), and fails for an untrained model. Choosing between two objects by the click was
tried too: it needs far more steps than a unit test can spend and depends on the seed.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import torch

IMG_SIZE = 128  # 8×8 patches of 16 px
PROMPT_DIM = 64  # the decoder's 64 // 32 = 2 heads, the ratio webui.segment assumes


def tiny_sam() -> torch.nn.Module:
    """A Sam shaped like vit_b in miniature (relative positions, windowed and global blocks)."""
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    grid = IMG_SIZE // 16
    encoder = ImageEncoderViT(
        depth=2, embed_dim=64, img_size=IMG_SIZE, mlp_ratio=2, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=2, patch_size=16, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,), window_size=4,
        out_chans=PROMPT_DIM)
    prompt = PromptEncoder(embed_dim=PROMPT_DIM, image_embedding_size=(grid, grid),
                           input_image_size=(IMG_SIZE, IMG_SIZE), mask_in_chans=8)
    decoder = MaskDecoder(num_multimask_outputs=3, transformer_dim=PROMPT_DIM, iou_head_depth=2,
                          iou_head_hidden_dim=32,
                          transformer=TwoWayTransformer(depth=2, embedding_dim=PROMPT_DIM, mlp_dim=128,
                                                        num_heads=PROMPT_DIM // 32))
    return Sam(image_encoder=encoder, prompt_encoder=prompt, mask_decoder=decoder,
               pixel_mean=[123.675, 116.28, 103.53], pixel_std=[58.395, 57.12, 57.375])


def rectangle_picture(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """A dark noisy HxWx3 uint8 picture with one rectangle (x0, y0, x1, y1) of a colour with a bright channel."""
    image = rng.integers(0, 40, (height, width, 3)).astype(np.uint8)
    w, h = rng.integers(width // 6, width * 2 // 3), rng.integers(height // 6, height * 2 // 3)
    x0, y0 = rng.integers(0, width - w), rng.integers(0, height - h)
    colour = rng.integers(0, 256, 3)
    colour[rng.integers(0, 3)] = rng.integers(150, 256)  # at least one bright channel: visible on dark
    image[y0:y0 + h, x0:x0 + w] = colour
    return image, (int(x0), int(y0), int(x0 + w), int(y0 + h))


def _batch(rng: np.random.Generator, model: torch.nn.Module, size: int):
    images, points, targets = [], [], []
    for _ in range(size):
        short = int(rng.integers(IMG_SIZE // 2, IMG_SIZE + 1))  # the rest is padding, as in the predictor
        width, height = (IMG_SIZE, short) if rng.random() < 0.5 else (short, IMG_SIZE)
        image, (x0, y0, x1, y1) = rectangle_picture(rng, width, height)
        points.append((rng.uniform(x0, x1), rng.uniform(y0, y1)))
        target = torch.zeros(IMG_SIZE, IMG_SIZE)
        target[y0:y1, x0:x1] = 1
        images.append(model.preprocess(torch.from_numpy(image).permute(2, 0, 1).float()[None])[0])
        targets.append(target)
    return torch.stack(images), torch.tensor(points, dtype=torch.float32), torch.stack(targets)


def _decode(decoder, embeddings, image_pe, sparse, dense):
    """MaskDecoder.predict_masks for a batch of images with one prompt each (it expects one image)."""
    tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight]).expand(sparse.shape[0], -1, -1)
    src = embeddings + dense
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, image_pe.expand(b, -1, -1, -1), torch.cat((tokens, sparse), dim=1))
    upscaled = decoder.output_upscaling(src.transpose(1, 2).reshape(b, c, h, w))
    hyper = torch.stack([mlp(hs[:, 1 + i]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)], dim=1)
    masks = (hyper @ upscaled.flatten(2)).view(b, -1, *upscaled.shape[-2:])
    return masks, decoder.iou_prediction_head(hs[:, 0])


def train(model: torch.nn.Module, steps: int, seed: int = 0, batch: int = 8, lr: float = 2e-3) -> torch.nn.Module:
    """Teach "the rectangle under the click" to all four mask outputs, and their IoU to the IoU head."""
    rng = np.random.default_rng(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    low = IMG_SIZE // 4  # the decoder's low-resolution masks
    model.train()
    for _ in range(steps):
        images, points, targets = _batch(rng, model, batch)
        embeddings = model.image_encoder(images)
        small = torch.nn.functional.interpolate(targets[:, None], (low, low), mode="area")[:, 0]
        sparse, dense = model.prompt_encoder(points=(points[:, None], torch.ones(batch, 1)), boxes=None, masks=None)
        masks, iou = _decode(model.mask_decoder, embeddings, model.prompt_encoder.get_dense_pe(), sparse, dense)
        target = small[:, None].expand_as(masks)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(masks, target)
        with torch.no_grad():
            hit = (masks > 0).float()
            real_iou = (hit * target).sum((2, 3)) / ((hit + target).clamp(max=1).sum((2, 3)) + 1e-6)
        loss = loss + 0.1 * torch.nn.functional.mse_loss(iou, real_iou)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


def write_tiny_sam(path: Path, fmt: str = "pth", train_steps: int = 0, seed: int = 0) -> Path:
    """Save a tiny Sam's state dict as ``.pth`` (torch.save) or ``.safetensors``; trained when asked."""
    torch.manual_seed(seed)
    model = tiny_sam()
    if train_steps:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny matrices: a second thread only fights the other processes for a core
        try:
            model = train(model, train_steps, seed)
        finally:
            torch.set_num_threads(threads)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    elif fmt == "pth":
        torch.save(state, path)
    else:
        raise ValueError(f"fmt must be 'pth' or 'safetensors', not {fmt!r}")
    return path
