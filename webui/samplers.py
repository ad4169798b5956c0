"""A1111 sampler and schedule-type names, mapped onto diffusers schedulers.

Each :class:`SamplerSpec` below names the A1111 sampler, its aliases, the diffusers scheduler
class, the constructor overrides that make it behave like A1111's sampler, what "Automatic" stands
for (A1111 >= 1.9: Karras for DPM++ 2M, DPM++ SDE, DPM++ 2S a, DPM2, DPM2 a; Exponential for
DPM++ 2M SDE (+ Heun) and DPM++ 3M SDE; else the model's uniform schedule, shown as Uniform) and
the schedule types it accepts. All of A1111 v1.10's types are known (label or name, any case;
infotexts carry the label). A sampler runs a type in one of two ways:

* natively (``SamplerSpec.schedules``, the pairs the golden-parity table records): Karras,
  Exponential, Beta -> ``use_karras_sigmas`` / ``use_exponential_sigmas`` / ``use_beta_sigmas``;
  SGM Uniform -> ``timestep_spacing="trailing"``; Uniform -> nothing;
* as a sigma list (``SamplerSpec.custom``): :mod:`webui.schedules` computes A1111's sigmas (Align
  Your Steps from the model family's table) and installs them (:func:`set_timesteps`), checking
  that the scheduler really runs through them.

Every k-diffusion-style sampler takes every type, and so does UniPC (A1111 ignores the type for
it; diffusers' UniPC works in sigmas, so we apply it), except:

* KL Optimal ends at sigma_min, not 0 (as in A1111): DPM2, DPM2 a and DPM++ SDE refuse it (their
  schedulers cannot stop above 0); elsewhere diffusers takes that last step first-order.
* DDIM and PLMS step by a fixed timestep stride: they take Uniform, SGM Uniform and DDIM, which
  for them is their own grid (t = 1 + k * 1000 // steps, what A1111's DDIM type samples). A1111
  ignores the type for them; we refuse the rest rather than pretend.
* LCM takes Uniform only: it runs on its distilled 50-timestep grid (A1111 quantises any sigma
  list onto it; diffusers' LCMScheduler ties each step's noise level to those timesteps).
* A1111 discards the next-to-last sigma for DPM2, DPM2 a and DPM++ 3M SDE; we never do.

Anything else raises :class:`UnsupportedSchedule` (a ``ValueError``) naming the accepted types;
:func:`schedules_for` is the list a dropdown offers. Native overrides are checked against the
class's ``__init__`` signature and against the built scheduler's config (:func:`make_scheduler`).

SD configs ship ``timestep_spacing="leading"``, which starts a k-diffusion style sampler at sigma
8.39 (20 steps) instead of A1111's 14.61: the k-diffusion family gets ``"linspace"`` (A1111's
``get_sigmas``, t from 999 to 0); DDIM and PLMS get ``"leading"`` with ``steps_offset=1``
(A1111's ``range(0, 1000, 1000 // steps) + 1``). diffusers is imported only when a scheduler is
built or set up, never for looking names up.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from diffusers import SchedulerMixin

__all__ = [
    "SAMPLERS", "SCHEDULES", "SCHEDULE_TYPES", "SamplerSpec", "ScheduleType", "UnknownSampler",
    "UnknownSchedule", "UnsupportedSchedule", "api_sampler_list", "api_scheduler_list", "custom_sigmas",
    "find_sampler", "find_schedule", "infotext_schedule_label", "init_params", "make_scheduler", "resolve",
    "scheduler_overrides", "schedules_for", "set_timesteps", "split_combined_name",
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
# modules/sd_schedulers.py (v1.10). ``overrides`` serve the native pairs only.
SCHEDULES: tuple[ScheduleType, ...] = (
    ScheduleType("automatic", "Automatic"),
    ScheduleType("uniform", "Uniform", need_inner_model=True),
    ScheduleType("karras", "Karras", default_rho=7.0, overrides=_frozen({"use_karras_sigmas": True})),
    ScheduleType("exponential", "Exponential", overrides=_frozen({"use_exponential_sigmas": True})),
    ScheduleType("polyexponential", "Polyexponential", default_rho=1.0),
    ScheduleType("sgm_uniform", "SGM Uniform", aliases=("SGMUniform",), need_inner_model=True,
                 overrides=_frozen({"timestep_spacing": "trailing"})),
    ScheduleType("kl_optimal", "KL Optimal"),
    ScheduleType("align_your_steps", "Align Your Steps"),
    ScheduleType("simple", "Simple", need_inner_model=True),
    ScheduleType("normal", "Normal", need_inner_model=True),
    ScheduleType("ddim", "DDIM", need_inner_model=True),
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
    schedules: tuple[str, ...]  # labels run natively (constructor overrides)
    options: Mapping[str, str]  # A1111's sampler options, as GET /sdapi/v1/samplers shows them
    note: str = ""
    custom: tuple[str, ...] = ()  # labels run as sigma lists computed by webui/schedules.py
    same_as: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # label -> native

    @property
    def allowed_schedules(self) -> tuple[str, ...]:
        """Automatic and the native types: the pairs the golden-parity table records."""
        return ("Automatic", *self.schedules)

    @property
    def accepted(self) -> tuple[str, ...]:
        """Every type this sampler runs, "Automatic" first, then in A1111's order."""
        labels = {*self.schedules, *self.custom, *self.same_as}
        return ("Automatic", *(label for label in SCHEDULE_TYPES if label in labels))


