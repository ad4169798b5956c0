"""Who is calling, what they may do and see, and how refusals and failures answer.

The gate (webui/guard.py) has put the caller into the request's state: a named user, or the
admin ``local`` with logins off. Admins may change the studio for everyone and act on any job;
users act on their own jobs and see paths relative to the models folders.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from fastapi import Request
from fastapi.responses import JSONResponse

from webui.api.common import error_response
from webui.auth.users import LOCAL, User
from webui.flags import relative_to_roots
from webui.jobs import Job, QueueFull
from webui.limits import LimitExceeded


async def caller(request: Request) -> User:
    # async: it only reads the request, so FastAPI runs it inline instead of taking a threadpool
    # thread per request (threads that the sync endpoints need).
    user = getattr(request.state, "user", None)
    return user if isinstance(user, User) else User(LOCAL, "admin")


def admin_only(user: User, what: str) -> JSONResponse | None:
    """A 403 for a non-admin (None for an admin): ``what`` says what was refused."""
    if user.is_admin:
        return None
    return error_response(403, "Forbidden", f"only an admin may {what}")


def owner_filter(user: User) -> str | None:
    """The owner whose jobs ``user`` may see and control (None: every owner, for admins)."""
    return None if user.is_admin else user.name


def may_see(user: User, job: Job | None) -> bool:
    return job is not None and (user.is_admin or job.owner == user.name)


def shown_path(path: Path, roots: Sequence[Path], user: User) -> str:
    """The full path for admins; for users, relative to the models folder it is in."""
    return str(path) if user.is_admin else relative_to_roots(path, roots)


def submit_refusal(error: Exception) -> JSONResponse:
    """The answer for a job the queue would not take: 422 over a limit, 429 when full."""
    if isinstance(error, LimitExceeded):
        message = str(error)
        return JSONResponse(status_code=422, content={
            "error": "LimitExceeded", "message": message,
            "detail": [{"type": "value_error", "loc": ["body", error.field], "msg": message}],
        })
    if isinstance(error, QueueFull):
        return error_response(429, "QueueFull", str(error))
    return error_response(503, "Unavailable", str(error))


def failure(error: str) -> JSONResponse:
    """A failed job: 400 when a model named in the request cannot be loaded, else 500."""
    if error.startswith("CheckpointError"):
        return error_response(400, "CheckpointError", error.split(": ", 1)[-1])
    return error_response(500, "GenerationFailed", error)
