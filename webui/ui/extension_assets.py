"""Extensions' page assets: their ``javascript/*.js|.mjs``, ``style.css`` and the chosen localization.

Everything goes into the page as one inline ``<script>`` in the head (``head`` of the launch
arguments): first a prelude defining A1111's page helpers that extension scripts call
(``gradioApp()``, ``onUiLoaded(fn)``, ``onUiUpdate(fn)``, ``onAfterUiUpdate(fn)``,
``onUiTabChange(fn)``, ``onOptionsChanged(fn)``, ``onOptionsAvailable(fn)``, ``get_uiCurrentTab()``,
``get_uiCurrentTabContent()``, ``uiElementIsVisible(el)``, the global ``opts``), then a loader
that adds each file as its own element: a ``<style>`` per stylesheet, a ``<script>`` per classic
script, a ``<script type="module">`` per ``.mjs``.

One element per file is what A1111's separate ``<script src>`` tags give: an error in one file
does not stop the others, and top-level ``let``/``const`` stay global (a ``try`` block around the
code would make them local). The loader notes a failing classic script's file name in a
``console.error`` (its error is reported synchronously while the element is added).

The files' text travels as JSON with ``<``, ``>`` and ``&`` escaped, so no file can close the
head's ``<script>`` early. Only files that ``plugins.assets(...)`` lists are read, each at most
:data:`MAX_ASSET_BYTES`. Options and the localization are read once, when the page is built.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from webui.plugins.extensions import Extension
from webui.ui.protocol import StudioView

log = logging.getLogger(__name__)

MAX_ASSET_BYTES = 1 << 20  # per file: a bigger one is skipped with a warning
LOCALIZATION_OPTION = "localization"  # A1111's key; "None" or a localization file's stem
NO_LOCALIZATION = "None"

# A1111's page helpers, written for this page (ids as A1111's: #tabs, #tab_<id>, #txt2img_prompt).
PRELUDE_JS = r"""
(() => {
  if (window.__sdExtensionHelpers) return;
  window.__sdExtensionHelpers = true;
  const lists = {uiLoaded: [], uiUpdate: [], afterUiUpdate: [], uiTabChange: [], optionsChanged: [],
                 optionsAvailable: []};
  const run = (name, ...args) => {
    for (const fn of lists[name]) {
      try { fn(...args); } catch (e) { console.error(`error running ${name} callback`, fn, e); }
    }
  };
  let loaded = false;
  const later = (name, fn) => setTimeout(() => {
    try { fn(); } catch (e) { console.error(`error running ${name} callback`, fn, e); }
  }, 0);
  const register = (name, fn) => {
    if (typeof fn !== 'function') return;
    lists[name].push(fn);
    // Registered after the event (a script added late): run it once anyway.
    if (loaded && (name === 'uiLoaded' || name === 'optionsAvailable' || name === 'optionsChanged')) later(name, fn);
  };
  window.onUiLoaded = (fn) => register('uiLoaded', fn);
  window.onUiUpdate = (fn) => register('uiUpdate', fn);
  window.onAfterUiUpdate = (fn) => register('afterUiUpdate', fn);
  window.onUiTabChange = (fn) => register('uiTabChange', fn);
  window.onOptionsChanged = (fn) => register('optionsChanged', fn);
  window.onOptionsAvailable = (fn) => register('optionsAvailable', fn);
  window.executeCallbacks = (queue, ...args) => {
    for (const fn of queue || []) {
      try { fn(...args); } catch (e) { console.error('error running callback', fn, e); }
    }
  };

  window.gradioApp = () => {
    const app = document.querySelector('gradio-app');
    if (!app) return document;
    if (app.shadowRoot) return app.shadowRoot;
    if (!app.getElementById) app.getElementById = (id) => document.getElementById(id);
    return app;
  };
  const topTabs = () => gradioApp().querySelector('#tabs');
  // The selected button of the top-level tabs (not of tabs nested inside a tab).
  window.get_uiCurrentTab = () => {
    const tabs = topTabs();
    if (!tabs) return null;
    const selected = (b) => b.getAttribute('aria-selected') === 'true' || b.classList.contains('selected');
    return [...tabs.querySelectorAll('button[role="tab"]')].find((b) => b.closest('.tabs') === tabs && selected(b))
      || null;
  };
  window.get_uiCurrentTabContent = () => {
    const tabs = topTabs();
    if (!tabs) return null;
    return [...tabs.querySelectorAll('.tabitem[id^="tab_"]')].find(
      (t) => t.closest('.tabs') === tabs && getComputedStyle(t).display !== 'none'
    ) || null;
  };
  window.uiElementIsVisible = (el) => {
    for (let node = el; node && node !== document && node.nodeType === 1; node = node.parentNode) {
      if (getComputedStyle(node).display === 'none') return false;
    }
    return true;
  };
  window.uiElementInSight = (el) => {
    const rect = el.getBoundingClientRect();
    return rect.bottom > 0 && rect.top < (window.innerHeight || document.documentElement.clientHeight);
  };

  // Localization: exact matches of a label's or button's text (and placeholders, titles).
  const TRANSLATED = 'label, button, span, p, h1, h2, h3, h4, legend, option, th, td';
  const translate = (text) => {
    const map = window.localization;
    const key = text.trim();
    if (!map || !key || typeof map[key] !== 'string' || map[key] === key) return null;
    return text.replace(key, map[key]);
  };
  window.sdTranslatePage = () => {
    const map = window.localization;
    if (!map || !Object.keys(map).length) return;
    const root = gradioApp();
    const start = root === document ? document.body : root;
    const walker = document.createTreeWalker(start, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const parent = node.parentElement;
      if (!parent || !parent.closest(TRANSLATED) || parent.closest('textarea, script, style, .gallery')) continue;
      const done = translate(node.textContent);
      if (done !== null) node.textContent = done;
    }
    for (const el of start.querySelectorAll('[placeholder], [title]')) {
      for (const attr of ['placeholder', 'title']) {
        const value = el.getAttribute(attr);
        const done = value === null ? null : translate(value);
        if (done !== null) el.setAttribute(attr, done);
      }
    }
  };

  let currentTab = null;
  const checkTab = () => {
    const tab = get_uiCurrentTab();
    if (tab && tab !== currentTab) {
      const first = currentTab === null;
      currentTab = tab;
      if (!first) run('uiTabChange');
    }
  };
  let afterTimer = null;
  const changed = (mutations) => {
    if (!loaded) {
      if (!gradioApp().querySelector('#txt2img_prompt')) return;
      loaded = true;
      run('uiLoaded');
      run('optionsAvailable');
      run('optionsChanged');
    }
    run('uiUpdate', mutations);
    checkTab();
    clearTimeout(afterTimer);
    afterTimer = setTimeout(() => {
      run('afterUiUpdate');
      sdTranslatePage();
    }, 200);
  };
  const start = () => {
    new MutationObserver(changed).observe(document.body, {childList: true, subtree: true});
    document.addEventListener('click', () => setTimeout(checkTab, 50), true);
    changed([]);
  };
  if (document.body) start(); else document.addEventListener('DOMContentLoaded', start);
})();
"""

# Adds each asset as its own element, in order (see the module's docstring).
LOADER_JS = r"""
(() => {
  for (const asset of __ASSETS__) {
    const source = `\n//# sourceURL=${encodeURI(asset.url)}`;
    if (asset.kind === 'css') {
      const style = document.createElement('style');
      style.dataset.extension = asset.extension;
      style.textContent = asset.code;
      document.head.appendChild(style);
      continue;
    }
    const script = document.createElement('script');
    script.dataset.extension = asset.extension;
    if (asset.kind === 'module') {
      script.type = 'module';
      script.textContent = asset.code + source;
      document.head.appendChild(script);
      continue;
    }
    let failure = null;
    const caught = (event) => { failure = event.error || event.message; };
    window.addEventListener('error', caught);
    try {
      script.textContent = asset.code + source;
      document.head.appendChild(script);
    } finally {
      window.removeEventListener('error', caught);
    }
    if (failure !== null) console.error(`extension ${asset.extension}: ${asset.file} failed:`, failure);
  }
})();
"""


def _script_json(value: Any) -> str:
    """JSON that is safe inside an HTML <script> (no "</script>", no line separators)."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
        text = text.replace(raw, escaped)
    return text


