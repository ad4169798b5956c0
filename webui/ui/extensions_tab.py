"""The Extensions tab (A1111's layout and element ids): Installed, and Install from URL.

"Installed" shows a table of every extension (built-in ones too) with its problems — load
errors with their tracebacks, hooks switched off — in a collapsible block per extension, and a
CheckboxGroup of the extensions to load at the next start: a CheckboxGroup rather than
A1111's hand-made HTML checkboxes or an editable Dataframe, because it needs no JavaScript and
round-trips exactly the names. Every change goes through the shared ExtensionManager, which
applies the LAN policy; the handlers here check that the page's user is an admin.
"""

from __future__ import annotations

import html
from typing import Any, Iterator

import gradio as gr

from webui.flags import relative_to_roots
from webui.plugins.management import (
    ExtensionManager,
    ExtensionView,
    Outcome,
    manager_for,
)
from webui.ui.protocol import StudioView
from webui.ui.session import page_user

NOT_ADMIN = "Only an admin may change extensions."

# For the page's stylesheet (webui/ui/__init__.py adds it to its CSS).
CSS = """
#extensions_installed_html table { width: 100%; border-collapse: collapse; font-size: 0.9em; }
#extensions_installed_html th, #extensions_installed_html td { text-align: left; padding: 0.25em 0.5em;
  border-bottom: 1px solid var(--border-color-primary); vertical-align: top; }
#extensions_installed_html pre, #extension_install_result pre, #extensions_result pre { white-space: pre-wrap;
  max-height: 24em; overflow: auto; font-size: 0.85em; }
.sd-ext-errors summary { color: #e03c3c; cursor: pointer; }
"""

# After "Apply and restart UI": wait for the server to go away and come back, then reload the page.
RELOAD_WHEN_BACK_JS = """
(flag) => {
  if (flag !== "yes") return;
  const started = Date.now();
  let wentDown = false;
  const again = () => setTimeout(poll, 1000);
  const poll = () => fetch("/health", {cache: "no-store"}).then((r) => {
    if (r.ok && (wentDown || Date.now() - started > 60000)) { window.location.reload(); return; }
    if (Date.now() - started < 600000) again();
  }).catch(() => { wentDown = true; again(); });
  setTimeout(poll, 1500);
}
"""


def _pre(text: str) -> str:
    return f"<pre>{html.escape(text)}</pre>" if text.strip() else ""


def outcome_html(outcome: Outcome) -> str:
    """An operation's result for the page: its sentence, and git's / install.py's output if any."""
    mark = "✅" if outcome.ok else "❌"
    rows = "".join(f"<li>{html.escape(d['name'])}: {html.escape(str(d['message']))}</li>" for d in outcome.details)
    return f"<p>{mark} {html.escape(outcome.message)}</p>" + (f"<ul>{rows}</ul>" if rows else "") + _pre(outcome.output)


def iter_problems(view: ExtensionView) -> Iterator[tuple[str, str]]:
    """(title, text) per problem and discovery error, for the UI's per-extension details."""
    for error in view.ext.errors:
        yield "discovery", error
    for p in view.problems:
        repeated = f" (×{p.count})" if p.count > 1 else ""
        yield f"{p.where}{repeated}", f"{p.message}\n\n{p.traceback}".strip()
    for hook, why in view.switched_off.items():
        yield f"{hook}: switched off", why


def _problems_html(view: ExtensionView, admin: bool) -> str:
    items = list(iter_problems(view))
    if not items:
        return ""
    # Tracebacks name files on the server: admins only, as paths in listings.
    body = "".join(f"<p><b>{html.escape(title)}</b></p>" + (_pre(text) if admin else
                   f"<p>{html.escape(text.splitlines()[0] if text else '')}</p>") for title, text in items)
    count = len(items)
    return (f"<details class='sd-ext-errors' id='extension_problems_{html.escape(view.ext.name)}'>"
            f"<summary>{count} problem{'s' if count != 1 else ''}</summary>{body}</details>")


