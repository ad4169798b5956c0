"""X/Y/Z plot values: A1111's comma lists (csv, quotes allowed) and number ranges.

    1, 2, 3            the values
    1-5                1, 2, 3, 4, 5            (floats: 1-3 = 1.0, 2.0, 3.0)
    1-5 (+2)           1, 3, 5                  a step
    10-1 (-3)          10, 7, 4, 1
    1-5 [3]            1, 3, 5                  a count, evenly spread (ints rounded down)
    0.5-1.5 [3]        0.5, 1.0, 1.5
    "a, b", c          two values: 'a, b' and 'c'

Every entry of a list may be a range; bad entries raise :class:`AxisValueError` naming them.
"""

from __future__ import annotations

import csv
import io
import math
import re
from typing import Sequence

MAX_VALUES = 1000  # values one axis may expand to (a range like 1-1000000 is refused, not run)
MAX_TEXT_CHARS = 64 * 1024  # one axis's value text (a longer one is refused before it is split)
MAX_DIGITS = 30  # a whole number longer than this is no setting (Python refuses 4300+ digits with a ValueError)

_NUMBER = r"[+-]?\s*(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
_RANGE = re.compile(
    rf"\s*(?P<start>{_NUMBER})\s*-\s*(?P<end>{_NUMBER})"
    rf"\s*(?:\(\s*(?P<step>{_NUMBER})\s*\)|\[\s*(?P<count>\d+)\s*\])?\s*"
)


class AxisValueError(ValueError):
    """A value list that cannot be read; the message names the bad entry."""


def split_values(text: str | None) -> list[str]:
    """The entries of a comma-separated list (csv quoting, surrounding spaces dropped, empty entries skipped)."""
    if not text or not str(text).strip():
        return []
    text = str(text)
    check_text_length(text)
    try:
        rows = list(csv.reader(io.StringIO(text), skipinitialspace=True))
    except csv.Error as e:  # e.g. one entry over csv's field size limit (131,072 characters)
        raise AxisValueError(f"the values cannot be read as a comma-separated list: {e}") from None
    return [entry.strip() for row in rows for entry in row if entry.strip()]


def check_text_length(text: str, what: str = "the value text") -> None:
    """:class:`AxisValueError` when an axis's value text is longer than :data:`MAX_TEXT_CHARS`."""
    if len(text) > MAX_TEXT_CHARS:
        raise AxisValueError(f"{what} has {len(text)} characters; an axis takes at most {MAX_TEXT_CHARS}")


def join_values(values: Sequence[object]) -> str:
    """The inverse of :func:`split_values` (a dropdown's choices as text)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([str(v) for v in values])
    return out.getvalue()


def parse_ints(entries: Sequence[str]) -> list[int]:
    """Whole numbers and integer ranges."""
    values: list[int] = []
    for entry in entries:
        match = _RANGE.fullmatch(entry)
        if match is None:
            values.append(_int(entry))
        else:
            start, end = _int(match["start"], entry), _int(match["end"], entry)
            if match["count"] is not None:
                values += [int(v) for v in _spread(start, end, _count(match["count"], entry))]
            else:
                step = _int(match["step"], entry) if match["step"] is not None else (1 if end >= start else -1)
                _check_step(step, start, end, entry)
                _check_size(abs(end - start) // abs(step) + 1, entry)
                values += list(range(start, end + (1 if step > 0 else -1), step))
        _check_size(len(values), entry)
    return values


def parse_floats(entries: Sequence[str]) -> list[float]:
    """Numbers and ranges (a step or a count)."""
    values: list[float] = []
    for entry in entries:
        match = _RANGE.fullmatch(entry)
        if match is None:
            values.append(_float(entry))
        else:
            start, end = _float(match["start"], entry), _float(match["end"], entry)
            if match["count"] is not None:
                count = _count(match["count"], entry)
                _check_span(end - start, entry)
                values += _spread(start, end, count)
            else:
                step = _float(match["step"], entry) if match["step"] is not None else (1.0 if end >= start else -1.0)
                _check_step(step, start, end, entry)
                _check_span(end - start, entry)
                steps = (end - start) / step  # finite and >= 0, or inf for a tiny step
                if not math.isfinite(steps) or steps >= MAX_VALUES:
                    raise AxisValueError(f"{entry!r} makes more than {MAX_VALUES} values")
                n = math.floor(steps + 1e-9) + 1  # the end is included when a step lands on it
                _check_size(n, entry)
                values += [_tidy(start + i * step) for i in range(n)]
        _check_size(len(values), entry)
    return values


def _spread(start: float, end: float, count: int) -> list[float]:
    if count == 1:
        return [start]
    return [_tidy(start + (end - start) * i / (count - 1)) for i in range(count)]


def _tidy(value: float) -> float:
    return round(value, 10)  # 0.1 steps give 0.3, not 0.30000000000000004


def _int(text: str, entry: str | None = None) -> int:
    cleaned = text.replace(" ", "")
    if not re.fullmatch(r"[+-]?\d+", cleaned):
        raise AxisValueError(f"{entry or text!r} is not a whole number or a range like 1-5, 1-5 (+2), 1-5 [3]")
    if len(cleaned.lstrip("+-").lstrip("0")) > MAX_DIGITS:
        raise AxisValueError(f"{_short(entry or text)!r} is too large a number (more than {MAX_DIGITS} digits)")
    return int(cleaned)


def _float(text: str, entry: str | None = None) -> float:
    try:
        value = float(text.replace(" ", ""))
    except ValueError:
        raise AxisValueError(f"{entry or text!r} is not a number or a range like 0.5-1.5 (+0.5), 0.5-1.5 [3]") from None
    if not math.isfinite(value):
        raise AxisValueError(f"{entry or text!r} is not a finite number")
    return value


def _count(text: str, entry: str) -> int:
    if len(text.lstrip("0")) > MAX_DIGITS:
        raise AxisValueError(f"{_short(entry)!r} makes more than {MAX_VALUES} values")
    count = int(text)
    if count < 1:
        raise AxisValueError(f"{entry!r}: the count in [ ] must be at least 1")
    _check_size(count, entry)
    return count


def _check_step(step: float, start: float, end: float, entry: str) -> None:
    if step == 0:
        raise AxisValueError(f"{entry!r}: the step must not be 0")
    if (end - start) * step < 0:
        raise AxisValueError(f"{entry!r}: a step of {step:g} never goes from {start:g} to {end:g}")


def _check_span(span: float, entry: str) -> None:
    """A range whose width is not a finite number (-1e308-1e308) has no values to spread or step over."""
    if not math.isfinite(span):
        raise AxisValueError(f"{entry!r} is too wide a range: its ends must be less than about 1e308 apart")


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:60]}…({len(text)} characters)"


def _check_size(count: float, entry: str) -> None:
    if count > MAX_VALUES:
        raise AxisValueError(f"{entry!r} makes more than {MAX_VALUES} values")
