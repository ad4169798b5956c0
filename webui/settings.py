"""Command-line flags and persisted options: the one typed source of truth for configuration.

Options use A1111's keys (they travel through GET/POST /sdapi/v1/options unchanged) and persist
as JSON in ``<data dir>/config.json``, written atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class CommandLine:
    listen: bool = False
    port: int = 7860
    api: bool = True
    data_dir: Path = REPO_ROOT
    ckpt_dir: Path | None = None
    vae_dir: Path | None = None
    ckpt: Path | None = None
    medvram: bool = False
    lowvram: bool = False
    no_half: bool = False
    device: str | None = None
    no_demo_model: bool = False

    @property
    def host(self) -> str:
        return "0.0.0.0" if self.listen else "127.0.0.1"


def parse_args(argv: Sequence[str] | None = None) -> CommandLine:
    parser = argparse.ArgumentParser(prog="webui", description="Stable Diffusion studio server")
    parser.add_argument("--listen", action="store_true", help="serve on 0.0.0.0 (the LAN), not only 127.0.0.1")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--api", action="store_true", help="accepted for A1111 compatibility; the API is always on")
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("WEBUI_DATA_DIR", REPO_ROOT)),
                        help="config, caches, outputs and models/ live here")
    parser.add_argument("--ckpt-dir", type=Path, default=None, help="checkpoint folder (default <data-dir>/models/Stable-diffusion)")
    parser.add_argument("--vae-dir", type=Path, default=None, help="VAE folder (default <data-dir>/models/VAE)")
    parser.add_argument("--ckpt", type=Path, default=None, help="checkpoint to load at start")
    parser.add_argument("--medvram", action="store_true", help="keep only the active component on the GPU")
    parser.add_argument("--lowvram", action="store_true", help="stream weights to the GPU layer by layer")
    parser.add_argument("--no-half", action="store_true", help="fp32 weights even on CUDA")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--no-demo-model", action="store_true", help="do not write the demo checkpoint")
    ns = parser.parse_args(argv)
    return CommandLine(
        listen=ns.listen, port=ns.port, api=True, data_dir=ns.data_dir.resolve(),
        ckpt_dir=ns.ckpt_dir, vae_dir=ns.vae_dir, ckpt=ns.ckpt, medvram=ns.medvram, lowvram=ns.lowvram,
        no_half=ns.no_half, device=ns.device, no_demo_model=ns.no_demo_model,
    )


@dataclass(frozen=True)
class Paths:
    """Where things live, all derived from the flags (A1111's layout under the data dir)."""

    data_dir: Path
    ckpt_dir: Path
    vae_dir: Path

    @classmethod
    def from_cmd(cls, cmd: CommandLine) -> "Paths":
        models = cmd.data_dir / "models"
        return cls(
            data_dir=cmd.data_dir,
            ckpt_dir=(cmd.ckpt_dir or models / "Stable-diffusion").resolve(),
            vae_dir=(cmd.vae_dir or models / "VAE").resolve(),
        )

    @property
    def config_file(self) -> Path:
        return self.data_dir / "config.json"

    @property
    def cache_file(self) -> Path:
        return self.data_dir / "cache.json"

    def outputs(self, folder: str) -> Path:
        path = Path(folder)
        return path if path.is_absolute() else self.data_dir / path


@dataclass(frozen=True)
class OptionInfo:
    default: Any
    label: str
    section: str
    kind: type
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None


OPTIONS: dict[str, OptionInfo] = {
    "sd_model_checkpoint": OptionInfo("", "Stable Diffusion checkpoint", "Stable Diffusion", str),
    "sd_vae": OptionInfo("Automatic", "SD VAE ('Automatic' uses the checkpoint's own or a matching file)", "Stable Diffusion", str),
    "sd_checkpoint_cache": OptionInfo(1, "Checkpoints to keep in RAM besides the active one", "Stable Diffusion", int, minimum=0, maximum=10),
    "CLIP_stop_at_last_layers": OptionInfo(1, "Clip skip", "Stable Diffusion", int, minimum=1, maximum=12),
    "emphasis": OptionInfo(
        "Original", "Emphasis mode: (word:1.2) multiplies; Original restores the chunk mean after", "Prompts", str,
        choices=("Original", "No norm", "Ignore", "None"),
    ),
    "enable_prompt_comments": OptionInfo(True, "Remove # comments from prompts", "Prompts", bool),
    "comma_padding_backtrack": OptionInfo(
        20, "Move the text after the last comma into the next 75-token chunk if it is at most this many tokens",
        "Prompts", int, minimum=0, maximum=74,
    ),
    "hires_fix_refiner_pass": OptionInfo(
        "second pass", "With hires fix, the refiner takes over in", "Stable Diffusion", str,
        choices=("first pass", "second pass", "both passes"),
    ),
    "refiner_switch_by_sample_steps": OptionInfo(
        False, "Switch to the refiner by sampling steps instead of model timesteps (A1111's old behaviour)",
        "Stable Diffusion", bool,
    ),
    "sdxl_refiner_high_aesthetic_score": OptionInfo(6.0, "SDXL refiner: aesthetic score of the prompt", "Stable Diffusion", float,
                                                    minimum=0.0, maximum=10.0),
    "sdxl_refiner_low_aesthetic_score": OptionInfo(2.5, "SDXL refiner: aesthetic score of the negative prompt", "Stable Diffusion",
                                                   float, minimum=0.0, maximum=10.0),
    "lora_show_all": OptionInfo(
        True, "Show networks made for another model version (dimmed); off: hide them", "Extra Networks", bool,
    ),
    "lora_hide_unknown_for_versions": OptionInfo(
        (), "Hide networks of unknown version while a model of these versions is loaded", "Extra Networks", list,
        choices=("SD1", "SD2", "SDXL"),
    ),
    "outdir_samples": OptionInfo("", "Output folder for all images (overrides the two below when set)", "Saving", str),
    "outdir_txt2img_samples": OptionInfo("outputs/txt2img-images", "Output folder for txt2img images", "Saving", str),
    "outdir_txt2img_grids": OptionInfo("outputs/txt2img-grids", "Output folder for txt2img grids", "Saving", str),
    "samples_save": OptionInfo(True, "Always save all generated images", "Saving", bool),
    "grid_save": OptionInfo(True, "Always save a grid of each batch", "Saving", bool),
    "return_grid": OptionInfo(True, "Show the grid in the results", "Saving", bool),
    "save_to_dirs": OptionInfo(True, "Save images into a subfolder per day", "Saving", bool),
    "enable_pnginfo": OptionInfo(True, "Write generation parameters into the PNG", "Saving", bool),
    "live_previews_enable": OptionInfo(True, "Show live previews while generating", "Live previews", bool),
    "show_progress_every_n_steps": OptionInfo(5, "Live preview every N steps (0 = off)", "Live previews", int, minimum=0, maximum=100),
    "txt2img_default_steps": OptionInfo(20, "Default steps in the UI", "Defaults", int, minimum=1, maximum=150),
    "txt2img_default_sampler": OptionInfo("DPM++ 2M", "Default sampler in the UI", "Defaults", str),
    "txt2img_default_cfg": OptionInfo(7.0, "Default CFG scale in the UI", "Defaults", float, minimum=1.0, maximum=30.0),
    "txt2img_default_width": OptionInfo(512, "Default width in the UI", "Defaults", int, minimum=64, maximum=2048),
    "txt2img_default_height": OptionInfo(512, "Default height in the UI", "Defaults", int, minimum=64, maximum=2048),
}


class OptionError(ValueError):
    """A bad option name or value; the message says which and why."""


class Options:
    """Persisted options with defaults, validation and change listeners. Thread-safe."""

    def __init__(self, path: Path):
        self._path = Path(path)
        self._lock = threading.RLock()  # guards values and listeners; held only briefly
        self._key_locks: dict[str, threading.RLock] = {}  # serialise updates of one key (see update)
        self._save_lock = threading.Lock()  # one writer of config.json at a time
        self._values: dict[str, Any] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._load()

    def _load(self) -> None:
        if not self._path.is_file():
            return
        try:
            stored = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            # A broken config must not stop the server; keep the bad file for the user to inspect.
            self._path.replace(self._path.with_suffix(".json.bak"))
            return
        for key, value in stored.items():
            try:
                self._values[key] = self._validate(key, value)
            except OptionError:
                self._values[key] = value if key not in OPTIONS else OPTIONS[key].default

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
        if key in OPTIONS:
            return OPTIONS[key].default
        raise AttributeError(f"unknown option {key!r}")

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {**{k: i.default for k, i in OPTIONS.items()}, **self._values}

    def on_change(self, key: str, listener: Callable[[Any], None]) -> None:
        with self._lock:
            self._listeners.setdefault(key, []).append(listener)

    def snapshot(self) -> "OptionsSnapshot":
        """Every option as it is now, frozen: what a job reads instead of the live options."""
        return OptionsSnapshot(self.as_dict())

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Validate all, run listeners (which may refuse with an exception), then persist.

        Returns the keys that changed. Unknown keys (other tools' A1111 options) are stored as
        given so a client that round-trips the options does not lose them.

        Listeners run while no lock that readers take is held: a checkpoint listener may wait
        for the running job to finish with the model, and that job (or the progress endpoint)
        must still be able to read options meanwhile. Two updates of one key run one after the
        other; updates of other keys do not wait for them.
        """
        validated = {k: self._validate(k, v) for k, v in changes.items()}
        changed: list[str] = []
        try:
            for key, value in validated.items():
                with self._key_lock(key):  # never more than one held: no lock-order deadlock
                    if self.get_or_none(key) == value:
                        continue
                    with self._lock:
                        listeners = list(self._listeners.get(key, []))
                    for listener in listeners:
                        listener(value)
                    with self._lock:
                        self._values[key] = value
                    changed.append(key)
        finally:
            # What was applied before a refusing listener is in effect, so it is saved too.
            if changed:
                self._save()
        return changed

    def _key_lock(self, key: str) -> threading.RLock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.RLock())

    def get_or_none(self, key: str) -> Any:
        try:
            return self.get(key)
        except AttributeError:
            return None

    def _validate(self, key: str, value: Any) -> Any:
        info = OPTIONS.get(key)
        if info is None:
            return value
        try:
            if info.kind is bool:
                if not isinstance(value, bool):
                    raise TypeError
                return value
            if info.kind is list:
                return self._validate_list(key, info, value)
            if info.kind is int and isinstance(value, float) and not value.is_integer():
                raise TypeError
            if info.kind in (int, float) and isinstance(value, bool):
                raise TypeError
            coerced = info.kind(value)
        except OptionError:
            raise
        except (TypeError, ValueError):
            raise OptionError(f"option {key}: expected {info.kind.__name__}, got {value!r}") from None
        if info.minimum is not None and coerced < info.minimum:
            raise OptionError(f"option {key}: {coerced} is below the minimum {info.minimum}")
        if info.maximum is not None and coerced > info.maximum:
            raise OptionError(f"option {key}: {coerced} is above the maximum {info.maximum}")
        if info.choices is not None and info.kind is not list and coerced not in info.choices:
            raise OptionError(f"option {key}: {coerced!r} is not one of {list(info.choices)}")
        return coerced

    @staticmethod
    def _validate_list(key: str, info: OptionInfo, value: Any) -> list:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise TypeError
        unknown = [v for v in value if info.choices is not None and v not in info.choices]
        if unknown:
            raise OptionError(f"option {key}: {unknown!r} not among {list(info.choices or ())}")
        return list(value)

    def _save(self) -> None:
        with self._save_lock:
            with self._lock:
                text = json.dumps(self._values, indent=2, sort_keys=True)
            self._path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self._path.with_suffix(".json.tmp")
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, self._path)


class OptionsSnapshot(Mapping[str, Any]):
    """Options frozen at one moment (a job's start): read-only, with attribute access.

    A job reads every option it needs from its snapshot, so nothing it does during sampling
    waits for the live options, and a change made meanwhile applies from the next job.
    """

    def __init__(self, values: Mapping[str, Any]):
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"unknown option {key!r}") from None
