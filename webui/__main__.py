"""``python -m webui``: start the server (launch.py calls this inside the project's venv)."""

from __future__ import annotations

import logging
import sys

# Nothing is ever fetched at run time: make the hub clients fail fast instead of trying.
from webui.offline import apply_offline_env

apply_offline_env(override=False)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    from webui.app import Studio
    from webui.server import create_app
    from webui.settings import parse_args

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cmd = parse_args(argv)
    app = create_app(Studio(cmd))
    print(f"Running on http://{cmd.host}:{cmd.port}", flush=True)
    # Open Gradio event streams would otherwise hold a shutdown for many seconds.
    uvicorn.run(app, host=cmd.host, port=cmd.port, log_level="warning", timeout_graceful_shutdown=3)


if __name__ == "__main__":
    main(sys.argv[1:])
