"""Command-line flags (A1111's names where A1111 has one) and the folders they lead to.

A1111 flags we do not support are answered with one sentence instead of an argparse error;
harmless ones (attention and precision tweaks our engine does by itself) are accepted and noted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MAX_BODY_MB = 64


@dataclass(frozen=True)
class CommandLine:
    listen: bool = False
    port: int = 7860
    api: bool = True
    data_dir: Path = REPO_ROOT
    models_dir: Path | None = None
    ckpt_dir: Path | None = None
    vae_dir: Path | None = None
    lora_dir: Path | None = None
    embeddings_dir: Path | None = None
    hypernetwork_dir: Path | None = None
    controlnet_dir: Path | None = None
    controlnet_annotator_models_path: Path | None = None
    esrgan_models_path: Path | None = None
    output_dirs: tuple[Path, ...] = ()
    ckpt: Path | None = None
    medvram: bool = False
    lowvram: bool = False
    no_half: bool = False
    device: str | None = None
    no_demo_model: bool = False
    gradio_auth: str | None = field(default=None, repr=False)
    gradio_auth_path: Path | None = None
    api_auth: str | None = field(default=None, repr=False)
    allowed_hosts: tuple[str, ...] | None = None  # None: the machine's own names and addresses
    max_body_mb: int = DEFAULT_MAX_BODY_MB
    disable_all_extensions: bool = False
    disable_extra_extensions: bool = False
    skip_install: bool = False
    enable_insecure_extension_access: bool = False
    notes: tuple[str, ...] = ()  # accepted A1111 flags that change nothing here
    # Flags that extensions' preload.py added (dest -> value); not hashed, so CommandLine stays hashable.
    extension_flags: dict[str, Any] = field(default_factory=dict, hash=False)
    preload_errors: tuple[tuple[str, str], ...] = ()  # (extension, one-line error)

    @property
    def host(self) -> str:
        return "0.0.0.0" if self.listen else "127.0.0.1"


class UnsupportedFlag(SystemExit):
    """An A1111 flag we refuse, with the sentence that says why (exit status 2)."""


# A1111 flags we refuse, and why.
_REFUSED = {
    "--share": "--share is not supported: SD Studio never opens a public tunnel. Use --listen to serve your LAN "
               "(with logins: see docs/lan.md).",
    "--ngrok": "--ngrok is not supported: SD Studio opens no tunnels. Use --listen on your LAN.",
    "--cloudflared": "--cloudflared is not supported: SD Studio opens no tunnels. Use --listen on your LAN.",
    "--localhostrun": "--localhostrun is not supported: SD Studio opens no tunnels. Use --listen on your LAN.",
    "--disable-safe-unpickle": "--disable-safe-unpickle is refused: checkpoints are never unpickled with code "
                               "execution here. Convert the file to .safetensors from a trusted source.",
}
# A1111 flags accepted as no-ops: (takes a value, what happens instead).
_IGNORED = {
    "--opt-sdp-attention": (False, "PyTorch SDPA attention is always used"),
    "--opt-sdp-no-mem-attention": (False, "PyTorch SDPA attention is always used"),
    "--opt-split-attention": (False, "PyTorch SDPA attention is always used"),
    "--no-half-vae": (False, "an SDXL VAE in fp16 is decoded in fp32 by itself"),
    "--upcast-sampling": (False, "not needed with fp16 on CUDA"),
    "--precision": (True, "fp16 on CUDA, fp32 on the CPU (--no-half for fp32 everywhere)"),
    "--autolaunch": (False, "open the address printed at start"),
    "--theme": (True, "the UI follows the browser's light/dark preference"),
    "--skip-torch-cuda-test": (False, "the CPU is used when there is no CUDA device"),
    "--skip-python-version-check": (False, "launch.py checks the version"),
    "--skip-version-check": (False, "launch.py checks the version"),
    "--no-download-sd-model": (False, "nothing is ever downloaded"),
    "--update-check": (False, "nothing is ever downloaded"),
    "--xformers": (False, "xformers is installed but attention uses PyTorch SDPA"),
}


def _screen_a1111_flags(argv: list[str]) -> tuple[list[str], tuple[str, ...]]:
    """Refuse unsupported A1111 flags with a sentence; drop accepted no-ops (returning notes)."""
    kept, notes = [], []
    skip_value = False
    for arg in argv:
        if skip_value:
            skip_value = False
            continue
        name = arg.split("=", 1)[0]
        if name in _REFUSED:
            raise UnsupportedFlag(_REFUSED[name])
        if name == "--xformers" and importlib.util.find_spec("xformers") is None:
            raise UnsupportedFlag("--xformers: xformers is not installed. Run `python3 launch.py --xformers` once "
                                  "(NVIDIA GPUs only); PyTorch SDPA attention is used meanwhile.")
        if name in _IGNORED:
            takes_value, instead = _IGNORED[name]
            skip_value = takes_value and "=" not in arg
            notes.append(f"{name} accepted and ignored: {instead}")
            continue
        kept.append(arg)
    return kept, tuple(notes)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one sentence, not argparse's usage dump
        raise UnsupportedFlag(f"{message}. `python3 launch.py --help` lists the flags SD Studio takes.")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="webui", description="Stable Diffusion studio server")
    add = parser.add_argument
    add("--listen", action="store_true", help="serve on 0.0.0.0 (the LAN), not only 127.0.0.1; see docs/lan.md")
    add("--port", type=int, default=7860)
    add("--api", action="store_true", help="accepted for A1111 compatibility; the API is always on")
    add("--data-dir", type=Path, default=Path(os.environ.get("WEBUI_DATA_DIR", REPO_ROOT)),
        help="config, users, jobs, caches, outputs and models/ live here")
    add("--models-dir", type=Path, default=None, help="the models/ tree (default <data-dir>/models), e.g. an A1111 one")
    add("--ckpt-dir", type=Path, default=None, help="checkpoints (default <models-dir>/Stable-diffusion)")
    add("--vae-dir", type=Path, default=None, help="VAEs (default <models-dir>/VAE)")
    add("--lora-dir", type=Path, default=None, help="LoRAs (default <models-dir>/Lora)")
    add("--embeddings-dir", type=Path, default=None, help="embeddings (default <models-dir>/embeddings)")
    add("--hypernetwork-dir", type=Path, default=None, help="hypernetworks (default <models-dir>/hypernetworks)")
    add("--controlnet-dir", type=Path, default=None, help="ControlNet models (default <models-dir>/ControlNet)")
    add("--controlnet-annotator-models-path", type=Path, default=None,
        help="ControlNet preprocessor (annotator) weights (default <ControlNet dir>/annotators)")
    add("--esrgan-models-path", type=Path, default=None, help="upscaler models (default <models-dir>/ESRGAN)")
    add("--allow-output-dir", type=Path, action="append", default=[], metavar="DIR",
        help="a folder outside the data dir that output-folder settings may name (repeatable)")
    add("--ckpt", type=Path, default=None, help="checkpoint to load at start")
    add("--medvram", action="store_true", help="keep only the active component on the GPU")
    add("--lowvram", action="store_true", help="stream weights to the GPU layer by layer")
    add("--no-half", action="store_true", help="fp32 weights even on CUDA")
    add("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add("--no-demo-model", action="store_true", help="do not write the demo checkpoint")
    add("--gradio-auth", default=None, metavar="USER:PASS[,USER:PASS]", help="admin logins (A1111's flag)")
    add("--gradio-auth-path", type=Path, default=None, metavar="FILE", help="a file of user:pass entries (A1111's)")
    add("--api-auth", default=None, metavar="USER:PASS[,USER:PASS]", help="admin logins for the API (A1111's flag)")
    add("--allowed-hosts", default=None, metavar="HOST[,HOST]",
        help="host names the server answers to (default: its own names and addresses); * for any")
    add("--max-body-mb", type=int, default=DEFAULT_MAX_BODY_MB, help="largest request body, in MiB")
    add("--disable-all-extensions", action="store_true", help="load no extension, built-in ones included")
    add("--disable-extra-extensions", action="store_true", help="load only the built-in extensions")
    add("--skip-install", action="store_true", help="never run extensions' install.py")
    add("--enable-insecure-extension-access", action="store_true",
        help="allow installing, updating and removing extensions (admins only) even when serving the LAN "
             "with --listen; extensions run arbitrary code on this machine")
    return parser


def _extension_config(data_dir: Path) -> tuple[list[str], str]:
    """config.json's disabled_extensions and disable_all_extensions (or their defaults), read before
    settings exist."""
    from webui.settings import OPTIONS

    default = list(OPTIONS["disabled_extensions"].default)
    try:
        config = json.loads((data_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default, "none"
    if not isinstance(config, dict):
        return default, "none"
    disabled = config.get("disabled_extensions", default)
    return [str(n) for n in disabled] if isinstance(disabled, list) else default, str(config.get("disable_all_extensions"))


def _run_extension_preloads(parser: argparse.ArgumentParser, args: list[str]) -> dict[str, str]:
    """Let enabled extensions add their flags (A1111's preload.py) before the full parse."""
    from webui.plugins.extensions import disable_all_mode, discover
    from webui.plugins.preload import run_preloads

    # Only --data-dir and the disable flags matter here; --help waits for the full parse, which
    # then lists the extensions' flags too.
    known, _ = parser.parse_known_args([a for a in args if a not in ("-h", "--help")])
    data_dir = Path(known.data_dir)
    disabled, configured = _extension_config(data_dir)
    mode = disable_all_mode(configured, disable_all=known.disable_all_extensions,
                            disable_extra=known.disable_extra_extensions)
    extensions = discover(data_dir / "extensions", disabled=disabled, disable_all=mode, read_git=False)
    return run_preloads(extensions, parser)


def parse_args(argv: Sequence[str] | None = None) -> CommandLine:
    args, notes = _screen_a1111_flags(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    ours = set(vars(parser.parse_args([])))
    preload_errors = _run_extension_preloads(parser, args)
    ns = parser.parse_args(args)  # unknown flags are still one sentence (_Parser.error)
    hosts = None if ns.allowed_hosts is None else tuple(h.strip() for h in ns.allowed_hosts.split(",") if h.strip())
    return CommandLine(
        listen=ns.listen, port=ns.port, api=True, data_dir=ns.data_dir.resolve(), models_dir=ns.models_dir,
        ckpt_dir=ns.ckpt_dir, vae_dir=ns.vae_dir, lora_dir=ns.lora_dir, embeddings_dir=ns.embeddings_dir,
        hypernetwork_dir=ns.hypernetwork_dir, controlnet_dir=ns.controlnet_dir,
        controlnet_annotator_models_path=ns.controlnet_annotator_models_path,
        esrgan_models_path=ns.esrgan_models_path, output_dirs=tuple(p.resolve() for p in ns.allow_output_dir),
        ckpt=ns.ckpt, medvram=ns.medvram, lowvram=ns.lowvram, no_half=ns.no_half, device=ns.device,
        no_demo_model=ns.no_demo_model, gradio_auth=ns.gradio_auth, gradio_auth_path=ns.gradio_auth_path,
        api_auth=ns.api_auth, allowed_hosts=hosts, max_body_mb=max(1, ns.max_body_mb), notes=notes,
        disable_all_extensions=ns.disable_all_extensions, disable_extra_extensions=ns.disable_extra_extensions,
        skip_install=ns.skip_install, enable_insecure_extension_access=ns.enable_insecure_extension_access,
        extension_flags={k: v for k, v in vars(ns).items() if k not in ours},
        preload_errors=tuple(preload_errors.items()),
    )


def relative_to_roots(path: Path, roots: Sequence[Path]) -> str:
    """``path`` relative to the first of ``roots`` that holds it (its bare name when none does)."""
    for root in roots:
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            continue
    return Path(path).name


class OutsideFolder(ValueError):
    """An output folder setting that points outside the data dir and the admin's allowed folders."""


@dataclass(frozen=True)
class Paths:
    """Where things live, all derived from the flags (A1111's layout under the data dir)."""

    data_dir: Path
    models_dir: Path
    ckpt_dir: Path
    vae_dir: Path
    lora_dir: Path
    embeddings_dir: Path
    hypernetwork_dir: Path
    controlnet_dir: Path
    annotators_dir: Path
    esrgan_dir: Path
    output_roots: tuple[Path, ...]

    @classmethod
    def from_cmd(cls, cmd: CommandLine) -> "Paths":
        data = cmd.data_dir.resolve()
        models = (cmd.models_dir or data / "models").resolve()
        return cls(
            data_dir=data,
            models_dir=models,
            ckpt_dir=(cmd.ckpt_dir or models / "Stable-diffusion").resolve(),
            vae_dir=(cmd.vae_dir or models / "VAE").resolve(),
            lora_dir=(cmd.lora_dir or models / "Lora").resolve(),
            embeddings_dir=(cmd.embeddings_dir or models / "embeddings").resolve(),
            hypernetwork_dir=(cmd.hypernetwork_dir or models / "hypernetworks").resolve(),
            controlnet_dir=(cmd.controlnet_dir or models / "ControlNet").resolve(),
            annotators_dir=(cmd.controlnet_annotator_models_path
                            or (cmd.controlnet_dir or models / "ControlNet") / "annotators").resolve(),
            esrgan_dir=(cmd.esrgan_models_path or models / "ESRGAN").resolve(),
            output_roots=(data, *(Path(p).resolve() for p in cmd.output_dirs)),
        )

    @property
    def extensions_dir(self) -> Path:
        return self.data_dir / "extensions"

    @property
    def config_file(self) -> Path:
        return self.data_dir / "config.json"

    @property
    def cache_file(self) -> Path:
        return self.data_dir / "cache.json"

    def network_folders(self) -> dict[str, list[Path]]:
        """Per kind, the folders scanned (A1111 also reads ``<data dir>/embeddings`` and LyCORIS)."""
        return {
            "embedding": [self.embeddings_dir, self.data_dir / "embeddings"],
            "lora": [self.lora_dir, self.models_dir / "LyCORIS"],
            "hypernetwork": [self.hypernetwork_dir],
        }

    def outputs(self, folder: str) -> Path:
        """An output-folder setting as a path, which must stay inside an allowed root."""
        path = Path(folder)
        resolved = (path if path.is_absolute() else self.data_dir / path).resolve()
        if not any(resolved == root or root in resolved.parents for root in self.output_roots):
            roots = ", ".join(str(r) for r in self.output_roots)
            raise OutsideFolder(f"the output folder {folder!r} is outside the data dir and the allowed folders ({roots})")
        return resolved

    def output_folder(self, options: Any, key: str) -> Path:
        """Where the images of output setting ``key`` (``outdir_txt2img_samples``...) go: that folder, or
        when "Output folder for all images" (``outdir_samples``) is set, its namesake inside that one."""
        shared = options.get("outdir_samples")
        folder = str(Path(shared) / Path(options.get(key)).name) if shared else options.get(key)
        return self.outputs(folder)