def table_html(manager: ExtensionManager, views: list[ExtensionView], admin: bool) -> str:
    roots = manager.path_roots()
    rows = []
    for view in views:
        e = view.ext
        enabled = "✓" if e.enabled else f"✗ {e.disabled_reason or ''}".strip()
        path = str(e.path) if admin else relative_to_roots(e.path, roots)
        seconds = f" · loaded in {view.load_seconds:.2f} s" if view.load_seconds is not None else ""
        kind = " <i>(built-in)</i>" if e.builtin else ""
        title = f" — {html.escape(e.title)}" if e.title and e.title != e.name else ""
        rows.append(
            f"<tr data-extension='{html.escape(e.name)}'><td><b>{html.escape(e.name)}</b>{title}{kind}</td>"
            f"<td>{html.escape(enabled)}</td><td>{html.escape(e.remote or '')}</td>"
            f"<td>{html.escape(e.version)}</td><td>{html.escape(path)}</td>"
            f"<td>{html.escape(view.status())}{seconds}{_problems_html(view, admin)}</td></tr>")
    if not rows:
        return "<p>No extension is installed.</p>"
    return ("<table><thead><tr><th>Extension</th><th>Enabled</th><th>URL</th><th>Version</th><th>Path</th>"
            "<th>Status</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _info_html(manager: ExtensionManager, admin: bool) -> str:
    notes = []
    if not admin:
        notes.append(NOT_ADMIN)
    refusal = manager.lan_refusal("change extensions")
    if refusal:
        notes.append(refusal)
    cmd = manager.cmd
    if cmd.disable_all_extensions:
        notes.append('"--disable-all-extensions" was used: remove it to load extensions again.')
    elif cmd.disable_extra_extensions:
        notes.append('"--disable-extra-extensions" was used: remove it to load all extensions again.')
    elif manager.disable_all_mode() != "none":
        notes.append('"Disable all extensions" is set: change it to "none" to load all extensions again.')
    return "".join(f"<p class='sd-warnings'>{html.escape(n)}</p>" for n in notes)


def build_extensions_tab(studio: StudioView, demo: gr.Blocks) -> None:
    """A1111's Extensions tab content (the caller puts it inside a ``gr.Tab``)."""
    manager = manager_for(studio)
    with gr.Tabs(elem_id="tabs_extensions"):
        with gr.Tab("Installed", id="installed"):
            with gr.Row(elem_id="extensions_installed_top"):
                apply = gr.Button("Apply and restart UI", variant="primary", elem_id="extensions_apply", scale=0,
                                  min_width=200)
                check = gr.Button("Check for updates", elem_id="extensions_check", scale=0, min_width=160)
                disable_all = gr.Radio(["none", "extra", "all"], value=manager.disable_all_mode(),
                                       label="Disable all extensions", elem_id="extensions_disable_all")
                refresh = gr.Button("Refresh", elem_id="extensions_refresh", scale=0, min_width=100)
            info = gr.HTML(elem_id="extensions_info")
            enabled = gr.CheckboxGroup(label="Load at the next start", elem_id="extensions_enabled")
            table = gr.HTML("Loading…", elem_id="extensions_installed_html")
            with gr.Row():
                selected = gr.Dropdown(label="Extension", elem_id="extensions_selected", scale=2)
                update = gr.Button("Update", elem_id="extensions_update", scale=0, min_width=100)
                remove = gr.Button("Remove", variant="stop", elem_id="extensions_remove", scale=0, min_width=100)
            result = gr.HTML(elem_id="extensions_result")
            restarting = gr.Textbox(visible=False, elem_id="extensions_restarting")
        with gr.Tab("Install from URL", id="install_from_url"):
            install_url = gr.Textbox(label="URL for extension's git repository", elem_id="install_url")
            install_branch = gr.Textbox(label="Specific branch name", placeholder="Leave empty for default main branch",
                                        elem_id="install_branch")
            install_dirname = gr.Textbox(label="Local directory name", placeholder="Leave empty for auto",
                                         elem_id="install_dirname")
            install_button = gr.Button("Install", variant="primary", elem_id="install_button")
            install_result = gr.HTML(elem_id="extension_install_result")

    listed = [info, enabled, table, selected, disable_all]

    def shown(request: gr.Request) -> tuple[Any, ...]:
        admin = page_user(studio, request).is_admin
        views = manager.views()
        off = set(studio.options.get("disabled_extensions") or ())
        names = [(v.ext.title if v.ext.title == v.ext.name else f"{v.ext.name} ({v.ext.title})", v.ext.name)
                 for v in views]
        user_names = [v.ext.name for v in views if not v.ext.builtin]
        return (_info_html(manager, admin),
                gr.update(choices=names, value=[n for _, n in names if n not in off]),
                table_html(manager, views, admin),
                gr.update(choices=user_names, value=None),
                gr.update(value=manager.disable_all_mode()))

    def refused(request: gr.Request) -> str | None:
        return None if page_user(studio, request).is_admin else f"<p>❌ {NOT_ADMIN}</p>"

    def do_apply(chosen: list[str] | None, mode: str, request: gr.Request) -> tuple[str, str]:
        if (no := refused(request)) is not None:
            return no, ""
        known = [v.ext.name for v in manager.views()]
        outcome = manager.apply([n for n in known if n not in set(chosen or ())], mode or "none")
        return outcome_html(outcome), "yes" if outcome.restarting else ""

    def do_check(request: gr.Request) -> str:
        return refused(request) or outcome_html(manager.check_updates())

    def do_update(name: str | None, request: gr.Request) -> str:
        if not name:
            return "<p>Choose an extension first.</p>"
        return refused(request) or outcome_html(manager.update(name))

    def do_remove(name: str | None, request: gr.Request) -> str:
        if not name:
            return "<p>Nothing removed.</p>"
        return refused(request) or outcome_html(manager.remove(name))

    def do_install(url: str, branch: str, dirname: str, request: gr.Request) -> tuple[str, Any]:
        if (no := refused(request)) is not None:
            return no, gr.skip()
        outcome = manager.install(url, dirname or None, branch or None)
        return outcome_html(outcome), ("" if outcome.ok else gr.skip())

    private: dict[str, Any] = {"api_visibility": "private"}
    demo.load(shown, outputs=listed, **private)
    refresh.click(shown, outputs=listed, **private)
    apply.click(do_apply, inputs=[enabled, disable_all], outputs=[result, restarting], **private).then(
        None, inputs=restarting, js=RELOAD_WHEN_BACK_JS, **private)
    check.click(do_check, outputs=result, **private).then(shown, outputs=listed, **private)
    update.click(do_update, inputs=selected, outputs=result, **private).then(shown, outputs=listed, **private)
    confirm = "(name) => (name && confirm('Remove the extension ' + name + ' from the disk?')) ? name : null"
    remove.click(do_remove, inputs=selected, outputs=result, js=confirm, **private).then(
        shown, outputs=listed, **private)
    install_button.click(do_install, inputs=[install_url, install_branch, install_dirname],
                         outputs=[install_result, install_url], **private).then(shown, outputs=listed, **private)
