"""The one entry point the engine calls: apply a job's LoRAs, embeddings and hypernetworks.

    with applied_networks(pipe, spec, refs, texts, catalog, hashes) as nets:
        prompt = nets.expand(prompt)          # embedding names → their added tokens
        ...encode (keep ids in nets.embedding_token_ids in one chunk), generate...
        infotext.update(nets.infotext)        # "Lora hashes", "TI hashes"
        warnings += nets.notes                # missing names, skipped files, with reasons

Everything applied is removed when the block ends, also when the job raised. Nothing here
raises for a missing name or a bad file: those become notes.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from webui.models.hashes import HashCache
from webui.models.safe_load import CheckpointError
from webui.networks.catalog import NetworkCatalog
from webui.networks.hypernetwork import (
    Hypernetwork,
    applied_hypernetworks,
    load_hypernetwork,
)
from webui.networks.lora import LoraJob, applied_loras, lora_hash, parse_lora_args
from webui.networks.textual_inversion import (
    AppliedEmbeddings,
    Embedding,
    applied_embeddings,
    embedding_hash,
    mentioned,
    read_embedding,
)
from webui.networks.versions import hypernetwork_version, lora_version, model_version

log = logging.getLogger(__name__)

LORA_KINDS = ("lora", "lyco")  # A1111 (1.5+) accepts <lyco:...> as an alias of <lora:...>
HYPERNET_KINDS = ("hypernet",)


class NetworkRef(Protocol):
    """What the prompt parser gives for ``<kind:name:arg:...>``."""

    kind: str
    name: str
    args: tuple[str, ...]


@dataclass
class AppliedNetworks:
    infotext: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    embedding_token_ids: frozenset[int] = frozenset()
    loras: list[str] = field(default_factory=list)  # names as written, of the LoRAs in use
    embeddings: list[str] = field(default_factory=list)
    hypernetworks: list[str] = field(default_factory=list)
    _embeddings: AppliedEmbeddings | None = None

    def expand(self, text: str) -> str:
        """Rewrite embedding names in ``text`` into the tokens that carry their vectors."""
        return self._embeddings.expand(text) if self._embeddings is not None else text


def _clean(name: str) -> str:
    # A1111 drops ":" and "," from names in its hash lists.
    return name.replace(":", "").replace(",", "")


def _hash_or_note(fn, path, notes: list[str], what: str) -> str | None:
    try:
        return fn()
    except OSError as e:
        notes.append(f"{what}: could not hash {path.name} ({e})")
        return None


@contextlib.contextmanager
def applied_networks(
    pipe,
    spec,
    refs: Sequence[NetworkRef],
    texts: Sequence[str],
    catalog: NetworkCatalog,
    hashes: HashCache,
) -> Iterator[AppliedNetworks]:
    result = AppliedNetworks()
    notes = result.notes

    # --- LoRA and hypernetwork references ---------------------------------------------------------
    lora_jobs: list[LoraJob] = []
    hyper_jobs: list[tuple[str, float, object]] = []
    seen_loras: set[str] = set()
    for ref in refs:
        kind = str(getattr(ref, "kind", "")).lower()
        name = str(getattr(ref, "name", "")).strip()
        args = tuple(getattr(ref, "args", ()) or ())
        if kind in LORA_KINDS:
            if name in seen_loras:
                continue  # A1111 applies a repeated <lora:x> once (the first one's weights)
            file = catalog.find("lora", name)
            if file is None:
                notes.append(f"Lora not found: {name}")  # A1111's wording
                continue
            try:
                strength = parse_lora_args(args)
            except ValueError as e:
                notes.append(f"LoRA {name}: {e}; ignored")
                continue
            seen_loras.add(name)
            made_for, loaded = lora_version(file.path), model_version(spec.family)
            if made_for is not None and made_for != loaded:
                notes.append(f"LoRA {name}: made for {made_for}, the loaded model is {loaded}; not applied")
                continue
            lora_jobs.append(LoraJob(name=name, path=file.path, strength=strength))
        elif kind in HYPERNET_KINDS:
            file = catalog.find("hypernetwork", name)
            if file is None:
                notes.append(f"Hypernetwork not found: {name}")
                continue
            try:
                strength = float(args[0]) if args and str(args[0]).strip() else 1.0
            except ValueError:
                strength = math.nan
            if not math.isfinite(strength):  # nan/inf would turn every pixel black
                notes.append(f"Hypernetwork {name}: weight {args[0]!r} is not a finite number; ignored")
                continue
            hyper_jobs.append((name, strength, file))
        else:
            notes.append(f"unsupported extra network <{kind}:{name}> ignored")

    # --- hypernetworks: read before anything touches the model -----------------------------------
    hypernets: list[tuple[Hypernetwork, float]] = []
    unet_widths = _attention_widths(getattr(pipe, "unet", None))
    for name, strength, file in hyper_jobs:
        try:
            net = load_hypernetwork(file.path, name=name)
        except CheckpointError as e:
            catalog.refused.refuse(file.path, str(e))
            notes.append(f"Hypernetwork {name}: skipped ({e})")
            continue
        except Exception as e:  # a malformed but safely-read file
            catalog.refused.refuse(file.path, f"{file.path.name}: {e}")
            notes.append(f"Hypernetwork {name}: skipped ({file.path.name}: {e})")
            continue
        widths = set(net.layers)
        if unet_widths and not widths & unet_widths:
            made_for = hypernetwork_version(widths) or "another model"
            notes.append(f"Hypernetwork {name}: made for {made_for} (widths {sorted(widths)}), "
                         f"the loaded model is {model_version(spec.family)}; not applied")
            continue
        hypernets.append((net, strength))

    # --- embeddings mentioned in any text ---------------------------------------------------------
    embeddings: list[Embedding] = []
    for file in catalog.list("embedding"):
        if not mentioned(file.name, texts):
            continue
        try:
            embeddings.append(read_embedding(file.path, name=file.name))
        except CheckpointError as e:
            catalog.refused.refuse(file.path, str(e))
            notes.append(f"Embedding {file.name}: skipped ({e})")
        except Exception as e:
            catalog.refused.refuse(file.path, f"{file.path.name}: {e}")
            notes.append(f"Embedding {file.name}: skipped ({file.path.name}: {e})")

    with contextlib.ExitStack() as stack:
        loras = stack.enter_context(applied_loras(pipe, lora_jobs, on_refused=catalog.refused.refuse))
        notes.extend(loras.notes)
        embs = stack.enter_context(applied_embeddings(pipe, embeddings))
        for name, reason in embs.skipped.items():
            notes.append(f"Embedding {name}: skipped ({reason})")
        unet = getattr(pipe, "unet", None)
        if hypernets and unet is None:
            notes.append("Hypernetworks need a UNet model; ignored")
            hypernets = []
        stack.enter_context(applied_hypernetworks(unet, hypernets) if hypernets else contextlib.nullcontext())

        result._embeddings = embs
        result.embedding_token_ids = embs.token_ids
        result.loras = [job.name for job in loras.applied]
        result.embeddings = [emb.name for emb in embs.loaded]
        result.hypernetworks = [net.name for net, _ in hypernets]

        lora_line = _hash_line([(j.name, j.path) for j in loras.applied], lambda p: lora_hash(p, hashes), "LoRA", notes)
        ti_line = _hash_line([(e.name, e.path) for e in embs.loaded], lambda p: embedding_hash(p, hashes), "Embedding", notes)
        for key, line in (("Lora hashes", lora_line), ("TI hashes", ti_line)):
            if line:
                result.infotext[key] = line
        yield result


def _attention_widths(unet) -> set[int]:
    """The context widths a hypernetwork can hook: self-attention per block, cross-attention."""
    if unet is None:
        return set()
    config = unet.config
    return {*config.block_out_channels, int(config.cross_attention_dim)}


def _hash_line(items: list[tuple[str, object]], hasher, label: str, notes: list[str]) -> str | None:
    """A1111's "name: hash, name: hash" value; a file that cannot be hashed becomes a note."""
    entries = []
    for name, path in items:
        value = _hash_or_note(lambda: hasher(path), path, notes, f"{label} {name}")
        if value:
            entries.append(f"{_clean(name)}: {value}")
    return ", ".join(entries) or None
