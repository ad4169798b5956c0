"""The checkpoint and VAE folders as lists the UI and API show, with A1111's titles.

Scanning reads directory entries only; hashes come from the lazy HashCache.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from webui.models.hashes import HashCache
from webui.models.refusals import RefusedFiles
from webui.models.safe_load import CHECKPOINT_SUFFIXES

VAE_SUFFIXES = {".safetensors", ".pt", ".ckpt", ".bin"}


@dataclass(frozen=True)
class ModelFile:
    """One file in a model folder."""

    path: Path
    name: str  # path relative to its folder, as A1111 shows it ("sub/model.safetensors")
    sha256: str | None

    @property
    def model_name(self) -> str:
        return Path(self.name).with_suffix("").as_posix().replace("/", "_")

    @property
    def short_hash(self) -> str | None:
        return self.sha256[:10] if self.sha256 else None

    @property
    def title(self) -> str:
        return f"{self.name} [{self.short_hash}]" if self.short_hash else self.name

    def matches(self, query: str) -> bool:
        """True when ``query`` names this file as A1111 clients do (title, name, stem or hash)."""
        query = query.strip()
        if not query:
            return False
        names = {self.title, self.name, self.model_name, Path(self.name).stem, str(self.path)}
        if query in names:
            return True
        bare = query.split(" [", 1)[0]
        if bare in names:
            return True
        return bool(self.sha256) and len(query) >= 8 and self.sha256.startswith(query.lower())


def scan(folder: Path, suffixes: set[str], hashes: HashCache) -> list[ModelFile]:
    """Files under ``folder`` (recursive), sorted as A1111 sorts them (case-insensitive name)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = []
    for path in folder.rglob("*"):
        if path.suffix.lower() in suffixes and path.is_file() and not path.name.startswith("."):
            found.append(ModelFile(path=path.resolve(), name=path.relative_to(folder).as_posix(), sha256=hashes.cached(path)))
    return sorted(found, key=lambda f: f.name.lower())


class Catalog:
    """Checkpoints and VAEs on disk; ``refresh()`` rescans, hashing continues in the background."""

    def __init__(self, ckpt_dir: Path, vae_dir: Path, hashes: HashCache, refused: RefusedFiles | None = None):
        self.ckpt_dir = Path(ckpt_dir)
        self.vae_dir = Path(vae_dir)
        self.hashes = hashes
        self.refused = refused if refused is not None else RefusedFiles()
        self._checkpoints: list[ModelFile] = []
        self._vaes: list[ModelFile] = []
        self.refresh()

    def refresh(self) -> None:
        self._checkpoints = scan(self.ckpt_dir, CHECKPOINT_SUFFIXES, self.hashes)
        self._vaes = scan(self.vae_dir, VAE_SUFFIXES, self.hashes)
        self.hashes.schedule([f.path for f in self._checkpoints])

    def _rehash_view(self, files: list[ModelFile]) -> list[ModelFile]:
        return [
            f if f.sha256 else ModelFile(f.path, f.name, self.hashes.cached(f.path))
            for f in files
        ]

    @property
    def checkpoints(self) -> list[ModelFile]:
        self._checkpoints = self._rehash_view(self._checkpoints)
        return list(self._checkpoints)

    @property
    def vaes(self) -> list[ModelFile]:
        return list(self._vaes)

    def find_checkpoint(self, query: str) -> ModelFile | None:
        return next((f for f in self.checkpoints if f.matches(query)), None)

    def find_vae(self, query: str) -> ModelFile | None:
        return next((f for f in self._vaes if f.matches(query)), None)

    def with_hash(self, file: ModelFile) -> ModelFile:
        """The same file with its SHA-256 computed now (used when a model is loaded, as A1111 does)."""
        if file.sha256:
            return file
        return ModelFile(file.path, file.name, self.hashes.sha256(file.path))