def _read(ext: Extension, path: Path) -> str | None:
    """The file's text, or None (logged) when it is too big or unreadable."""
    try:
        size = path.stat().st_size
        if size > MAX_ASSET_BYTES:
            log.warning("extension %s: %s is %d bytes (the most is %d); not added to the page", ext.name,
                        _relative(ext, path), size, MAX_ASSET_BYTES)
            return None
        data = path.read_bytes()[:MAX_ASSET_BYTES + 1]
    except OSError as e:
        log.warning("extension %s: %s could not be read (%s); not added to the page", ext.name, _relative(ext, path), e)
        return None
    if len(data) > MAX_ASSET_BYTES:  # grew since stat
        log.warning("extension %s: %s is over %d bytes; not added to the page", ext.name, _relative(ext, path),
                    MAX_ASSET_BYTES)
        return None
    return data.decode("utf-8", errors="replace")


def _relative(ext: Extension, path: Path) -> str:
    try:
        return path.relative_to(ext.path).as_posix()
    except ValueError:
        return path.name


def _asset(ext: Extension, path: Path, kind: str) -> dict[str, str] | None:
    code = _read(ext, path)
    if code is None:
        return None
    file = _relative(ext, path)
    return {"kind": kind, "extension": ext.name, "file": file, "url": f"extensions/{ext.name}/{file}", "code": code}


