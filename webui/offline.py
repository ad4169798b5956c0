"""The environment that keeps every library off the network (stdlib only: launch.py imports it
before the project's venv exists)."""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",  # huggingface_hub; diffusers reads the same constant
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "GRADIO_ANALYTICS_ENABLED": "False",
}


def apply_offline_env(*, override: bool) -> None:
    """Set the variables; ``override=False`` keeps values the user already set."""
    for key, value in OFFLINE_ENV.items():
        if override:
            os.environ[key] = value
        else:
            os.environ.setdefault(key, value)
