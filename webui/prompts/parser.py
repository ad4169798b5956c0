"""A1111's prompt language: comments, extra-network tags, ``AND``, prompt editing, emphasis.

Pure Python (no torch). The functions follow the order in which a prompt is processed:

1. :func:`strip_comments` - ``#`` comments (only when the comments setting is on).
2. :func:`extract_extra_networks` - ``<lora:name:0.8>`` style tags are cut out of the text.
3. :func:`split_and` - composable diffusion: ``a cat AND a dog :0.5``.
4. :func:`prompt_schedule` - prompt editing ``[from:to:when]`` and alternation ``[a|b]``,
   resolved into one plain text per range of sampling steps.
5. :func:`parse_attention` - emphasis ``(x)``, ``[x]``, ``(x:1.3)``, escapes and ``BREAK``,
   applied to each text of a schedule.

The semantics are those of AUTOMATIC1111's web UI (``modules/prompt_parser.py``,
``modules/extra_networks.py`` and the "Comments" script), re-implemented from its documented
behaviour; the places where this module deliberately differs are listed under *Deviations*.

How the parsing is done
-----------------------
*Prompt editing* is a context-free language, so it gets a real grammar: a lark Earley parser
(``_SCHEDULE_GRAMMAR``). Earley is needed because the lexing is context dependent: ``10`` in
``[a:10]`` is a step number but in ``[a:10 cats]`` plain text, and A1111 lets stray
brackets/colons stand anywhere at the top level (``((a][:b:c [d:3]`` still schedules ``d``).
That leniency makes the grammar ambiguous; rule priorities make lark prefer the reading with
the most prompt-editing/alternation constructs. The tree is converted once into a tiny AST
(``str`` / :class:`_Edit` / :class:`_Alternation`) that is rendered per step.

*Emphasis* is not tree-shaped in A1111: round and square brackets are tracked on two
independent stacks, so crossed brackets such as ``([a)]`` are meaningful, a closing bracket
without an opener is literal text, and brackets still open at the end are closed there. No
grammar expresses that cleanly, so the emphasis step uses lark only as the tokenizer (a
``basic`` lexer over ``_ATTENTION_GRAMMAR``, which covers every input character, so it
never fails) and a small hand-written stack machine over those tokens.

Deviations from A1111 (all deliberate)
--------------------------------------
* Nothing here raises on any prompt text. A1111 crashes on an emphasis weight that its
  regex accepts but ``float()`` does not (``(a:1.2.3)``, ``(a:.)``) and on a step number
  that overflows (``[a:b:1e400]``). Here such a weight is kept as literal text (the bracket
  closes with the default 1.1, like ``(a:b)``), and a non-finite ``when`` is clamped.
* ``BREAK`` is always the marker ``("BREAK", -1.0)``: A1111 multiplies the marker's weight by
  enclosing brackets (``(a BREAK b)`` gives ``("BREAK", -1.1)``, which its encoder then
  tokenizes as the word "BREAK"), and can merge it with a neighbouring fragment whose
  explicit weight happens to be -1. Here the marker is never scaled nor merged.
* Schedules merge consecutive steps with identical text (A1111 keeps one entry per step of an
  alternation even when the text repeats); the resulting conditioning is identical.
* Only the first-pass timeline is implemented (no hires-fix ``hires_steps`` offset).
* ``prompt_schedule`` raises ``ValueError`` for ``steps < 1`` (A1111 never passes that).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Union

import lark

__all__ = [
    "ExtraNetworkRef",
    "extract_extra_networks",
    "parse_attention",
    "prompt_schedule",
    "split_and",
    "strip_comments",
]

BREAK_MARKER: tuple[str, float] = ("BREAK", -1.0)
"""The fragment :func:`parse_attention` emits for the ``BREAK`` keyword."""

ROUND_MULTIPLIER = 1.1
SQUARE_MULTIPLIER = 1 / 1.1


# --- comments -----------------------------------------------------------------------------------

# A line that starts with "#" (together with the newline before it, if any, and the one after it)
# becomes a single newline; then any remaining "#" cuts its line to the end, newline kept (or
# added at the very end of the text).
_WHOLE_LINE_COMMENT = re.compile(r"(?:\A|\n)#[^\n]*(?:\n|\Z)")
_TRAILING_COMMENT = re.compile(r"#[^\n]*(?:\n|\Z)")


def strip_comments(prompt: str) -> str:
    """Remove A1111 ``#`` comments: from a ``#`` to the end of its line.

    Exactly A1111's rule, including its quirks: a line that starts with ``#`` disappears with
    its line break (``"a\\n# note\\nb"`` -> ``"a\\nb"``; but a comment on the very first line
    leaves a leading newline, and of two consecutive comment lines the second leaves an empty
    line); a ``#`` after text on a line removes the rest of the line and keeps the line break,
    adding one when the comment ends the text (``"a # note"`` -> ``"a \\n"``). There is no
    escape: ``\\#`` starts a comment too, as it does in A1111.
    """
    prompt = _WHOLE_LINE_COMMENT.sub("\n", prompt)
    return _TRAILING_COMMENT.sub("\n", prompt)


# --- extra networks -----------------------------------------------------------------------------

# ``<kind:rest>``: kind is one or more word characters; rest is anything up to the first ">"
# (spaces, colons, "<" and newlines included), at least one character.
_EXTRA_NETWORK_TAG = re.compile(r"<(\w+):([^>]+)>")


@dataclass(frozen=True)
class ExtraNetworkRef:
    """One ``<kind:name:arg1:arg2...>`` tag, e.g. ``<lora:add_detail:0.8>``.

    ``args`` are the raw strings after the name (A1111's ``items[1:]``); for LoRA the first is
    the text-encoder weight and the second the UNet weight, and ``te=``/``unet=``/``dyn=``
    style named arguments are allowed (see :attr:`named`).
    """

    kind: str
    name: str
    args: tuple[str, ...] = ()

    @property
    def positional(self) -> tuple[str, ...]:
        """The arguments that are not ``key=value`` (A1111's ``positional``, minus the name)."""
        return tuple(arg for arg in self.args if len(arg.split("=", 2)) != 2)

    @property
    def named(self) -> dict[str, str]:
        """The ``key=value`` arguments (exactly one ``=``), as A1111's ``named``."""
        pairs = (arg.split("=", 2) for arg in self.args)
        return {pair[0]: pair[1] for pair in pairs if len(pair) == 2}


def extract_extra_networks(prompt: str) -> tuple[str, list[ExtraNetworkRef]]:
    """Cut every extra-network tag out of ``prompt``; return the rest and the tags in order.

    Tags are found anywhere, including inside emphasis and prompt-editing brackets. Only the
    tag itself is removed: ``"a <lora:x:1> b"`` -> ``"a  b"`` (two spaces), as in A1111.
    """
    refs: list[ExtraNetworkRef] = []

    def cut(match: re.Match[str]) -> str:
        name, *args = match.group(2).split(":")
        refs.append(ExtraNetworkRef(kind=match.group(1), name=name, args=tuple(args)))
        return ""

    # Every tag ends with ">", so none lies past the last one. Searching only up to it keeps the
    # regex linear: without a later ">", "<a:<a:<a:..." made each "<" scan to the end and fail.
    end = prompt.rfind(">") + 1
    return _EXTRA_NETWORK_TAG.sub(cut, prompt[:end]) + prompt[end:], refs


# --- AND ----------------------------------------------------------------------------------------

_AND = re.compile(r"\bAND\b")
# A sub-prompt is its text (trailing whitespace dropped), then an optional ":weight" that may have
# whitespace around the colon, then trailing whitespace. This matches the weight after the colon.
_WEIGHT_AFTER_COLON = re.compile(r"\s*([-+]?(?:\d+\.?|\d*\.\d+))")


def split_and(prompt: str) -> list[tuple[str, float]]:
    """Composable diffusion: split on the keyword ``AND`` into ``(text, weight)`` pairs.

    ``AND`` must be uppercase and a whole word. Each part may end with ``:weight``
    (whitespace allowed on both sides of the colon, so ``b:0.5`` and ``b :0.5`` are the
    same); the weight defaults to 1.0 and may be negative. Trailing whitespace (and the weight)
    is removed from the text, leading whitespace is kept: ``"a AND b :0.5"`` ->
    ``[("a", 1.0), (" b", 0.5)]``. Always at least one part.
    """
    parts: list[tuple[str, float]] = []
    for sub in _AND.split(prompt):
        # Not one lazy regex (quadratic on long whitespace): a weight can only follow the last ":".
        end = len(sub.rstrip())
        colon = sub.rfind(":", 0, end)
        weight = _WEIGHT_AFTER_COLON.fullmatch(sub, colon + 1, end) if colon >= 0 else None
        parts.append((sub[:colon].rstrip(), float(weight.group(1))) if weight else (sub[:end], 1.0))
    return parts


# --- prompt editing (schedules) -----------------------------------------------------------------

_SCHEDULE_GRAMMAR = r"""
start: (_piece | STRAY)*

seq: _piece*
_piece: emphasis | edit | alternation | TEXT | WS

!emphasis: "(" seq ")"
         | "(" seq ":" seq ")"
         | "[" seq "]"
edit.3: "[" (seq ":")? seq ":" WS? WHEN WS? "]"
alternation.3: "[" seq ("|" seq)+ "]"

STRAY: /[\[\]():]/
TEXT: /(?:[^\\\[\]():|]|\\.)+/
WS: /\s+/
WHEN: /[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?/
"""

_schedule_parser = lark.Lark(_SCHEDULE_GRAMMAR, parser="earley", lexer="dynamic", ambiguity="resolve")


@dataclass(frozen=True)
class _Edit:
    """``[before:after:when]``; ``when`` is the number exactly as written."""

    before: tuple[_Node, ...]
    after: tuple[_Node, ...]
    when: str


@dataclass(frozen=True)
class _Alternation:
    """``[a|b|c]``: option ``(step - 1) % len(options)`` at each step."""

    options: tuple[tuple[_Node, ...], ...]


_Node = Union[str, _Edit, _Alternation]


def _to_nodes(tree: lark.Tree) -> tuple[_Node, ...]:
    """Flatten a ``start``/``seq``/``emphasis`` tree into text pieces and constructs."""
    nodes: list[_Node] = []
    for child in tree.children:
        if isinstance(child, lark.Token):
            nodes.append(str(child))
        elif child.data == "edit":
            seqs = [_to_nodes(c) for c in child.children if isinstance(c, lark.Tree)]
            when = next(c for c in child.children if isinstance(c, lark.Token) and c.type == "WHEN")
            before, after = seqs if len(seqs) == 2 else ((), seqs[0])
            nodes.append(_Edit(before, after, str(when)))
        elif child.data == "alternation":
            nodes.append(_Alternation(tuple(_to_nodes(c) for c in child.children)))
        else:  # seq or emphasis: its text stays, brackets included
            nodes.extend(_to_nodes(child))
    return tuple(nodes)


@lru_cache(maxsize=1024)
def _parse_schedule(prompt: str) -> tuple[_Node, ...] | None:
    """The prompt's schedule AST, or None when it does not parse."""
    try:
        return _to_nodes(_schedule_parser.parse(prompt))
    except (lark.exceptions.LarkError, RecursionError):
        return None


def _edit_step(when: str, steps: int, use_old_scheduling: bool) -> int:
    """The last step that still uses ``before`` (A1111: ``min(steps, int(v))``)."""
    value = float(when)
    if use_old_scheduling:
        if value < 1:
            value *= steps
    elif "." in when:  # a decimal point makes it a fraction of the steps, even 1.0 or 1.5
        value *= steps
    if math.isinf(value):
        return steps if value > 0 else 0
    return min(steps, int(value))


def _boundaries(nodes: tuple[_Node, ...], steps: int, old: bool, found: set[int]) -> None:
    for node in nodes:
        if isinstance(node, _Edit):
            step = _edit_step(node.when, steps, old)
            if step >= 1:
                found.add(step)
            _boundaries(node.before, steps, old, found)
            _boundaries(node.after, steps, old, found)
        elif isinstance(node, _Alternation):
            found.update(range(1, steps + 1))
            for option in node.options:
                _boundaries(option, steps, old, found)


def _render(nodes: tuple[_Node, ...], step: int, steps: int, old: bool, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, str):
            out.append(node)
        elif isinstance(node, _Edit):
            chosen = node.before if step <= _edit_step(node.when, steps, old) else node.after
            _render(chosen, step, steps, old, out)
        else:
            _render(node.options[(step - 1) % len(node.options)], step, steps, old, out)


@lru_cache(maxsize=1024)
def _schedule(prompt: str, steps: int, old: bool) -> tuple[tuple[int, str], ...]:
    nodes = _parse_schedule(prompt)
    if nodes is None:
        return ((steps, prompt),)
    ends: set[int] = {steps}
    _boundaries(nodes, steps, old, ends)
    schedule: list[tuple[int, str]] = []
    for end in sorted(ends):
        out: list[str] = []
        _render(nodes, end, steps, old, out)
        text = "".join(out)
        if schedule and schedule[-1][1] == text:
            schedule[-1] = (end, text)  # same text as the previous range: extend it
        else:
            schedule.append((end, text))
    return tuple(schedule)


def prompt_schedule(prompt: str, steps: int, *, use_old_scheduling: bool = False) -> list[tuple[int, str]]:
    """Resolve prompt editing and alternation: ``[(end_step, text), ...]`` for one prompt.

    The text applies to steps ``previous_end + 1 .. end_step`` (steps count from 1); the last
    ``end_step`` is ``steps``, and consecutive ranges never share a text.

    * ``[from:to:when]`` uses ``from`` up to and including step ``when``, then ``to``;
      ``[to:when]`` is empty before; ``[from::when]`` is removed after.
    * ``when`` without a decimal point is a step number; with one (``0.25``, ``.5``, ``1.0``) it
      is a fraction of ``steps``: ``int(when * steps)``, truncated (A1111 >= 1.6). With
      ``use_old_scheduling`` (A1111's compatibility option) any ``when < 1`` is a fraction and
      anything else a step number. The step is capped at ``steps``; one below 1 means "always
      ``to``".
    * ``[a|b|c]`` picks ``a`` at step 1, ``b`` at step 2, ... (empty options allowed).
    * Constructs nest; emphasis brackets and escapes are left in the text for
      :func:`parse_attention`.

    A prompt that does not parse (e.g. a ``|`` outside ``[...]``, or a trailing lone
    backslash) is returned unchanged as ``[(steps, prompt)]``; results are cached.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    return list(_schedule(prompt, steps, use_old_scheduling))


# --- emphasis -----------------------------------------------------------------------------------

# Every character belongs to some terminal, so lexing never fails. Priorities make the
# two-character escapes win over a lone backslash and ":1.2)" over a lone colon.
_ATTENTION_GRAMMAR = r"""
start: (ESCAPE | BACKSLASH | OPEN_ROUND | OPEN_SQUARE | WEIGHT_CLOSE
        | CLOSE_ROUND | CLOSE_SQUARE | TEXT | COLON)*

ESCAPE.3: /\\[()\[\]\\]/
BACKSLASH.1: "\\"
WEIGHT_CLOSE.3: /:\s*[+-]?[.\d]+\s*\)/
OPEN_ROUND: "("
OPEN_SQUARE: "["
CLOSE_ROUND: ")"
CLOSE_SQUARE: "]"
COLON.1: ":"
TEXT: /[^\\()\[\]:]+/
"""

_attention_lexer = lark.Lark(_ATTENTION_GRAMMAR, parser="lalr", lexer="basic")

_BREAK = re.compile(r"\s*\bBREAK\b\s*")
_EXPLICIT_WEIGHT = re.compile(r":\s*([+-]?[.\d]+)\s*\)")


class _Fragment:
    __slots__ = ("text", "weight", "is_break")

    def __init__(self, text: str, weight: float = 1.0, is_break: bool = False) -> None:
        self.text, self.weight, self.is_break = text, weight, is_break


def _explicit_weight(token: str) -> float | None:
    """The number in ``:1.3)``, or None when it is not a finite float (``:1.2.3)``)."""
    match = _EXPLICIT_WEIGHT.fullmatch(token)
    try:
        value = float(match.group(1)) if match else math.nan
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@lru_cache(maxsize=4096)
def _attention(text: str) -> tuple[tuple[str, float], ...]:
    fragments: list[_Fragment] = []
    round_open: list[int] = []  # index into fragments where each open "(" starts
    square_open: list[int] = []

    def scale(start: int, factor: float) -> None:
        for fragment in fragments[start:]:
            if not fragment.is_break:
                fragment.weight *= factor

    def add_text(chunk: str) -> None:
        for i, part in enumerate(_BREAK.split(chunk)):
            if i:
                fragments.append(_Fragment(BREAK_MARKER[0], BREAK_MARKER[1], is_break=True))
            fragments.append(_Fragment(part))

    def close_round(factor: float, token: str) -> None:
        if round_open:
            scale(round_open.pop(), factor)
        else:
            add_text(token)

    for token in _attention_lexer.lex(text):
        kind, value = token.type, str(token)
        if kind in ("ESCAPE", "BACKSLASH"):
            fragments.append(_Fragment(value[1:]))  # a lone backslash vanishes
        elif kind == "OPEN_ROUND":
            round_open.append(len(fragments))
        elif kind == "OPEN_SQUARE":
            square_open.append(len(fragments))
        elif kind == "WEIGHT_CLOSE":
            weight = _explicit_weight(value)
            if weight is None:  # A1111 would crash here: keep ":1.2.3" as text, close normally
                add_text(value[:-1])
                close_round(ROUND_MULTIPLIER, ")")
            else:
                close_round(weight, value)
        elif kind == "CLOSE_ROUND":
            close_round(ROUND_MULTIPLIER, value)
        elif kind == "CLOSE_SQUARE" and square_open:
            scale(square_open.pop(), SQUARE_MULTIPLIER)
        else:  # TEXT, COLON, or a "]" with nothing to close
            add_text(value)

    for start in round_open:  # still open at the end: closed there, outermost first
        scale(start, ROUND_MULTIPLIER)
    for start in square_open:
        scale(start, SQUARE_MULTIPLIER)

    merged: list[_Fragment] = []
    for fragment in fragments:
        last = merged[-1] if merged else None
        if last and not last.is_break and not fragment.is_break and last.weight == fragment.weight:
            last.text += fragment.text
        else:
            merged.append(fragment)
    if not merged:
        return (("", 1.0),)
    return tuple((f.text, f.weight) for f in merged)


def parse_attention(text: str) -> list[tuple[str, float]]:
    """Split ``text`` into ``(fragment, weight)`` pairs by A1111's emphasis rules.

    * ``(x)`` multiplies by 1.1, ``[x]`` by 1/1.1, ``(x:1.3)`` by 1.3 (whitespace allowed
      around the number; negative and zero weights are kept); nesting multiplies.
    * Round and square brackets are matched independently; a closing bracket with nothing
      open is literal text; brackets still open at the end of the text are closed there.
    * ``\\(`` ``\\)`` ``\\[`` ``\\]`` ``\\\\`` are the literal characters; a backslash before
      anything else is dropped. A ``:`` that is not ``:number)`` is plain text, so
      ``(a:b)`` -> ``[("a:b", 1.1)]``.
    * The uppercase word ``BREAK`` becomes the marker ``("BREAK", -1.0)`` (with the whitespace
      around it removed); the marker is never weighted nor merged.
    * Neighbouring fragments of equal weight are merged (empty fragments may remain, as in
      A1111); empty input gives ``[("", 1.0)]``.
    """
    return list(_attention(text))
