"""A1111 hypernetworks (.pt): read safely, build the MLPs as A1111 does, hook UNet attention.

File layout (A1111's ``Hypernetwork.save``): a dict with int keys (a feature width) mapping to
``(k_module_state, v_module_state)``, plus ``layer_structure`` (e.g. [1, 2, 1]),
``activation_func``, ``is_layer_norm``, ``use_dropout``, ``dropout_structure``,
``last_layer_dropout``, ``activate_output``, ``name``, ``step`` and a few informational keys.

Each module is ``x + mlp(x) * strength``. For every attention layer of the UNet (self-attention
and cross-attention, as A1111), the context that feeds ``to_k``/``to_v`` goes through the k/v
module chosen by the context's last dimension; the query is untouched. Several hypernetworks
chain in order. Applying swaps the UNet's attention processors for wrappers; removing puts the
saved processor objects back, so the model is exactly as before.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from webui.models.safe_load import CheckpointError, first_error_line, read_torch_dict

# A1111's table: a few explicit names, then every torch.nn activation class by its lower-case name.
_ACTIVATIONS: dict[str, type[torch.nn.Module]] = {
    name.lower(): cls
    for name, cls in vars(torch.nn.modules.activation).items()
    if isinstance(cls, type) and issubclass(cls, torch.nn.Module) and cls.__module__ == "torch.nn.modules.activation"
}
_ACTIVATIONS.update({
    "linear": torch.nn.Identity, "relu": torch.nn.ReLU, "leakyrelu": torch.nn.LeakyReLU, "elu": torch.nn.ELU,
    "swish": torch.nn.Hardswish, "tanh": torch.nn.Tanh, "sigmoid": torch.nn.Sigmoid,
})
# Old files named the first two Linear layers linear1/linear2.
_OLD_KEYS = {"linear1.weight": "linear.0.weight", "linear1.bias": "linear.0.bias",
             "linear2.weight": "linear.1.weight", "linear2.bias": "linear.1.bias"}


class HypernetworkModule(torch.nn.Module):
    """One residual MLP: ``x + linear(x) * multiplier``."""

    def __init__(self, linear: torch.nn.Sequential):
        super().__init__()
        self.linear = linear
        self.multiplier = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.linear(x) * self.multiplier


def dropout_structure(layer_structure: Sequence[float], use_dropout: bool, last_layer_dropout: bool) -> list[float]:
    """A1111's dropout placement for files that store only ``use_dropout``."""
    if not use_dropout:
        return [0.0] * len(layer_structure)
    return [0.0] + [0.3] * (len(layer_structure) - 3) + [0.3 if last_layer_dropout else 0.0] + [0.0]


def build_module(
    dim: int,
    layer_structure: Sequence[float],
    activation: str | None,
    layer_norm: bool,
    activate_output: bool,
    dropout: Sequence[float] | None,
) -> HypernetworkModule:
    """The module A1111 builds; layer indices (and so state-dict keys) match A1111's."""
    if len(layer_structure) < 2 or float(layer_structure[0]) != 1 or float(layer_structure[-1]) != 1:
        raise CheckpointError(f"layer_structure must start and end with 1, got {list(layer_structure)}")
    layers: list[torch.nn.Module] = []
    last = len(layer_structure) - 2
    for i in range(len(layer_structure) - 1):
        layers.append(torch.nn.Linear(int(dim * layer_structure[i]), int(dim * layer_structure[i + 1])))
        if activation not in (None, "linear") and (i < last or activate_output):
            cls = _ACTIVATIONS.get(str(activation).lower())
            if cls is None:
                raise CheckpointError(f"unsupported activation function {activation!r}")
            layers.append(cls())
        if layer_norm:
            layers.append(torch.nn.LayerNorm(int(dim * layer_structure[i + 1])))
        if dropout is not None and i + 1 < len(dropout) and dropout[i + 1] > 0:
            layers.append(torch.nn.Dropout(p=float(dropout[i + 1])))
    return HypernetworkModule(torch.nn.Sequential(*layers))


@dataclass
class Hypernetwork:
    name: str
    path: Path
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]]
    step: int | None = None

    def set_multiplier(self, value: float) -> None:
        for k_module, v_module in self.layers.values():
            k_module.multiplier = value
            v_module.multiplier = value


def read_hypernetwork_file(path: Path) -> dict:
    """The raw dict of an A1111 hypernetwork .pt, read with ``weights_only=True`` (never runs code)."""
    return read_torch_dict(path, "hypernetwork")


