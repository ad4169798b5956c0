"""The hook reference of docs/extensions.md, generated from the code's docstrings.

    python -m webui.plugins.reference            print it
    python -m webui.plugins.reference --write    replace it in docs/extensions.md

The part of docs/extensions.md between the two markers below is this output; a test checks that
it is current, so a hook documented in code is documented for authors.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from pathlib import Path

START, END = "<!-- hook-reference:start -->", "<!-- hook-reference:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "extensions.md"


def _first_paragraph(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


def _signature(fn: object) -> str:
    text = str(inspect.signature(fn))  # type: ignore[arg-type]
    return text.replace("'", "")


def _fields(cls: type) -> list[str]:
    rows = []
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.name == "source":
            continue
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append(f"`{f.name}`: {kind}")
    return rows


def reference() -> str:
    from webui.engine import callbacks as engine_points
    from webui.plugins import api, callbacks
    from webui.plugins.processing import Processing
    from webui.plugins.script import Script

    out = ["### Script methods", "", "| method | when / what |", "|---|---|"]
    for name in ("title", "show", "ui", "run", "check_args", "setup", "before_process", "process", "before_process_batch",
                 "process_batch", "postprocess_batch", "postprocess_batch_list", "postprocess_image",
                 "postprocess", "loop_callbacks"):
        method = getattr(Script, name)
        out.append(f"| `{name}{_signature(method)}` | {_first_paragraph(method)} |")
    out += ["", "### Callbacks (`webui.plugins.api.on_*`, A1111's `script_callbacks.on_*`)", "",
            "| register with | the callback |", "|---|---|"]
    out += [f"| `on_{kind}(fn)` | {text} |" for kind, text in callbacks.KINDS.items()]
    out += ["", "### Objects passed to callbacks", ""]
    for cls in (callbacks.ImageSaveParams, callbacks.CFGDenoiserParams, callbacks.CFGDenoisedParams,
                callbacks.AfterCFGCallbackParams):
        out.append(f"- **{cls.__name__}** — {_first_paragraph(cls)} Fields: {', '.join(_fields(cls))}.")
    out += ["", "### The `p` object (`Processing`)", "", _first_paragraph(Processing), "",
            ", ".join(_fields(Processing)) + ".", ""]
    out += ["### Engine callback points (native loop callbacks)", "",
            "A native extension may also pass `LoopCallback` objects (webui/engine/callbacks.py) to a job; "
            "its points and context objects:", "", "```text",
            *_points(engine_points.__doc__ or ""), "```", ""]
    for cls in (engine_points.BatchStart, engine_points.StageContext, engine_points.UNetCall,
                engine_points.UNetOutput, engine_points.StepContext, engine_points.DecodedBatch,
                engine_points.ImageSaving):
        out.append(f"- **{cls.__name__}** — {_first_paragraph(cls)} Fields: {', '.join(_fields(cls))}.")
    out += ["", "### Everything `webui.plugins.api` exports", "", ", ".join(f"`{n}`" for n in api.__all__) + "."]
    return "\n".join(out) + "\n"


def _points(doc: str) -> list[str]:
    lines = doc.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("before_batch"))
    block = []
    for line in lines[start:]:
        if not line.strip():
            break
        block.append(line.strip())
    return block


def replace_in(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{reference()}{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        DOC.write_text(replace_in(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        sys.stdout.write(reference())
