"""Which checkpoint to load at start when none was chosen: a regular base model, not a refused file.

Alphabetical order would settle on whatever comes first: a refused pickle, a garbage file, an
inpainting or refiner checkpoint. Candidates are ranked instead, from the safetensors header
only (nothing is loaded to rank): text-to-image base models (SD 1.x, SD 2.x, SDXL base) first,
then files that cannot be told without loading them (.ckpt), then inpainting and refiner
checkpoints. Files already refused are left out.
"""

from __future__ import annotations

from webui.models.catalog import Catalog, ModelFile
from webui.models.identify import identify
from webui.models.safe_load import read_shapes

_BASE_FAMILIES = ("sd15", "sd2", "sd2-v", "sdxl-base")


def _rank(file: ModelFile) -> int:
    if file.path.suffix.lower() != ".safetensors":
        return 1  # a pickle: identifying it means loading it
    try:
        family = identify(read_shapes(file.path)).family
    except Exception:  # any odd header (identify may raise more than CheckpointError): tried last,
        return 3  # and refused then, with the reason shown
    return 0 if family in _BASE_FAMILIES else 2


def startup_candidates(catalog: Catalog) -> list[ModelFile]:
    """Checkpoints to try at start, best first; refused files are not tried again."""
    files = [f for f in catalog.checkpoints if catalog.refused.reason(f.path) is None]
    return sorted(files, key=_rank)  # sorted() is stable: alphabetical within a rank
