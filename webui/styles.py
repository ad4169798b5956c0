"""Prompt styles: A1111's ``styles.csv`` (columns name, prompt, negative_prompt).

The file is read and written as A1111 does (UTF-8 with a BOM, ``csv`` quoting, so prompts may hold
commas, quotes and newlines). The old two-column form (name, text) still reads. A row that cannot
be a style (no name, too many or too few fields) is skipped with a warning; a missing file means
no styles.

Applying styles follows A1111: for each selected style in order, a style text holding ``{prompt}``
gets the prompt so far substituted there; otherwise the style text is appended after ``", "``
(empty parts dropped, both sides stripped). Negatives go the same way with the style negatives.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

log = logging.getLogger(__name__)

FIELDS = ("name", "prompt", "negative_prompt")
PLACEHOLDER = "{prompt}"
MAX_STYLE_CHARS = 10_000  # per saved text: styles are short snippets; this keeps styles.csv and apply() small
MAX_NAME_CHARS = 200  # as a request's style names (GenerationRequest.styles)


class StyleError(ValueError):
    """An unknown style name (or an invalid one to save); ``name`` is the offending name."""

    def __init__(self, name: str, message: str | None = None):
        super().__init__(message or f"style not found: {name!r}")
        self.name = name


class StyledTextTooLong(StyleError):
    """Applying styles made a prompt longer than the caller's limit; ``name`` is the style that did."""


@dataclass(frozen=True)
class PromptStyle:
    name: str
    prompt: str = ""
    negative_prompt: str = ""


def merge_prompt(style_text: str, prompt: str) -> str:
    """One style onto a prompt: ``{prompt}`` substitution, else ``prompt, style`` (empties dropped)."""
    if PLACEHOLDER in style_text:
        return style_text.replace(PLACEHOLDER, prompt)
    return ", ".join(part for part in (prompt.strip(), style_text.strip()) if part)


class StyleDatabase:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._styles: dict[str, PromptStyle] = {}
        self.reload()

    # --- reading ---

    def reload(self) -> None:
        with self._lock:
            self._styles = self._read()

    def _read(self) -> dict[str, PromptStyle]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as e:
            log.warning("cannot read styles file %s: %s", self.path, e)
            return {}
        text = raw.decode("utf-8-sig", errors="replace")
        styles: dict[str, PromptStyle] = {}
        reader = csv.DictReader(io.StringIO(text, newline=""), skipinitialspace=True)
        try:
            header = reader.fieldnames or []
        except csv.Error as e:
            log.warning("%s: unreadable header (%s); no styles loaded", self.path, e)
            return {}
        if "name" not in header or not ({"prompt", "text"} & set(header)):
            if header:
                log.warning("%s: expected columns name, prompt, negative_prompt; found %s", self.path, header)
            return {}
        prompt_key = "prompt" if "prompt" in header else "text"  # A1111's old "name, text" form
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                log.warning("%s line %d: %s; the rest of the file is skipped", self.path, reader.line_num, e)
                break
            name = (row.get("name") or "").strip()
            prompt = row.get(prompt_key)
            if not name or prompt is None or None in row:
                log.warning("%s line %d: malformed style row skipped", self.path, reader.line_num)
                continue
            styles[name] = PromptStyle(name, prompt, row.get("negative_prompt") or "")
        return styles

    def names(self) -> list[str]:
        with self._lock:
            return list(self._styles)

    def all(self) -> list[PromptStyle]:
        with self._lock:
            return list(self._styles.values())

    def get(self, name: str) -> PromptStyle | None:
        with self._lock:
            return self._styles.get(name)

    def check(self, names: Iterable[str]) -> list[PromptStyle]:
        """The styles named, in order; ``StyleError`` naming the first unknown one."""
        with self._lock:
            found = []
            for name in names:
                style = self._styles.get(name)
                if style is None:
                    raise StyleError(name, f"style not found: {name!r}; available: {', '.join(self._styles) or 'none'}")
                found.append(style)
            return found

    def apply(self, prompt: str, negative: str, names: Iterable[str], max_chars: int | None = None) -> tuple[str, str]:
        """(prompt, negative) with the named styles applied in order, as A1111 applies them.

        With ``max_chars``, :class:`StyledTextTooLong` as soon as a text gets longer: a style such as
        "{prompt}{prompt}" doubles the prompt each time it is used, so 40 uses would need terabytes.
        """
        for style in self.check(names):
            prompt = merge_prompt(style.prompt, prompt)
            negative = merge_prompt(style.negative_prompt, negative)
            longest = max(len(prompt), len(negative))
            if max_chars is not None and longest > max_chars:
                raise StyledTextTooLong(style.name, f"style {style.name!r} makes a prompt {longest} characters long; "
                                                    f"the limit (limit_prompt_chars) is {max_chars}")
        return prompt, negative

    # --- writing ---

    def save(self, name: str, prompt: str, negative: str) -> PromptStyle:
        """Add or overwrite a style and write the file (atomically)."""
        name = (name or "").strip()
        if not name:
            raise StyleError(name, "a style needs a name")
        if len(name) > MAX_NAME_CHARS:
            raise StyleError(name[:80], f"a style name may have at most {MAX_NAME_CHARS} characters")
        for field, text in (("prompt", prompt or ""), ("negative prompt", negative or "")):
            if len(text) > MAX_STYLE_CHARS:
                raise StyleError(name, f"the style's {field} has {len(text)} characters; a style may have at most "
                                       f"{MAX_STYLE_CHARS}")
        style = PromptStyle(name, prompt or "", negative or "")
        with self._lock:
            styles = dict(self._styles)
            styles[name] = style
            self._write(styles)
            self._styles = styles
        return style

    def delete(self, name: str) -> None:
        with self._lock:
            if name not in self._styles:
                raise StyleError(name)
            styles = {k: v for k, v in self._styles.items() if k != name}
            self._write(styles)
            self._styles = styles

    def _write(self, styles: dict[str, PromptStyle]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8-sig", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                writer.writeheader()
                for s in styles.values():
                    writer.writerow({"name": s.name, "prompt": s.prompt, "negative_prompt": s.negative_prompt})
                f.flush()
                os.fsync(f.fileno())
            try:  # mkstemp makes the file 0600; keep the old file's mode, else a normal one
                mode = self.path.stat().st_mode & 0o777
            except OSError:
                mode = 0o644
            os.chmod(temp, mode)
            os.replace(temp, self.path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
