"""Jobs as text for the job store: a GenerationRequest in, a Result's record out.

A stored result keeps A1111's ``info``, the warnings, whether it was interrupted, the grid's
path, and per image its saved file, seeds and infotext. Images read back from the store have
their file only (``GeneratedImage.image`` is None): they were saved, or they were not kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from webui.request import GenerationRequest
from webui.result import GeneratedImage, Result


class RequestCodec:
    def dump_payload(self, payload: GenerationRequest) -> str:
        return payload.model_dump_json()

    def load_payload(self, text: str) -> GenerationRequest:
        return GenerationRequest.model_validate_json(text)

    def dump_result(self, result: Any) -> str | None:
        if not isinstance(result, Result):
            return None
        grid = result.grid
        return json.dumps({
            "info": result.info,
            "warnings": result.warnings,
            "interrupted": result.interrupted,
            "timings": result.timings,
            "grid": {"path": str(grid.path), "seed": grid.seed, "subseed": grid.subseed, "infotext": grid.infotext}
            if grid is not None and grid.path is not None else None,
        }, default=str)

    def load_result(self, text: str | None, images: dict[int, dict]) -> Result:
        data = json.loads(text) if text else {}
        kept = [_image(record) for _, image in sorted(images.items()) if (record := image.get("record"))]
        grid = data.get("grid")
        return Result(
            images=[g for g in kept if g is not None],
            info=data.get("info") or {},
            grid=_image(grid) if grid else None,
            interrupted=bool(data.get("interrupted")),
            timings=data.get("timings") or {},
            warnings=list(data.get("warnings") or []),
        )


def _image(record: dict) -> GeneratedImage | None:
    path = record.get("path")
    if not path:
        return None
    return GeneratedImage(None, int(record.get("seed") or 0), int(record.get("subseed") or 0),
                          str(record.get("infotext") or ""), Path(path))
