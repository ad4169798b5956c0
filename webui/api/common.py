"""Pieces every API router shares: the error shape, field errors, JSON-safe values."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError

from webui import samplers


def error_response(status: int, error: str, message: str) -> JSONResponse:
    """The error shape of every endpoint here: {"error", "detail", "message"}."""
    return JSONResponse(status_code=status, content={"error": error, "detail": message, "message": message})


def field_error(loc: tuple[Any, ...], msg: str, value: Any = None) -> dict[str, Any]:
    return {"type": "value_error", "loc": ("body", *loc), "msg": msg, "input": value}


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """GenerationRequest's errors, located in the body; sampler errors named after their field."""
    errors = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        if not loc:
            cause = (error.get("ctx") or {}).get("error")
            if isinstance(cause, (samplers.UnknownSchedule, samplers.UnsupportedSchedule)):
                loc = ("scheduler",)
            elif isinstance(cause, samplers.UnknownSampler):
                loc = ("sampler_name",)
        msg = str(error.get("msg", ""))
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]  # pydantic's prefix says nothing to an API user
        errors.append({**error, "loc": ("body", *loc), "msg": msg})
    return errors


def plain(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return str(value)
