"""Who is using this page: the logged-in user of a Gradio event (the gate let them in)."""

from __future__ import annotations

import gradio as gr

from webui.auth.users import User
from webui.ui.protocol import StudioView


def page_user(studio: StudioView, request: gr.Request | None) -> User:
    """The event's user, from its session cookie or Basic header (``local`` with logins off)."""
    if request is None:
        return User("local", "admin") if not studio.auth.enabled else User("anonymous", "user")
    headers = {str(k).lower(): str(v) for k, v in dict(request.headers).items()}
    client = request.client.host if request.client else ""
    return studio.auth.identify(headers, client) or User("anonymous", "user")