_K_ALL = ("Uniform", "Karras", "Exponential", "SGM Uniform", "Beta")
_NEW = ("Polyexponential", "KL Optimal", "Align Your Steps", "Simple", "Normal", "DDIM")
_NEW_ENDING_AT_0 = tuple(label for label in _NEW if label != "KL Optimal")  # see the docstring
_LINSPACE = {"timestep_spacing": "linspace"}
_A1111_TIMESTEPS = {"timestep_spacing": "leading", "steps_offset": 1}
_T = "True"  # A1111's API serialises option values as strings


def _spec(name: str, aliases: tuple[str, ...], cls: str, kwargs: Mapping[str, object], default: str,
          schedules: tuple[str, ...], options: Mapping[str, str], note: str = "", custom: tuple[str, ...] = _NEW,
          same_as: Mapping[str, str] | None = None) -> SamplerSpec:
    return SamplerSpec(name, aliases, cls, _frozen(kwargs), default, schedules, _frozen(options), note,  # type: ignore[arg-type]
                       custom, _frozen(same_as or {}))


# Order, names, aliases, options and defaults as in A1111 >= 1.9 (sd_samplers_kdiffusion.py,
# sd_samplers_timesteps.py, sd_samplers_lcm.py). A1111's "DPM fast", "DPM adaptive", "Restart"
# and "DDIM CFG++" have no diffusers counterpart and are not offered.
SAMPLERS: tuple[SamplerSpec, ...] = (
    _spec("DPM++ 2M", ("k_dpmpp_2m",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "dpmsolver++", "solver_order": 2},
          "Karras", _K_ALL, {"scheduler": "karras"}),
    _spec("DPM++ SDE", ("k_dpmpp_sde",), "DPMSolverSDEScheduler", _LINSPACE,
          "Karras", _K_ALL, {"scheduler": "karras", "second_order": _T, "brownian_noise": _T},
          custom=_NEW_ENDING_AT_0),
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
          note="approximation: deterministic single-step DPM-Solver++(2S), no ancestral noise",
          custom=("SGM Uniform", *_NEW)),
    # A1111 also discards the next-to-last sigma for DPM++ 3M SDE; diffusers does not.
    _spec("DPM++ 3M SDE", ("k_dpmpp_3m_sde",), "DPMSolverMultistepScheduler",
          {**_LINSPACE, "algorithm_type": "sde-dpmsolver++", "solver_order": 3},
          "Exponential", _K_ALL,
          {"scheduler": "exponential", "discard_next_to_last_sigma": _T, "brownian_noise": _T}),
    _spec("Euler a", ("k_euler_a", "k_euler_ancestral"), "EulerAncestralDiscreteScheduler", _LINSPACE,
          "Uniform", ("Uniform", "SGM Uniform"), {"uses_ensd": _T}, custom=("Karras", "Exponential", "Beta", *_NEW)),
    _spec("Euler", ("k_euler",), "EulerDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {}),
    _spec("LMS", ("k_lms",), "LMSDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {}),
    _spec("Heun", ("k_heun",), "HeunDiscreteScheduler", _LINSPACE, "Uniform", _K_ALL, {"second_order": _T}),
    # A1111 discards the next-to-last sigma for DPM2 / DPM2 a; diffusers' KDPM2 schedulers do not.
    _spec("DPM2", ("k_dpm_2",), "KDPM2DiscreteScheduler", _LINSPACE, "Karras", _K_ALL,
          {"scheduler": "karras", "discard_next_to_last_sigma": _T, "second_order": _T}, custom=_NEW_ENDING_AT_0),
    _spec("DPM2 a", ("k_dpm_2_a",), "KDPM2AncestralDiscreteScheduler", _LINSPACE, "Karras", _K_ALL,
          {"scheduler": "karras", "discard_next_to_last_sigma": _T, "uses_ensd": _T, "second_order": _T},
          custom=_NEW_ENDING_AT_0),
    # Timestep samplers: no sigma lists; "DDIM" is their own uniform grid (see the docstring).
    _spec("DDIM", ("ddim",), "DDIMScheduler", _A1111_TIMESTEPS, "Uniform", ("Uniform", "SGM Uniform"), {},
          custom=(), same_as={"DDIM": "Uniform"}),
    _spec("PLMS", ("plms",), "PNDMScheduler", {**_A1111_TIMESTEPS, "skip_prk_steps": True},
          "Uniform", ("Uniform", "SGM Uniform"), {}, custom=(), same_as={"DDIM": "Uniform"}),
    # A1111 defaults to the bh1 variant, but diffusers 0.42.1's bh1 returns NaN latents at every
    # step count (checked on SD1 configs); bh2, diffusers' own default, is stable.
    _spec("UniPC", ("unipc",), "UniPCMultistepScheduler",
          {**_LINSPACE, "solver_order": 3, "solver_type": "bh2"}, "Uniform", _K_ALL, {}),
    # LCMScheduler picks its own timesteps (it accepts, but ignores, timestep_spacing).
    _spec("LCM", ("k_lcm",), "LCMScheduler", {}, "Uniform", ("Uniform",), {}, custom=()),
)

# Pre-1.9 A1111 sampler aliases that carried the schedule in the name.
_LEGACY_COMBINED_ALIASES: Mapping[str, tuple[str, str]] = MappingProxyType({
    "k_lms_ka": ("LMS", "Karras"), "k_dpm_2_ka": ("DPM2", "Karras"), "k_dpm_2_a_ka": ("DPM2 a", "Karras"),
    "k_dpmpp_2s_a_ka": ("DPM++ 2S a", "Karras"), "k_dpmpp_2m_ka": ("DPM++ 2M", "Karras"),
    "k_dpmpp_sde_ka": ("DPM++ SDE", "Karras"), "k_dpmpp_2m_sde_ka": ("DPM++ 2M SDE", "Karras"),
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
        raise UnknownSampler(f"Unknown sampler {sampler_name!r}. Valid samplers: {_sampler_names_message()} "
                             f"(a schedule type may be appended, e.g. 'DPM++ 2M Karras').")
    spec, suffix = found
    if is_automatic(schedule):
        label = suffix or "Automatic"
    else:
        assert schedule is not None
        sch = find_schedule(schedule)
        if sch is None:
            raise UnknownSchedule(f"Unknown schedule type {schedule!r}. "
                                  f"Valid schedule types: {', '.join(SCHEDULE_TYPES)}")
        label = sch.label
    if label == "Automatic":
        label = spec.default_schedule
    if label not in spec.accepted:
        raise UnsupportedSchedule(f"Sampler {spec.name!r} does not support schedule type {label!r}; "
                                  f"allowed: {', '.join(spec.accepted)}")
    return spec, label


def schedules_for(sampler_name: str) -> list[str]:
    """The schedule types to offer for this sampler ("Automatic" first); [] for an unknown name."""
    found = split_combined_name(sampler_name) if isinstance(sampler_name, str) else None
    return list(found[0].accepted) if found else []


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
    sch = find_schedule(spec.same_as.get(schedule_label, schedule_label))
    assert sch is not None and sch.label != "Automatic"
    overrides: dict[str, object] = {flag: False for flag in _SIGMA_FLAGS if flag in params}
    overrides.update(spec.kwargs)
    if sch.label not in spec.custom:  # a sigma list replaces the schedule after set_timesteps
        overrides.update(sch.overrides)
    missing = sorted(k for k in overrides if k not in params)
    if missing:
        raise UnsupportedSchedule(f"Sampler {spec.name!r} with schedule type {schedule_label!r} needs "
                                  f"{', '.join(missing)}, which {spec.scheduler_class} does not accept")
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
        raise UnsupportedSchedule(f"{spec.scheduler_class} ignored {', '.join(dropped)} for {spec.name!r} / {label!r}")
    return scheduler


def custom_sigmas(scheduler: SchedulerMixin, sampler_name: str, schedule: str | None, steps: int,
                  family: str | None = None) -> Any:
    """A1111's sigmas (float64 array) for a pair run as a sigma list, from the training schedule of
    ``scheduler`` (built by :func:`make_scheduler`); None for a native pair. ``family`` ("sd15",
    "sdxl-base", ...) picks the Align Your Steps table."""
    spec, label = resolve(sampler_name, schedule)
    if label not in spec.custom:
        return None
    from webui import schedules

    name = find_schedule(label).name  # type: ignore[union-attr]
    return schedules.sigma_schedule(name, steps, scheduler.alphas_cumprod, family)


def set_timesteps(scheduler: SchedulerMixin, sampler_name: str, schedule: str | None, steps: int, *,
                  device: Any = None, family: str | None = None) -> None:
    """``scheduler.set_timesteps(steps, device=device)`` for a native pair, else installs the
    pair's sigmas. As in A1111, the DDIM type may run more steps than asked (31 for 30)."""
    sigmas = custom_sigmas(scheduler, sampler_name, schedule, steps, family)
    if sigmas is None:
        scheduler.set_timesteps(steps, device=device)
        return
    from webui import schedules

    try:
        schedules.apply_sigmas(scheduler, sigmas, device=device)
    except schedules.ScheduleError as e:
        raise UnsupportedSchedule(f"{sampler_name} / {schedule}: {e}") from None


def api_sampler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/samplers: [{"name", "aliases", "options"}] as A1111 returns it."""
    return [{"name": s.name, "aliases": list(s.aliases), "options": dict(s.options)} for s in SAMPLERS]


def api_scheduler_list() -> list[dict[str, object]]:
    """GET /sdapi/v1/schedulers: [{"name", "label", "aliases", "default_rho", "need_inner_model"}]."""
    return [{"name": s.name, "label": s.label, "aliases": list(s.aliases) if s.aliases else None,
             "default_rho": s.default_rho, "need_inner_model": s.need_inner_model} for s in SCHEDULES]
