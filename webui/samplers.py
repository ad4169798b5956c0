"""A1111 sampler and schedule-type names, mapped onto diffusers schedulers.

The table below is the single source of truth: each :class:`SamplerSpec` names the A1111 sampler,
its aliases, the diffusers scheduler class, the constructor overrides that make that class behave
like A1111's sampler, the schedule "Automatic" stands for, and the schedule types the class can
really express.

Schedule types
--------------
``Automatic`` means the sampler's own default, as A1111 >= 1.9 defines it in
``modules/sd_samplers_kdiffusion.py`` (the ``'scheduler'`` option of each sampler): Karras for
DPM++ 2M, DPM++ SDE, DPM++ 2S a, DPM2 and DPM2 a; Exponential for DPM++ 2M SDE (+ Heun) and
DPM++ 3M SDE; otherwise the model's own uniform schedule (shown here as ``Uniform``).

The other types map to diffusers constructor arguments: Karras -> ``use_karras_sigmas``,
Exponential -> ``use_exponential_sigmas``, Beta -> ``use_beta_sigmas``, SGM Uniform ->
``timestep_spacing="trailing"``; Uniform adds nothing.

Policy for combinations a scheduler cannot express
--------------------------------------------------
Each sampler lists the schedule types it accepts. Anything else raises
:class:`UnsupportedSchedule` (a ``ValueError``) whose message names the allowed types; nothing is
silently ignored. The list is checked against the diffusers class's ``__init__`` signature (the
argument a schedule needs must exist) both in the tests and again in :func:`make_scheduler`, which
also verifies that every override actually landed in the built scheduler's config. This means some
combinations A1111 accepts are refused here:

* ``Euler a`` only takes Uniform / SGM Uniform: diffusers' ``EulerAncestralDiscreteScheduler`` has
  no Karras/Exponential/Beta sigmas (A1111 allows e.g. "Euler a" + Karras).
* ``DPM++ 2S a`` has no SGM Uniform: ``DPMSolverSinglestepScheduler`` has no ``timestep_spacing``.
* ``DDIM`` and ``PLMS`` take Uniform / SGM Uniform; ``LCM`` takes Uniform only. A1111 ignores the
  schedule type for its timestep-based samplers (DDIM, PLMS, UniPC); we refuse sigma schedules for
  DDIM/PLMS/LCM rather than pretend to apply them.
* ``UniPC`` accepts every type diffusers implements for it (A1111 would ignore them).

Timestep spacing
----------------
SD1/SD2/SDXL scheduler configs ship ``timestep_spacing="leading"``, which starts a k-diffusion
style sampler at sigma 8.39 (20 steps) instead of A1111's 14.61. The k-diffusion family (Euler,
Euler a, LMS, Heun, DPM2, DPM2 a, DPM++ *) therefore gets ``timestep_spacing="linspace"``, which
reproduces A1111's ``get_sigmas`` (linspace of t from 999 to 0). DDIM and PLMS get ``"leading"``
with ``steps_offset=1``, which equals A1111's ``range(0, 1000, 1000 // steps) + 1`` timesteps.

Not imported at module level: diffusers. Looking names up (``resolve``, the API lists) is cheap;
only :func:`make_scheduler` imports diffusers.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from diffusers import SchedulerMixin

__all__ = [
    "SAMPLERS",
    "SCHEDULES",
    "SCHEDULE_TYPES",
    "SamplerSpec",
    "ScheduleType",
    "UnknownSampler",
    "UnknownSchedule",
    "UnsupportedSchedule",
    "api_sampler_list",
    "api_scheduler_list",
    "find_sampler",
    "find_schedule",
    "infotext_schedule_label",
    "init_params",
    "make_scheduler",
    "resolve",
    "scheduler_overrides",
    "split_combined_name",
]


class UnknownSampler(ValueError):
    """A sampler name (or sampler + schedule combination) that cannot be used."""


class UnknownSchedule(UnknownSampler):
    """A schedule type name that is not known at all."""


class UnsupportedSchedule(UnknownSampler):
    """A known schedule type that the chosen sampler's diffusers scheduler cannot express."""


@dataclass(frozen=True)
class ScheduleType:
    name: str  # A1111's machine name, e.g. "sgm_uniform"
    label: str  # A1111's label, e.g. "SGM Uniform"; what infotexts carry
    aliases: tuple[str, ...] = ()
    default_rho: float = -1.0
    need_inner_model: bool = False
    # diffusers constructor overrides that select this schedule
    overrides: Mapping[str, object] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def required_params(self) -> tuple[str, ...]:
        return tuple(self.overrides)


def _frozen(d: Mapping[str, object]) -> Mapping[str, object]:
    return MappingProxyType(dict(d))