def page_assets(studio: StudioView) -> list[dict[str, str]]:
    """The stylesheets, then the scripts, of the enabled extensions (load order), as the loader takes them."""
    plugins = getattr(studio, "plugins", None)
    if plugins is None:
        return []
    assets = [_asset(ext, path, "css") for ext, path in plugins.assets("stylesheet")]
    assets += [_asset(ext, path, "module" if path.suffix == ".mjs" else "js")
               for ext, path in plugins.assets("javascript")]
    return [a for a in assets if a is not None]


def localization_choices(studio: StudioView) -> list[str]:
    """ "None", then the stems of the enabled extensions' localization files (A1111's choices)."""
    plugins = getattr(studio, "plugins", None)
    stems = [path.stem for _, path in plugins.assets("localization")] if plugins is not None else []
    return [NO_LOCALIZATION, *dict.fromkeys(stems)]


def localization(studio: StudioView, chosen: str | None) -> dict[str, str]:
    """The chosen localization's map (the last file of that stem wins, as in A1111); {} for none."""
    plugins = getattr(studio, "plugins", None)
    if plugins is None or not chosen or chosen == NO_LOCALIZATION:
        return {}
    files = [(ext, path) for ext, path in plugins.assets("localization") if path.stem == chosen]
    if not files:
        log.warning("localization %r: no enabled extension has localizations/%s.json", chosen, chosen)
        return {}
    ext, path = files[-1]
    text = _read(ext, path)
    if text is None:
        return {}
    try:
        data = json.loads(text)
    except ValueError as e:
        log.warning("extension %s: %s is not JSON (%s); no localization", ext.name, _relative(ext, path), e)
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def page_options(studio: StudioView) -> dict[str, Any]:
    """The options as the page's ``opts``: only values that are plain JSON (finite numbers)."""
    safe = {}
    for key, value in studio.options.as_dict().items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            continue
        if isinstance(value, float) and not math.isfinite(value):
            continue
        safe[key] = value
    return safe


def page_head(studio: StudioView) -> str:
    """The ``head`` launch argument: the helpers, ``opts``, the localization and the extensions' files."""
    opts = page_options(studio)
    words = localization(studio, opts.get(LOCALIZATION_OPTION))
    code = "\n".join((
        f"window.opts = Object.assign(window.opts || {{}}, {_script_json(opts)});",
        f"window.localization = {_script_json(words)};",
        PRELUDE_JS,
        LOADER_JS.replace("__ASSETS__", _script_json(page_assets(studio))),
    ))
    return f'<script data-sd-extensions="helpers">{code}</script>'
