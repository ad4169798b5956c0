"""What the UI may use of the running studio: a typed view of ``webui.app.Studio``.

UI modules take a ``StudioView`` rather than the Studio class, so they depend on this narrow
surface only (and never on the engine): options, catalogs, the job queue, and a few helpers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from webui.auth.authenticator import Authenticator
from webui.flags import CommandLine, Paths
from webui.jobs import Job, JobQueue
from webui.models.catalog import Catalog
from webui.models.manager import ModelManager
from webui.networks.catalog import NetworkCatalog
from webui.plugins.loader import Plugins
from webui.request import GenerationRequest
from webui.segment import Segmenter
from webui.settings import Options
from webui.styles import StyleDatabase


class StudioView(Protocol):
    cmd: CommandLine
    paths: Paths
    options: Options
    catalog: Catalog
    manager: ModelManager
    networks: NetworkCatalog
    styles: StyleDatabase
    queue: JobQueue
    auth: Authenticator
    segmenter: Segmenter
    sam_dir: Path
    plugins: Plugins  # extensions: their scripts per tab, callbacks (ui_tabs), page assets, problems

    def submit(self, request: GenerationRequest, owner: str | None = None) -> Job: ...

    def model_notice(self) -> str | None: ...

    def refresh_checkpoints(self) -> None: ...

    def count_tokens(self, text: str, steps: int = 20) -> tuple[int, int]: ...
