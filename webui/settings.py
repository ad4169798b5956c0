"""Persisted options: the one typed source of truth for what can be changed while running.

(Command-line flags and folders are in webui/flags.py.) Options use A1111's keys (they travel through GET/POST /sdapi/v1/options unchanged) and persist
as JSON in ``<data dir>/config.json``, written atomically.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OptionInfo:
    default: Any
    label: str
    section: str
    kind: type
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    hidden: bool = False  # set elsewhere (the Extensions tab), not shown in the Settings tab


# The example extension ships in extensions/ switched off: an artist turns it on in the Extensions tab.
EXAMPLE_EXTENSION = "sd-studio-example"

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
    "ESRGAN_tile": OptionInfo(192, "Tile size for upscaler models, in pixels (0 = no tiling)", "Upscaling", int,
                              minimum=0, maximum=512),
    "ESRGAN_tile_overlap": OptionInfo(8, "Tile overlap for upscaler models, in pixels (blended, so no seams)",
                                      "Upscaling", int, minimum=0, maximum=48),
    "queue_max_per_user": OptionInfo(20, "Jobs one user may have waiting (0 = no cap)", "Queue", int, minimum=0,
                                     maximum=10_000),
    "queue_max_total": OptionInfo(200, "Jobs waiting in all (0 = no cap)", "Queue", int, minimum=0, maximum=100_000),
    "jobs_keep_days": OptionInfo(7.0, "Days finished jobs stay listed (their images stay on disk)", "Queue", float,
                                 minimum=0.0, maximum=3650.0),
    "limit_prompt_chars": OptionInfo(20_000, "Longest prompt, in characters", "Limits", int, minimum=100,
                                     maximum=1_000_000),
    "limit_prompt_depth": OptionInfo(48, "Deepest nesting of brackets in a prompt", "Limits", int, minimum=4,
                                     maximum=1000),
    "limit_images_per_job": OptionInfo(100, "Most images in one job (batch size × batch count)", "Limits", int,
                                       minimum=1, maximum=10_000),
    "limit_pixels_per_image": OptionInfo(2048 * 2048, "Most pixels in one image (also after hires fix)", "Limits",
                                         int, minimum=64 * 64, maximum=8192 * 8192),
    "limit_work_per_job": OptionInfo(6000, "Most work in one job, in 512×512 image-steps (pixels × steps × images)",
                                     "Limits", int, minimum=1, maximum=10_000_000),
    "limit_extras_pixels": OptionInfo(6144 * 6144, "Most pixels in one Extras result (after upscaling)", "Limits", int,
                                      minimum=64 * 64, maximum=16384 * 16384),
    "limit_extras_images": OptionInfo(100, "Most images in one Extras batch", "Limits", int, minimum=1, maximum=10_000),
    "outdir_samples": OptionInfo("", "Output folder for all images (overrides the four below when set)", "Saving", str),
    "outdir_txt2img_samples": OptionInfo("outputs/txt2img-images", "Output folder for txt2img images", "Saving", str),
    "outdir_txt2img_grids": OptionInfo("outputs/txt2img-grids", "Output folder for txt2img grids", "Saving", str),
    "outdir_img2img_samples": OptionInfo("outputs/img2img-images", "Output folder for img2img images", "Saving", str),
    "outdir_img2img_grids": OptionInfo("outputs/img2img-grids", "Output folder for img2img grids", "Saving", str),
    "outdir_extras_samples": OptionInfo("outputs/extras-images", "Output folder for images from the Extras tab", "Saving",
                                        str),
    "samples_save": OptionInfo(True, "Always save all generated images", "Saving", bool),
    "grid_save": OptionInfo(True, "Always save a grid of each batch", "Saving", bool),
    "return_grid": OptionInfo(True, "Show the grid in the results", "Saving", bool),
    "save_to_dirs": OptionInfo(True, "Save images into a subfolder per day", "Saving", bool),
    "enable_pnginfo": OptionInfo(True, "Write generation parameters into the PNG", "Saving", bool),
    # A1111's: when off, ↙ / Send to / PNG Info make the infotext's checkpoint that tab's per-job pick.
    "disable_weights_auto_swap": OptionInfo(True, "Disregard checkpoint information from pasted infotext",
                                            "Infotext", bool),
    "live_previews_enable": OptionInfo(True, "Show live previews while generating", "Live previews", bool),
    "show_progress_every_n_steps": OptionInfo(5, "Live preview every N steps (0 = off)", "Live previews", int, minimum=0, maximum=100),
    "txt2img_default_steps": OptionInfo(20, "Default steps in the UI", "Defaults", int, minimum=1, maximum=150),
    "txt2img_default_sampler": OptionInfo("DPM++ 2M", "Default sampler in the UI", "Defaults", str),
    "txt2img_default_cfg": OptionInfo(7.0, "Default CFG scale in the UI", "Defaults", float, minimum=1.0, maximum=30.0),
    "txt2img_default_width": OptionInfo(512, "Default width in the UI", "Defaults", int, minimum=64, maximum=2048),
    "txt2img_default_height": OptionInfo(512, "Default height in the UI", "Defaults", int, minimum=64, maximum=2048),
    "control_net_unit_count": OptionInfo(3, "ControlNet units per tab (from the next restart)", "ControlNet", int,
                                         minimum=1, maximum=10),
    "control_net_no_detectmap": OptionInfo(False, "Do not append the detected maps to the results", "ControlNet",
                                           bool),
    "control_net_model_cache_size": OptionInfo(2, "ControlNet models to keep in RAM", "ControlNet", int,
                                               minimum=0, maximum=10),
    "disabled_extensions": OptionInfo([EXAMPLE_EXTENSION], "Extensions switched off (from the next restart)",
                                      "Extensions", list, hidden=True),
    "disable_all_extensions": OptionInfo("none", "Switch off all extensions (extra: all but the built-in ones)",
                                         "Extensions", str, choices=("none", "extra", "all"), hidden=True),
}


MAX_VALUE_CHARS = 65_536  # an option value, as JSON

# A1111's options with A1111's defaults (configs/a1111_options.json): GET /options lists them and
# POST accepts them, so clients that round-trip or toggle them (send_seed...) work.
A1111_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    json.loads((Path(__file__).resolve().parents[1] / "configs" / "a1111_options.json").read_text("utf-8"))["options"]
)


def validate_a1111_option(key: str, value: Any) -> Any:
    """A value for one of A1111's options: its default's type, finite, JSON, at most 64 KiB."""
    if key not in A1111_DEFAULTS:
        raise OptionError(f"unknown option {key!r} (neither ours nor A1111's)")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise OptionError(f"option {key}: not a JSON value (or not a finite number)") from None
    if len(text) > MAX_VALUE_CHARS:
        raise OptionError(f"option {key}: the value is {len(text)} characters as JSON; the most is {MAX_VALUE_CHARS}")
    default = A1111_DEFAULTS[key]
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise OptionError(f"option {key}: expected true or false, got {value!r}")
    elif isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionError(f"option {key}: expected a number, got {value!r}")
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise OptionError(f"option {key}: expected text, got {value!r}")
    elif isinstance(default, list) and not isinstance(value, list):
        raise OptionError(f"option {key}: expected a list, got {value!r}")
    return value


# Options naming folders that images are written to: they must stay inside the allowed roots.
OUTPUT_FOLDER_OPTIONS = ("outdir_samples", "outdir_txt2img_samples", "outdir_txt2img_grids", "outdir_img2img_samples",
                         "outdir_img2img_grids", "outdir_extras_samples")


class OptionError(ValueError):
    """A bad option name or value; the message says which and why."""


class OptionSaveError(OptionError):
    """config.json could not be written (a full or read-only disk); the change was not made."""


class Options:
    """Persisted options with defaults, validation and change listeners. Thread-safe."""

    def __init__(self, path: Path):
        self._path = Path(path)
        self._lock = threading.RLock()  # guards values and listeners; held only briefly
        self._key_locks: dict[str, threading.RLock] = {}  # serialise updates of one key (see update)
        self._save_lock = threading.Lock()  # one writer of config.json at a time
        self._values: dict[str, Any] = {}
        self._listeners: dict[str, list[Callable[[Any], None]]] = {}
        self._registered: dict[str, OptionInfo] = {}  # extensions' options (add_option)
        self._unclaimed: dict[str, Any] = {}  # saved values of options no loaded extension declares (yet)
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
            if key not in OPTIONS and key not in A1111_DEFAULTS:
                self._unclaimed[key] = value  # an extension's: validated when it registers, kept meanwhile
                continue
            try:
                self._values[key] = self._validate(key, value)
            except OptionError as e:  # an old or hand-edited file: the default instead, and say so
                log.warning("config.json: %s; using the default", e)

    def register(self, key: str, info: OptionInfo) -> None:
        """Declare an extension's option; a value saved for it before is kept when it is valid."""
        if key in OPTIONS:
            raise OptionError(f"option {key!r} is SD Studio's own; an extension cannot redeclare it")
        with self._lock:
            self._registered[key] = info
            saved = self._unclaimed.pop(key, None)
        if saved is not None:
            try:
                value = self._validate(key, saved)
            except OptionError as e:
                log.warning("config.json: %s; using the default", e)
                return
            with self._lock:
                self._values[key] = value

    def infos(self) -> dict[str, OptionInfo]:
        """Every option with a declaration: ours, then the extensions' (in the order they were added)."""
        with self._lock:
            return {**OPTIONS, **self._registered}

    def _info(self, key: str) -> OptionInfo | None:
        with self._lock:
            return OPTIONS.get(key) or self._registered.get(key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_"):
            raise AttributeError(key)
        return self.get(key)

    def get(self, key: str) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
        info = self._info(key)
        if info is not None:
            return info.default
        if key in A1111_DEFAULTS:
            return A1111_DEFAULTS[key]
        raise AttributeError(f"unknown option {key!r}")

    def as_dict(self) -> dict[str, Any]:
        """Every option: A1111's (with its defaults), ours, as set."""
        with self._lock:
            declared = {**OPTIONS, **self._registered}
            return {**A1111_DEFAULTS, **{k: i.default for k, i in declared.items()}, **self._values}

    def on_change(self, key: str, listener: Callable[[Any], None]) -> None:
        with self._lock:
            self._listeners.setdefault(key, []).append(listener)

    def snapshot(self) -> "OptionsSnapshot":
        """Every option as it is now, frozen: what a job reads instead of the live options."""
        return OptionsSnapshot(self.as_dict())

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Validate all, then per key: save, run its listeners (which may refuse), apply.

        Returns the keys that changed. A change is in effect only once it is saved: when
        config.json cannot be written (a full or read-only disk) nothing of that key is applied
        and :class:`OptionSaveError` says why. A listener that refuses (a checkpoint that will not
        load) raises; its key keeps the old value, keys before it stay changed.

        Listeners run while no lock that readers take is held: a checkpoint listener may wait
        for the running job to finish with the model, and that job (or the progress endpoint)
        must still be able to read options meanwhile. Two updates of one key run one after the
        other; updates of other keys do not wait for them.
        """
        validated = {k: self._validate(k, v) for k, v in changes.items()}
        changed: list[str] = []
        for key, value in validated.items():
            with self._key_lock(key):  # never more than one held: no lock-order deadlock
                if self.get_or_none(key) == value:
                    continue
                self._save({key: value})
                with self._lock:
                    listeners = list(self._listeners.get(key, []))
                try:
                    for listener in listeners:
                        listener(value)
                except BaseException:
                    try:
                        self._save()  # back to the file without the refused value
                    except OptionSaveError as e:
                        log.error("%s", e)
                    raise
                with self._lock:
                    self._values[key] = value
                changed.append(key)
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
        info = self._info(key)
        if info is None:
            return validate_a1111_option(key, value)
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

    def _save(self, pending: dict[str, Any] | None = None) -> None:
        """Write config.json atomically (the values plus ``pending``); OptionSaveError on failure."""
        with self._save_lock:
            with self._lock:
                text = json.dumps({**self._unclaimed, **self._values, **(pending or {})}, indent=2, sort_keys=True,
                                  allow_nan=False)
            tmp = self._path.with_suffix(".json.tmp")
            try:
                self._path.parent.mkdir(parents=True, exist_ok=True)
                with tmp.open("w", encoding="utf-8") as f:
                    f.write(text)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self._path)
            except OSError as e:
                tmp.unlink(missing_ok=True)
                raise OptionSaveError(f"could not save {self._path.name} ({e.strerror or e}); "
                                      "nothing was changed") from None


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