# Order, names, labels, aliases, default_rho and need_inner_model as in A1111's
# modules/sd_schedulers.py (only the types diffusers can express are listed).
SCHEDULES: tuple[ScheduleType, ...] = (
    ScheduleType("automatic", "Automatic"),
    ScheduleType("uniform", "Uniform", need_inner_model=True),
    ScheduleType("karras", "Karras", default_rho=7.0, overrides=_frozen({"use_karras_sigmas": True})),
    ScheduleType("exponential", "Exponential", overrides=_frozen({"use_exponential_sigmas": True})),
    ScheduleType(
        "sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True,
        overrides=_frozen({"timestep_spacing": "trailing"}),
    ),
    ScheduleType("beta", "Beta", need_inner_model=True, overrides=_frozen({"use_beta_sigmas": True})),
)
SCHEDULE_TYPES: tuple[str, ...] = tuple(s.label for s in SCHEDULES)

# Flags a base config may carry (e.g. a model repo shipping use_karras_sigmas: true); they are
# reset so that "Uniform" really is uniform.
_SIGMA_FLAGS = ("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas")


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    aliases: tuple[str, ...]
    scheduler_class: str  # attribute name in the diffusers package
    kwargs: Mapping[str, object]  # constructor overrides applied on top of the model's config
    default_schedule: str  # label "Automatic" resolves to
    schedules: tuple[str, ...]  # labels accepted besides "Automatic"
    options: Mapping[str, str]  # A1111's sampler options, as GET /sdapi/v1/samplers shows them
    note: str = ""

    @property
    def allowed_schedules(self) -> tuple[str, ...]:
        return ("Automatic", *self.schedules)


_K_ALL = ("Uniform", "Karras", "Exponential", "SGM Uniform", "Beta")
_LINSPACE = {"timestep_spacing": "linspace"}
_A1111_TIMESTEPS = {"timestep_spacing": "leading", "steps_offset": 1}
_T = "True"  # A1111's API serialises option values as strings


def _spec(
    name: str,
    aliases: tuple[str, ...],
    cls: str,
    kwargs: Mapping[str, object],
    default: str,
    schedules: tuple[str, ...],
    options: Mapping[str, str],
    note: str = "",
) -> SamplerSpec:
    return SamplerSpec(name, aliases, cls, _frozen(kwargs), default, schedules, _frozen(options), note)  # type: ignore[arg-type]


