"""img2img "Batch": a folder of images (and an optional folder of masks matched by file name),
each made into one job whose result keeps the input's name in the output folder.

Folders are on the server, so on a shared studio they are a way to read its disk: an admin may
name any folder; a user only folders inside the output roots (the data dir and --output-dir
folders). Results are always written inside the output roots (the engine checks it again).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from webui.auth.users import User
from webui.flags import Paths
from webui.ui.img2img_inputs import InputError

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp"})
MAX_BATCH_FILES = 1000


@dataclass(frozen=True)
class BatchItem:
    image: Path
    mask: Path | None


def readable_folder(text: str, what: str, paths: Paths, user: User) -> Path:
    """The folder an artist typed, as a path they may read; InputError saying why not."""
    if not text.strip():
        raise InputError(f"Batch: {what} is empty")
    folder = Path(text.strip()).expanduser()
    if not folder.is_absolute():
        folder = paths.data_dir / folder
    folder = folder.resolve()
    if not user.is_admin:
        try:
            paths.outputs(str(folder))
        except ValueError:
            raise InputError(f"Batch: {what} must be inside the data dir or the output folders; only an admin may "
                             "read other folders") from None
    if not folder.is_dir():
        raise InputError(f"Batch: {what} {text.strip()!r} is not a folder")
    return folder


def batch_items(input_dir: Path, mask_dir: Path | None) -> list[BatchItem]:
    """The images of ``input_dir`` in name order, each with the mask of the same stem if any."""
    images = sorted(p for p in input_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"Batch: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {input_dir}")
    if len(images) > MAX_BATCH_FILES:
        raise InputError(f"Batch: {len(images)} images; at most {MAX_BATCH_FILES} per batch")
    masks: dict[str, Path] = {}
    if mask_dir is not None:
        masks = {p.stem: p for p in mask_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
    return [BatchItem(image, masks.get(image.stem)) for image in images]


def load(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise InputError(f"Batch: {path.name} is not a readable image ({type(e).__name__})") from None