def load_hypernetwork(path: Path, name: str | None = None) -> Hypernetwork:
    """Build the modules of an A1111 hypernetwork file; CheckpointError names the problem."""
    path = Path(path)
    data = read_hypernetwork_file(path)
    layer_structure = data.get("layer_structure") or [1, 2, 1]
    try:
        layer_structure = [float(x) for x in layer_structure]
    except (TypeError, ValueError):
        raise CheckpointError(f"{path.name}: bad layer_structure {layer_structure!r}") from None
    activation = data.get("activation_func")
    layer_norm = bool(data.get("is_layer_norm", False))
    activate_output = bool(data.get("activate_output", True))
    dropout = data.get("dropout_structure")
    use_dropout = bool(dropout and any(dropout)) or bool(data.get("use_dropout", False))
    if dropout is None:
        dropout = dropout_structure(layer_structure, use_dropout, bool(data.get("last_layer_dropout", False)))
    layers: dict[int, tuple[HypernetworkModule, HypernetworkModule]] = {}
    for key, value in data.items():
        if not isinstance(key, int) or isinstance(key, bool):
            continue
        if not isinstance(value, (tuple, list)) or len(value) != 2 or not all(isinstance(s, dict) for s in value):
            raise CheckpointError(f"{path.name}: entry {key} is not a (k, v) pair of module states")
        pair = []
        for state in value:
            module = build_module(key, layer_structure, activation, layer_norm, activate_output, dropout)
            state = {_OLD_KEYS.get(k, k): v for k, v in state.items()}
            if not all(isinstance(v, torch.Tensor) for v in state.values()):
                raise CheckpointError(f"{path.name}: entry {key} holds non-tensor values")
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as e:
                raise CheckpointError(f"{path.name}: width {key} does not match its layer structure ({first_error_line(e)})") from None
            module.eval().requires_grad_(False)
            pair.append(module)
        layers[key] = (pair[0], pair[1])
    if not layers:
        raise CheckpointError(f"{path.name}: no hypernetwork layers (no integer width keys)")
    step = data.get("step")
    return Hypernetwork(name=name or path.stem, path=path, layers=layers, step=step if isinstance(step, int) else None)


class _HyperAttention:
    """Stands in for an Attention module inside its processor: to_k/to_v see the hypernetwork context."""

    def __init__(self, attn, nets: Sequence[Hypernetwork]):
        self._attn = attn
        self._nets = nets

    def __getattr__(self, name):
        return getattr(self._attn, name)

    def _context(self, ctx: torch.Tensor, which: int) -> torch.Tensor:
        out = ctx
        for net in self._nets:
            pair = net.layers.get(out.shape[-1])
            if pair is None:
                continue
            module = pair[which]
            # A1111 runs hypernetworks in float32 and casts back (devices.cond_cast_float/unet).
            out = module(out.float()).to(ctx.dtype)
        return out

    def to_k(self, ctx: torch.Tensor) -> torch.Tensor:
        return self._attn.to_k(self._context(ctx, 0))

    def to_v(self, ctx: torch.Tensor) -> torch.Tensor:
        return self._attn.to_v(self._context(ctx, 1))


class HypernetworkProcessor:
    """Wraps an attention processor; the wrapped one does the attention itself."""

    def __init__(self, inner, nets: Sequence[Hypernetwork]):
        self.inner = inner
        self.nets = list(nets)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kwargs):
        return self.inner(
            _HyperAttention(attn, self.nets), hidden_states,
            encoder_hidden_states=encoder_hidden_states, attention_mask=attention_mask, temb=temb, **kwargs,
        )


@contextlib.contextmanager
def applied_hypernetworks(unet, nets: Sequence[tuple[Hypernetwork, float]]) -> Iterator[None]:
    """Hook ``nets`` (each with its strength) into every attention layer of ``unet`` for the block."""
    active = []
    param = next(unet.parameters())
    for net, strength in nets:
        if strength == 0:
            continue  # x + mlp(x)·0 is x: skip the work
        for k_module, v_module in net.layers.values():
            k_module.to(device=param.device, dtype=torch.float32)
            v_module.to(device=param.device, dtype=torch.float32)
        net.set_multiplier(float(strength))
        active.append(net)
    if not active:
        yield
        return
    saved = dict(unet.attn_processors)
    try:
        unet.set_attn_processor({name: HypernetworkProcessor(proc, active) for name, proc in saved.items()})
        yield
    finally:
        unet.set_attn_processor(saved)