# Order, names, aliases, options and defaults as in A1111 >= 1.9 (sd_samplers_kdiffusion.py,
# sd_samplers_timesteps.py, sd_samplers_lcm.py). A1111's "DPM fast", "DPM adaptive", "Restart"
# and "DDIM CFG++" have no diffusers counterpart and are not offered.
SAMPLERS: tuple[SamplerSpec, ...] = (
    _spec("DPM++ 2M", ("k_dpmpp_2m",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "dpmsolver++", "solver_order": 2},
          "Karras", _K_ALL, {"scheduler": "karras"}),
    _spec("DPM++ SDE", ("k_dpmpp_sde",), "DPMSolverSDEScheduler", _LINSPACE,
          "Karras", _K_ALL, {"scheduler": "karras", "second_order": _T, "brownian_noise": _T}),
    _spec("DPM++ 2M SDE", ("k_dpmpp_2m_sde",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "midpoint"},
          "Exponential", _K_ALL, {"scheduler": "exponential", "brownian_noise": _T}),
    _spec("DPM++ 2M SDE Heun", ("k_dpmpp_2m_sde_heun",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"},
          "Exponential", _K_ALL, {"scheduler": "exponential", "brownian_noise": _T, "solver_type": "heun"}),
    # Approximation: k-diffusion's DPM++ 2S a is ancestral (adds noise each step); diffusers'
    # single-step DPM-Solver++ of order 2 is the same solver without the ancestral noise.
    _spec("DPM++ 2S a", ("k_dpmpp_2s_a",), "DPMSolverSinglestepScheduler",
          {"algorithm_type": "dpmsolver++", "solver_order": 2, "lower_order_final": True},
          "Karras", ("Uniform", "Karras", "Exponential", "Beta"),
          {"scheduler": "karras", "uses_ensd": _T, "second_order": _T},
          note="approximation: deterministic single-step DPM-Solver++(2S), no ancestral noise"),
    # A1111 also discards the next-to-last sigma for DPM++ 3M SDE; diffusers does not.
    _spec("DPM++ 3M SDE", ("k_dpmpp_3m_sde",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "sde-dpmsolver++", "solver_order": 3},
          "Exponential", _K_ALL,
          {"scheduler": "exponential", "discard_next_to_last_sigma": _T, "brownian_noise": _T}),
    _spec("Euler a", ("k_euler_a", "k_euler_ancestral"), "EulerAncestralDiscreteScheduler", _LINSPACE,
          "Uniform", ("Uniform", "SGM Uniform"), {"uses_ensd": _T}),
    _spec("Euler", ("k_euler",), "EulerDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {}),
    _spec("LMS", ("k_lms",), "LMSDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {}),
    _spec("Heun", ("k_heun",), "HeunDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {"second_order": _T}),
    # A1111 discards the next-to-last sigma for DPM2 / DPM2 a; diffusers' KDPM2 schedulers do not.
    _spec("DPM2", ("k_dpm_2",), "KDPM2DiscreteScheduler", _LINSPACE, "Karras", _K_ALL,
          {"scheduler": "karras", "discard_next_to_last_sigma": _T, "second_order": _T}),
    _spec("DPM2 a", ("k_dpm_2_a",), "KDPM2AncestralDiscreteScheduler", _LINSPACE, "Karras", _K_ALL,
          {"scheduler": "karras", "discard_next_to_last_sigma": _T, "uses_ensd": _T, "second_order": _T}),
    _spec("DDIM", ("ddim",), "DDIMScheduler", _A1111_TIMESTEPS, "Uniform", ("Uniform", "SGM Uniform"), {}),
    _spec("PLMS", ("plms",), "PNDMScheduler", {**_A1111_TIMESTEPS, "skip_prk_steps": True},
          "Uniform", ("Uniform", "SGM Uniform"), {}),
    # A1111 defaults to the bh1 variant, but diffusers 0.42.1's bh1 returns NaN latents at every
    # step count (checked on SD1 configs); bh2, diffusers' own default, is stable.
    _spec("UniPC", ("unipc",), "UniPCMultistepScheduler",
          {**_LINSPACE, "solver_order": 3, "solver_type": "bh2"}, "Uniform", _K_ALL, {}),
    # LCMScheduler picks its own timesteps (it accepts, but ignores, timestep_spacing).
    _spec("LCM", ("k_lcm",), "LCMScheduler", {}, "Uniform", ("Uniform",), {}),
)

# Pre-1.9 A1111 sampler aliases that carried the schedule in the name.
_LEGACY_COMBINED_ALIASES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "k_lms_ka": ("LMS", "Karras"),
    "k_dpm_2_ka": ("DPM2", "Karras"),
    "k_dpm_2_a_ka": ("DPM2 a", "Karras"),
    "k_dpmpp_2s_a_ka": ("DPM++ 2S a", "Karras"),
    "k_dpmpp_2m_ka": ("DPM++ 2M", "Karras"),
    "k_dpmpp_sde_ka": ("DPM++ SDE", "Karras"),
    "k_dpmpp_2m_sde_ka": ("DPM++ 2M SDE", "Karras"),
})


def _key(text: str) -> str:
    return " ".join(text.split()).casefold()


_SAMPLER_INDEX: dict[str, SamplerSpec] = {}
for _s in SAMPLERS:
    for _n in (_s.name, *_s.aliases):
        _SAMPLER_INDEX.setdefault(_key(_n), _s)

_SCHEDULE_INDEX: dict[str, ScheduleType] = {}
for _sch in SCHEDULES:
    for _n in (_sch.label, _sch.name, *_sch.aliases):
        _SCHEDULE_INDEX.setdefault(_key(_n), _sch)


def _sampler_names_message() -> str:
    return ", ".join(s.name for s in SAMPLERS)


def find_sampler(name: str) -> SamplerSpec | None:
    """The sampler called ``name`` or one of its aliases (case-insensitive), without any suffix."""
    return _SAMPLER_INDEX.get(_key(name))


def find_schedule(name: str) -> ScheduleType | None:
    """The schedule type with this label, name or alias (case-insensitive)."""
    return _SCHEDULE_INDEX.get(_key(name))


def split_combined_name(name: str) -> tuple[SamplerSpec, str | None] | None:
    """Split "DPM++ 2M Karras" into (DPM++ 2M spec, "Karras"); plain names give (spec, None).

    Returns None when no known sampler is found. The schedule is returned as its label.
    """
    key = _key(name)
    spec = _SAMPLER_INDEX.get(key)
    if spec is not None:
        return spec, None
    legacy = _LEGACY_COMBINED_ALIASES.get(key)
    if legacy is not None:
        return _SAMPLER_INDEX[_key(legacy[0])], legacy[1]
    for sch_key, sch in _SCHEDULE_INDEX.items():
        suffix = " " + sch_key
        if key.endswith(suffix):
            spec = _SAMPLER_INDEX.get(key[: -len(suffix)])
            if spec is not None:
                return spec, sch.label
    return None


def is_automatic(schedule: str | None) -> bool:
    return schedule is None or not schedule.strip() or _key(schedule) == "automatic"


def resolve(sampler_name: str, schedule: str | None = None) -> tuple[SamplerSpec, str]:
    """Return the sampler spec and the concrete schedule label it will run with.

    ``sampler_name`` may be a name or alias in any case, or a combined name such as
    "DPM++ 2M Karras"; the suffix is the schedule unless ``schedule`` names one other than
    Automatic. "Automatic" is replaced by the sampler's default, so the returned label is never
    "Automatic". Raises :class:`UnknownSampler` (or its subclasses) with the valid choices.
    """
    if not isinstance(sampler_name, str) or not sampler_name.strip():
        raise UnknownSampler(f"No sampler given. Valid samplers: {_sampler_names_message()}")
    found = split_combined_name(sampler_name)
    if found is None:
        raise UnknownSampler(
            f"Unknown sampler {sampler_name!r}. Valid samplers: {_sampler_names_message()} "
            f"(a schedule type may be appended, e.g. 'DPM++ 2M Karras')."
        )
    spec, suffix = found
    if is_automatic(schedule):
        label = suffix or "Automatic"
    else:
        assert schedule is not None
        sch = find_schedule(schedule)
        if sch is None:
            raise UnknownSchedule(
                f"Unknown schedule type {schedule!r}. Valid schedule types: {', '.join(SCHEDULE_TYPES)}"
            )
        label = sch.label
    if label == "Automatic":
        label = spec.default_schedule
    if label not in spec.schedules:
        raise UnsupportedSchedule(
            f"Sampler {spec.name!r} does not support schedule type {label!r}; "
            f"allowed: {', '.join(spec.allowed_schedules)}"
        )
    return spec, label


def infotext_schedule_label(sampler_name: str, schedule: str | None = None) -> str:
    """The "Schedule type" value A1111 writes into the infotext for this request.

    A1111 writes the concrete type when Automatic resolves to one of the sampler's own schedules
    (e.g. "Karras" for DPM++ 2M), but leaves "Automatic" for samplers whose default is the
    model's uniform schedule (e.g. Euler).
    """
    spec, label = resolve(sampler_name, schedule)
    found = split_combined_name(sampler_name)
    explicit = (found is not None and found[1] is not None) or not is_automatic(schedule)
    if not explicit and "scheduler" not in spec.options:
        return "Automatic"
    return label


def _scheduler_class(class_name: str) -> type:
    import diffusers

    cls = getattr(diffusers, class_name, None)
    if cls is None:  # pragma: no cover - table error
        raise UnknownSampler(f"diffusers has no scheduler class {class_name!r}")
    return cls


def init_params(class_name: str) -> frozenset[str]:
    """Names the diffusers scheduler class accepts in ``__init__``."""
    cls = _scheduler_class(class_name)
    return frozenset(p for p in inspect.signature(cls.__init__).parameters if p != "self")


def scheduler_overrides(spec: SamplerSpec, schedule_label: str) -> dict[str, object]:
    """Constructor overrides for ``spec`` running ``schedule_label`` (a concrete label)."""
    params = init_params(spec.scheduler_class)
    sch = find_schedule(schedule_label)
    assert sch is not None and sch.label != "Automatic"
    overrides: dict[str, object] = {flag: False for flag in _SIGMA_FLAGS if flag in params}
    overrides.update(spec.kwargs)
    overrides.update(sch.overrides)
    missing = sorted(k for k in overrides if k not in params)
    if missing:
        raise UnsupportedSchedule(
            f"Sampler {spec.name!r} with schedule type {schedule_label!r} needs "
            f"{', '.join(missing)}, which {spec.scheduler_class} does not accept"
        )
    return overrides


def make_scheduler(base_config: Mapping[str, Any], sampler_name: str, schedule: str | None = None) -> SchedulerMixin:
    """Build the diffusers scheduler for an A1111 sampler + schedule type.

    ``base_config`` is the model's scheduler config (``pipe.scheduler.config``); its betas,
    ``prediction_type`` and other model properties are kept.
    """
    spec, label = resolve(sampler_name, schedule)
    overrides = scheduler_overrides(spec, label)
    cls = _scheduler_class(spec.scheduler_class)
    scheduler = cls.from_config(dict(base_config), **overrides)
    config = scheduler.config
    dropped = sorted(k for k, v in overrides.items() if config.get(k) != v)
    if dropped:  # pragma: no cover - would mean diffusers ignored an argument
        raise UnsupportedSchedule(
            f"{spec.scheduler_class} ignored {', '.join(dropped)} for {spec.name!r} / {label!r}"
        )
    return scheduler


def api_sampler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/samplers: [{"name", "aliases", "options"}] as A1111 returns it."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": dict(s.options)} for s in SAMPLERS]


def api_scheduler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/schedulers: [{"name", "label", "aliases", "default_rho", "need_inner_model"}]."""
    return [
        {
            "name": s.name,
            "label": s.label,
            "aliases": list(s.aliases) if s.aliases else None,
            "default_rho": s.default_rho,
            "need_inner_model": s.need_inner_model,
        }
        for s in SCHEDULES
    ]
