"""X/Y/Z plot without its controls: read the args, check every value, run the cells, draw the grids.

The args are A1111 v1.10.1's, by position (``ARG_NAMES``). :func:`plan_plot` reads and checks
them against ``p`` before anything runs (a bad value is a ValueError naming the axis and the
value: the API's 422); :func:`run_plot` makes one image per cell through ``process_images``,
cells ordered so that a costly axis (checkpoint, VAE) changes least often, and returns the grid
(one per Z value, and the Z grid of them), then the cells' images when asked.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from pydantic import ValidationError

from webui.infotext import quote
from webui.limits import LimitExceeded, Limits, check_styled, check_text, work_units
from webui.plugins.jobs import job_control, job_part
from webui.plugins.processing import Processed, Processing
from webui.request import MAX_PROMPT_CHARS
from webui.result import GeneratedImage
from webui.scripts.grid_labels import labelled_grid
from webui.scripts.script_results import Saving, fix_seed, made
from webui.scripts.xyz_axes import IMG2IMG, TXT2IMG, Axis, AxisEnv, find_axis
from webui.scripts.xyz_values import AxisValueError, check_text_length, join_values

TITLE = "X/Y/Z plot"
ARG_NAMES = ("x_type", "x_values", "x_values_dropdown", "y_type", "y_values", "y_values_dropdown", "z_type",
             "z_values", "z_values_dropdown", "draw_legend", "include_lone_images", "include_sub_grids",
             "no_fixed_seeds", "vary_seeds_x", "vary_seeds_y", "vary_seeds_z", "margin_size", "csv_mode")
DEFAULTS = ("Seed", "", [], "Nothing", "", [], "Nothing", "", [], True, False, False, False, False, False, False,
            0, False)
MAX_MARGIN = 500
PROMPT_FIELDS = ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt")


class PlotError(ValueError):
    """Args the plot cannot run with; the message names the axis and the value."""


@dataclass(frozen=True)
class PlotArgs:
    """The positional args, named."""

    types: tuple[Any, Any, Any]
    texts: tuple[str, str, str]
    dropdowns: tuple[list[str], list[str], list[str]]
    draw_legend: bool
    include_lone_images: bool
    include_sub_grids: bool
    no_fixed_seeds: bool
    vary_seeds: tuple[bool, bool, bool]
    margin_size: int
    csv_mode: bool

    @classmethod
    def from_args(cls, args: Sequence[Any]) -> PlotArgs:
        values = [*args, *DEFAULTS[len(args):]] if len(args) < len(DEFAULTS) else list(args[:len(DEFAULTS)])
        named = dict(zip(ARG_NAMES, values))
        try:
            margin = int(named["margin_size"] or 0)
        except (TypeError, ValueError, OverflowError):
            raise PlotError(f"margin_size {named['margin_size']!r} is not a whole number") from None
        if not 0 <= margin <= MAX_MARGIN:
            raise PlotError(f"margin_size {margin} is not between 0 and {MAX_MARGIN}")
        texts = tuple(str(named[f"{a}_values"] or "") for a in "xyz")
        dropdowns = tuple(_as_list(named[f"{a}_values_dropdown"], f"{a}_values_dropdown") for a in "xyz")
        for a, text, dropdown in zip("xyz", texts, dropdowns):
            try:
                check_text_length(text, f"{a}_values")
                check_text_length(join_values(dropdown), f"{a}_values_dropdown")
            except AxisValueError as e:
                raise PlotError(str(e)) from None
        return cls(
            types=(named["x_type"], named["y_type"], named["z_type"]),
            texts=texts,  # type: ignore[arg-type]
            dropdowns=dropdowns,  # type: ignore[arg-type]
            draw_legend=bool(named["draw_legend"]), include_lone_images=bool(named["include_lone_images"]),
            include_sub_grids=bool(named["include_sub_grids"]), no_fixed_seeds=bool(named["no_fixed_seeds"]),
            vary_seeds=(bool(named["vary_seeds_x"]), bool(named["vary_seeds_y"]), bool(named["vary_seeds_z"])),
            margin_size=margin, csv_mode=bool(named["csv_mode"]),
        )


@dataclass
class AxisRun:
    """One axis as it runs: its values, their legends, and the text infotext records."""

    name: str  # "X", "Y", "Z"
    axis: Axis
    values: list[Any]
    legends: list[str]
    text: str

    def apply(self, p: Processing, index: int, max_chars: int = MAX_PROMPT_CHARS) -> None:
        """Set this axis's ``index``-th value on ``p``; a Prompt S/R value that would make a prompt
        longer than ``max_chars`` is refused before the text is built (each use of the first value
        is replaced: 20,000 of them by a 64 KiB value would be a 1.3 GB prompt)."""
        assert self.axis.apply is not None
        value = self.values[index]
        if self.axis.label == "Prompt S/R" and isinstance(value, str) and self.values:
            old = str(self.values[0])
            for field in ("prompt", "negative_prompt"):
                text = getattr(p, field) or ""
                length = len(text) + text.count(old) * (len(value) - len(old))
                if length > max_chars:
                    raise PlotError(f"{field} after replacing {_short(old)!r} by {_short(value)!r} would have "
                                    f"{length} characters; the limit (limit_prompt_chars) is {max_chars}")
        self.axis.apply(p, value, self.values)


@dataclass
class PlotPlan:
    args: PlotArgs
    axes: tuple[AxisRun, AxisRun, AxisRun]

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.axes[0].values), len(self.axes[1].values), len(self.axes[2].values)


def plan_plot(p: Processing, args: Sequence[Any], env: AxisEnv, options: Mapping[str, Any] | None = None,
              styles: Any = None) -> PlotPlan:
    """Read and check the args against ``p`` (PlotError naming the axis and value); nothing runs.

    With ``options``, every cell against the work limits and the prompt checks a request gets
    (``styles``, the studio's StyleDatabase: the cell's prompts with its styles applied too)."""
    plot = PlotArgs.from_args(args)
    tab = IMG2IMG if p.is_img2img else TXT2IMG
    limits = Limits.from_options(options) if options is not None else None
    max_chars = limits.prompt_chars if limits is not None else MAX_PROMPT_CHARS
    axes = tuple(_plan_axis(p, name, tab, plot, i, env, max_chars) for i, name in enumerate("XYZ"))
    plan = PlotPlan(plot, axes)  # type: ignore[arg-type]
    if limits is not None:
        _check_work(p, plan, limits, styles)
    return plan


def _plan_axis(p: Processing, name: str, tab: str, plot: PlotArgs, i: int, env: AxisEnv,
               max_chars: int = MAX_PROMPT_CHARS) -> AxisRun:
    try:
        axis = find_axis(tab, plot.types[i])
    except AxisValueError as e:
        raise PlotError(f"{name} type: {e}") from None
    where = f"{name} axis ({axis.label})"
    if not axis.supported:
        raise PlotError(f"{where} is not supported by SD Studio: {axis.why_not}")
    dropdown_mode = axis.choices is not None and not plot.csv_mode and bool(plot.dropdowns[i])
    text = join_values(plot.dropdowns[i]) if dropdown_mode else plot.texts[i]
    try:
        values = axis.parse(plot.texts[i], plot.dropdowns[i], plot.csv_mode)
        legends = [axis.legend(v) for v in values]  # as typed (a checkpoint by the name given)
        if axis.confirm is not None:
            axis.confirm(env, p, values)
    except (ValueError, TypeError, ArithmeticError) as e:  # AxisValueError, or a value no check foresaw
        raise PlotError(f"{where}: {e}") from None
    run = AxisRun(name, axis, values, legends, text)
    if axis.label in ("Seed", "Var. seed") and not plot.no_fixed_seeds:
        run.values = [random.randrange(2**32 - 1) if v == -1 else v for v in values]
    for index, value in enumerate(run.values):  # each value must make a valid job on its own
        cell = cell_p(p)
        try:
            run.apply(cell, index, max_chars)
            cell.to_request()
        except ValidationError as e:
            raise PlotError(f"{where}: value {_show(value)}: {_first_error(e)}") from None
        except (ValueError, TypeError) as e:
            raise PlotError(f"{where}: value {_show(value)}: {e}") from None
    return run


def _check_work(p: Processing, plan: PlotPlan, limits: Limits, styles: Any = None) -> None:
    """The whole plot against the per-job limits (it is one job): images, then each cell's prompts
    (after S/R, order and styles: the checks a request sent directly gets) and pixels, then pixel-steps."""
    nx, ny, nz = plan.shape
    per_cell = max(1, p.batch_size) * max(1, p.n_iter)
    images = nx * ny * nz * per_cell
    if images > limits.images_per_job:
        raise PlotError(f"{nx}×{ny}×{nz} cells × {per_cell} images make {images} images; the limit "
                        f"(limit_images_per_job) is {limits.images_per_job}")
    work = 0.0
    for iz in range(nz):
        for iy in range(ny):
            for ix in range(nx):
                cell = cell_p(p)
                for axis, index in zip(plan.axes, (ix, iy, iz)):
                    axis.apply(cell, index, limits.prompt_chars)
                request = cell.to_request()
                try:
                    for field in PROMPT_FIELDS:
                        check_text(field, getattr(request, field), limits)
                    if styles is not None:
                        check_styled(request, styles, limits)
                except LimitExceeded as e:
                    raise PlotError(f"cell {_where(plan, ix, iy, iz)}: {e}") from None
                if request.width * request.height > limits.pixels_per_image:
                    raise PlotError(f"a {request.width}x{request.height} cell is over the limit "
                                    f"(limit_pixels_per_image) of {limits.pixels_per_image} pixels")
                work += work_units(request)
    if work > limits.work_per_job:
        raise PlotError(f"the plot would take {work:.0f} units of work (512×512 image-steps); the limit "
                        f"(limit_work_per_job) is {limits.work_per_job}")


def cell_p(p: Processing) -> Processing:
    """A copy of ``p`` for one cell: its own settings, prompts and lists, the same images and scripts."""
    cell = copy.copy(p)
    cell.override_settings = dict(p.override_settings)
    cell.styles = list(p.styles)
    cell.extra_generation_params = dict(p.extra_generation_params)
    cell.comments = dict(p.comments)
    return cell


def cell_order(plan: PlotPlan) -> list[tuple[int, int, int]]:
    """(ix, iy, iz) in the order they run: the costliest axis outermost (A1111's rule), so each
    checkpoint or VAE is loaded once; Z, then Y, then X when no axis costs more than the others."""
    costs = [a.axis.cost for a in plan.axes]
    outer, second = 2, 1
    for i in range(3):
        others = [j for j in range(3) if j != i]
        if all(costs[i] > costs[j] for j in others):
            outer = i
            a, b = others
            second = a if costs[a] > costs[b] else b
            break
    inner = 3 - outer - second
    sizes = plan.shape
    order = []
    for o in range(sizes[outer]):
        for s in range(sizes[second]):
            for n in range(sizes[inner]):
                index = [0, 0, 0]
                index[outer], index[second], index[inner] = o, s, n
                order.append((index[0], index[1], index[2]))
    return order


@dataclass
class _Cell:
    generated: GeneratedImage
    prompt: str
    negative_prompt: str


def run_plot(p: Processing, plan: PlotPlan, process: Callable[[Processing], Processed]) -> Processed:
    """Run every cell (until an interrupt) and put the grids first in what is returned."""
    args = plan.args
    if not args.no_fixed_seeds:  # one concrete seed for every cell (unless a seed axis sets it)
        fix_seed(p)
    nx, ny, nz = plan.shape
    order = cell_order(plan)
    cells: dict[int, _Cell] = {}
    control = job_control()
    first: Processed | None = None
    warnings: list[str] = []
    interrupted = False
    for k, (ix, iy, iz) in enumerate(order):
        if control.interrupted:
            interrupted = True
            break
        cell = cell_p(p)
        for axis, index in zip(plan.axes, (ix, iy, iz)):
            axis.apply(cell, index)
        cell.seed = _varied_seed(cell.seed, args.vary_seeds, (ix, iy, iz), (nx, ny))
        with job_part(k, len(order)):
            try:
                result = process(cell)
            except Exception as e:  # one failing cell leaves its place black, as in A1111
                warnings.append(f"X/Y/Z plot cell {_where(plan, ix, iy, iz)} failed: {e}")
                continue
        first = first or result
        warnings += [w for w in result.warnings if w not in warnings]
        if result.images:
            cells[ix + iy * nx + iz * nx * ny] = _Cell(made(result), result.prompt, result.negative_prompt)
        if result.interrupted:
            interrupted = True
            break
    if not cells:
        if first is None and warnings and not interrupted:
            raise RuntimeError(warnings[0])
        return Processed(p, [], [], p.seed, [], p.subseed, [], "", [], [], interrupted=interrupted, warnings=warnings)
    return _assemble(p, plan, cells, interrupted, warnings, first)


def _varied_seed(seed: int, vary: tuple[bool, bool, bool], index: tuple[int, int, int], size: tuple[int, int]) -> int:
    """A1111's "Vary seeds for X/Y/Z": the seed counts up along the chosen axes."""
    if seed == -1:
        return seed
    xdim = size[0] if vary[0] else 1
    ydim = size[1] if vary[1] else 1
    return (seed + (index[0] if vary[0] else 0) + (index[1] * xdim if vary[1] else 0)
            + (index[2] * xdim * ydim if vary[2] else 0))


def _assemble(p: Processing, plan: PlotPlan, cells: dict[int, _Cell], interrupted: bool, warnings: list[str],
              first: Processed | None) -> Processed:
    args = plan.args
    x, y, z = plan.axes
    nx, ny, nz = plan.shape
    grids: list[GeneratedImage] = []
    for iz in range(nz):
        images = [cells[i].generated.load() if i in cells else None for i in range(iz * nx * ny, (iz + 1) * nx * ny)]
        if all(image is None for image in images):
            images[0] = _black_like(cells)
        grid = labelled_grid(images, x.legends, y.legends, args.margin_size, draw_legend=args.draw_legend, cols=nx)
        grids.append(_grid_image(grid, cells, range(iz * nx * ny, (iz + 1) * nx * ny), plan, with_z=False))
    main = grids[0]
    if nz > 1:
        whole = labelled_grid([g.load() for g in grids], z.legends, [], 0, draw_legend=args.draw_legend, cols=nz)
        main = _grid_image(whole, cells, range(nx * ny * nz), plan, with_z=True)
    shown = [main, *(grids if args.include_sub_grids and nz > 1 else [])]
    _save_grids(p, shown if args.include_sub_grids else [main], warnings)
    ordered = [cells[i] for i in sorted(cells)]
    if args.include_lone_images:
        shown += [c.generated for c in ordered]
    info = dict(first.js_info) if first is not None else {}
    info.update(seed=shown[0].seed, subseed=shown[0].subseed, all_seeds=[g.seed for g in shown],
                all_subseeds=[g.subseed for g in shown], all_prompts=[ordered[0].prompt] * len(shown),
                all_negative_prompts=[ordered[0].negative_prompt] * len(shown))
    return Processed(
        p=p, images=[g.load() for g in shown], infotexts=[g.infotext for g in shown], seed=shown[0].seed,
        all_seeds=[g.seed for g in shown], subseed=shown[0].subseed, all_subseeds=[g.subseed for g in shown],
        info=shown[0].infotext, all_prompts=[ordered[0].prompt] * len(shown),
        all_negative_prompts=[ordered[0].negative_prompt] * len(shown), js_info=info,
        index_of_first_image=len(shown) - (len(ordered) if args.include_lone_images else 0),
        generated=shown, interrupted=interrupted, warnings=warnings,
    )


def _black_like(cells: dict[int, _Cell]) -> Any:
    from PIL import Image

    return Image.new("RGB", next(iter(cells.values())).generated.load().size, "black")


def _grid_image(image: Any, cells: dict[int, _Cell], span: range, plan: PlotPlan, with_z: bool) -> GeneratedImage:
    """A grid with the infotext of its first made cell plus the plot's own keys (A1111's)."""
    source = next((cells[i] for i in span if i in cells), next(iter(cells.values())))
    params: dict[str, str] = {"Script": TITLE}
    for axis in plan.axes[:3 if with_z else 2]:
        if axis.axis.label == "Nothing":
            continue
        params[f"{axis.name} Type"] = axis.axis.label
        params[f"{axis.name} Values"] = axis.text
        if axis.axis.label in ("Seed", "Var. seed") and not plan.args.no_fixed_seeds:
            params[f"Fixed {axis.name} Values"] = ", ".join(str(v) for v in axis.values)
    base = source.generated.infotext.rstrip()
    extra = ", ".join(f"{key}: {quote(value)}" for key, value in params.items())
    infotext = f"{base}, {extra}" if base else extra
    return GeneratedImage(image, source.generated.seed, source.generated.subseed, infotext)


def _save_grids(p: Processing, grids: list[GeneratedImage], warnings: list[str]) -> None:
    saving = Saving.of(p)
    for grid in grids:
        saving.save(p, grid, grid=True, prefix="xyz_grid-")
    warnings += saving.warnings


def _where(plan: PlotPlan, ix: int, iy: int, iz: int) -> str:
    parts = [f"{a.name}={_short(str(a.legends[i] or a.values[i]))}" for a, i in zip(plan.axes, (ix, iy, iz)) if a.axis.label != "Nothing"]
    return ", ".join(parts) or "(only cell)"


def _first_error(e: ValidationError) -> str:
    errors = e.errors()
    if not errors:
        return str(e)
    first = errors[0]
    field = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    return f"{field}: {message}" if field else message


def _show(value: Any) -> str:
    return _short(", ".join(value) if isinstance(value, list) else repr(value))


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}… ({len(text)} characters)"


def _as_list(value: Any, name: str) -> list[str]:
    """A dropdown's chosen values: a list (or tuple) of texts or numbers; None or "" for none."""
    if value is None or (isinstance(value, str) and value == ""):
        return []
    if not isinstance(value, (list, tuple)):
        raise PlotError(f"{name} must be a list of values, got {type(value).__name__} {_short(repr(value))}")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise PlotError(f"{name} must be a list of values (texts or numbers), got an item "
                            f"{_short(repr(item))}")
    return [str(v) for v in value]
