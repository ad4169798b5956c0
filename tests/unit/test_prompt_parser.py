"""A1111 prompt language: comments, extra-network tags, AND, prompt editing, emphasis."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webui.prompts.parser import (
    ExtraNetworkRef,
    extract_extra_networks,
    parse_attention,
    prompt_schedule,
    split_and,
    strip_comments,
)

BREAK = ("BREAK", -1.0)


def assert_fragments(actual: list[tuple[str, float]], expected: list[tuple[str, float]]) -> None:
    assert [text for text, _ in actual] == [text for text, _ in expected], actual
    for (_, got), (_, want) in zip(actual, expected):
        assert math.isclose(got, want, rel_tol=1e-12), (actual, expected)


# --- emphasis -----------------------------------------------------------------------------------

ATTENTION_CASES = [
    # A1111's documented example
    ("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).",
     [("a ", 1.0), ("house", 1.5730000000000004), (" ", 1.1), ("on", 1.0), (" a ", 1.1),
      ("hill", 0.55), (", sun, ", 1.1), ("sky", 1.4641000000000006), (".", 1.1)]),
    ("normal text", [("normal text", 1.0)]),
    ("an (important) word", [("an ", 1.0), ("important", 1.1), (" word", 1.0)]),
    ("(unnecessary)(parens)", [("unnecessaryparens", 1.1)]),
    ("(abc:1.5)", [("abc", 1.5)]),
    ("(abc: 1.5 )", [("abc", 1.5)]),
    ("(abc:.5)", [("abc", 0.5)]),
    ("(abc:-1)", [("abc", -1.0)]),  # explicit negative weights are kept, as in A1111
    ("[abc]", [("abc", 1 / 1.1)]),
    ("[[abc]]", [("abc", 1 / 1.1 / 1.1)]),
    ("((abc))", [("abc", 1.1 * 1.1)]),
    ("((a:1.2):1.5)", [("a", 1.2 * 1.5)]),
    ("([a:1.2])", [("a:1.2", 1.0)]),  # ":1.2" in square brackets is just text
    ("(a [b] c)", [("a ", 1.1), ("b", 1.0), (" c", 1.1)]),
    # escapes
    ("\\(literal\\)", [("(literal)", 1.0)]),
    ("\\(literal\\]", [("(literal]", 1.0)]),
    ("\\[x\\]", [("[x]", 1.0)]),
    ("a \\\\ b", [("a \\ b", 1.0)]),
    ("a\\b", [("ab", 1.0)]),  # a backslash before anything else disappears
    ("(\\(x\\))", [("(x)", 1.1)]),
    # broken brackets
    ("(unbalanced", [("unbalanced", 1.1)]),
    ("[unbalanced", [("unbalanced", 1 / 1.1)]),
    ("a (b", [("a ", 1.0), ("b", 1.1)]),
    ("((a) b", [("a", 1.1 * 1.1), (" b", 1.1)]),
    ("a) b]", [("a) b]", 1.0)]),
    ("([a)]", [("a", 1.0)]),  # round and square brackets are matched independently
    ("([a)b]", [("a", 1.0), ("b", 1 / 1.1)]),
    (":1.5)", [(":1.5)", 1.0)]),  # a weight with nothing open is text
    # colons that are not weights
    ("(a:b)", [("a:b", 1.1)]),
    ("a:b", [("a:b", 1.0)]),
    ("(a:1.2.3)", [("a:1.2.3", 1.1)]),  # A1111 raises ValueError here; kept as text
    ("(a:.)", [("a:.", 1.1)]),
    # BREAK
    ("a BREAK b", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("a  BREAK\nb", [("a", 1.0), BREAK, ("b", 1.0)]),
    ("a BREAK", [("a", 1.0), BREAK, ("", 1.0)]),
    ("BREAKFAST and break", [("BREAKFAST and break", 1.0)]),
    ("(a BREAK b)", [("a", 1.1), BREAK, ("b", 1.1)]),  # A1111 would scale the marker
    ("a BREAK BREAK b", [("a", 1.0), BREAK, ("", 1.0), BREAK, ("b", 1.0)]),
    # empty
    ("", [("", 1.0)]),
    ("()", [("", 1.0)]),
]


@pytest.mark.parametrize(("text", "expected"), ATTENTION_CASES)
def test_parse_attention(text: str, expected: list[tuple[str, float]]) -> None:
    assert_fragments(parse_attention(text), expected)


def test_parse_attention_documented_example_exact() -> None:
    result = parse_attention("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky))).")
    assert result[1] == ("house", 1.5730000000000004)
    assert result[7] == ("sky", 1.4641000000000006)


def test_parse_attention_returns_fresh_lists() -> None:
    first = parse_attention("(cached)")
    first.append(("x", 2.0))
    assert parse_attention("(cached)") == [("cached", 1.1)]


# --- prompt editing -----------------------------------------------------------------------------

SCHEDULE_CASES = [
    ("test", 10, [(10, "test")]),
    ("[a:b:10]", 20, [(10, "a"), (20, "b")]),
    ("[a:b:0.25]", 20, [(5, "a"), (20, "b")]),
    ("[a:b:.5]", 10, [(5, "a"), (10, "b")]),
    ("[a:b:0.29]", 100, [(28, "a"), (100, "b")]),  # int(0.29 * 100) == 28, as in A1111
    ("[a:b:0]", 20, [(20, "b")]),
    ("[a:b:-3]", 20, [(20, "b")]),
    ("[a:b:99]", 20, [(20, "a")]),
    ("[a:b:1.0]", 10, [(10, "a")]),  # a decimal point means a fraction, even 1.0 (A1111 >= 1.6)
    ("[a:b:1e400]", 10, [(10, "a")]),  # A1111 raises OverflowError here
    ("[:b:5]", 20, [(5, ""), (20, "b")]),
    ("[b:5]", 20, [(5, ""), (20, "b")]),
    ("[a::5]", 20, [(5, "a"), (20, "")]),
    ("a [b:3]", 10, [(3, "a "), (10, "a b")]),
    ("a [b: 3]", 10, [(3, "a "), (10, "a b")]),
    ("a [b : c : 1] d", 10, [(1, "a b  d"), (10, "a  c  d")]),
    ("a [[[b]]:2]", 10, [(2, "a "), (10, "a [[b]]")]),
    ("[(a:2):3]", 10, [(3, ""), (10, "(a:2)")]),
    ("(a [b:c:5])", 10, [(5, "(a b)"), (10, "(a c)")]),
    ("[a:[b:c:15]:5]", 20, [(5, "a"), (15, "b"), (20, "c")]),
    ("a[b:[c:d:2]:1]e", 10, [(1, "abe"), (2, "ace"), (10, "ade")]),
    ("[[a:b:5]:c:8]", 10, [(5, "a"), (8, "b"), (10, "c")]),
    ("[cat|dog]", 4, [(1, "cat"), (2, "dog"), (3, "cat"), (4, "dog")]),
    ("[a|b|c]", 4, [(1, "a"), (2, "b"), (3, "c"), (4, "a")]),
    ("[fe|]male", 4, [(1, "female"), (2, "male"), (3, "female"), (4, "male")]),
    ("[fe|||]male", 6, [(1, "female"), (4, "male"), (5, "female"), (6, "male")]),
    ("[a|(b:1.1)]", 2, [(1, "a"), (2, "(b:1.1)")]),
    ("[cat|cat]", 4, [(4, "cat")]),
    ("a [b|c] [d:e:2]", 4, [(1, "a b d"), (2, "a c d"), (3, "a b e"), (4, "a c e")]),
    ("[x:[a|b]:2]", 4, [(2, "x"), (3, "a"), (4, "b")]),
    ("\\[a:b:5\\]", 10, [(10, "\\[a:b:5\\]")]),  # escaped: text, escapes kept for emphasis
    # stray brackets at the top level do not stop prompt editing elsewhere
    ("((a][:b:c [d:3]", 10, [(3, "((a][:b:c "), (10, "((a][:b:c d")]),
    ("(a [b:c:5]", 10, [(5, "(a b"), (10, "(a c")]),
    # unparsable or not prompt editing: returned literally
    ("a [unbalanced", 10, [(10, "a [unbalanced")]),
    ("[a:b:c:d", 10, [(10, "[a:b:c:d")]),
    ("[a:b:c:5]", 10, [(10, "[a:b:c:5]")]),
    ("a]]][[[", 10, [(10, "a]]][[[")]),
    ("a | b [c:d:5]", 10, [(10, "a | b [c:d:5]")]),
    ("a [{b|d{:.5] c", 10, [(10, "a [{b|d{:.5] c")]),
    ("trailing \\", 10, [(10, "trailing \\")]),
    ("", 10, [(10, "")]),
]


@pytest.mark.parametrize(("prompt", "steps", "expected"), SCHEDULE_CASES)
def test_prompt_schedule(prompt: str, steps: int, expected: list[tuple[int, str]]) -> None:
    assert prompt_schedule(prompt, steps) == expected


def test_prompt_schedule_a1111_documented_example() -> None:
    prompt = ("fantasy landscape with a [mountain:lake:0.25] and [an oak:a christmas tree:0.75]"
              "[ in foreground::0.6][ in background:0.25] [shoddy:masterful:0.5]")
    assert prompt_schedule(prompt, 100) == [
        (25, "fantasy landscape with a mountain and an oak in foreground shoddy"),
        (50, "fantasy landscape with a lake and an oak in foreground in background shoddy"),
        (60, "fantasy landscape with a lake and an oak in foreground in background masterful"),
        (75, "fantasy landscape with a lake and an oak in background masterful"),
        (100, "fantasy landscape with a lake and a christmas tree in background masterful"),
    ]


def test_prompt_schedule_old_scheduling() -> None:
    assert prompt_schedule("[a:b:1.0]", 10, use_old_scheduling=True) == [(1, "a"), (10, "b")]
    assert prompt_schedule("[a:b:0.5]", 10, use_old_scheduling=True) == [(5, "a"), (10, "b")]
    assert prompt_schedule("[a:b:3]", 10, use_old_scheduling=True) == [(3, "a"), (10, "b")]


def test_prompt_schedule_rejects_no_steps() -> None:
    with pytest.raises(ValueError):
        prompt_schedule("a", 0)


def test_schedule_then_attention() -> None:
    (end1, first), (end2, second) = prompt_schedule("a ([red:blue:0.5] dress:1.2)", 10)
    assert (end1, end2) == (5, 10)
    assert_fragments(parse_attention(first), [("a ", 1.0), ("red dress", 1.2)])
    assert_fragments(parse_attention(second), [("a ", 1.0), ("blue dress", 1.2)])


# --- AND ----------------------------------------------------------------------------------------

AND_CASES = [
    ("a cat", [("a cat", 1.0)]),
    ("a cat AND a dog", [("a cat", 1.0), (" a dog", 1.0)]),
    ("a cat AND a dog :0.5", [("a cat", 1.0), (" a dog", 0.5)]),
    ("a AND b:0.5", [("a", 1.0), (" b", 0.5)]),
    ("a AND b :0.5", [("a", 1.0), (" b", 0.5)]),
    ("a AND b : 0.5 ", [("a", 1.0), (" b", 0.5)]),
    ("a:1.5 AND b:-1", [("a", 1.5), (" b", -1.0)]),
    ("a AND b:.5", [("a", 1.0), (" b", 0.5)]),
    ("a AND b:2.", [("a", 1.0), (" b", 2.0)]),
    ("a AND (b:1.5)", [("a", 1.0), (" (b:1.5)", 1.0)]),  # emphasis is not an AND weight
    ("a AND b:x", [("a", 1.0), (" b:x", 1.0)]),
    ("cats and dogs", [("cats and dogs", 1.0)]),  # lowercase is not the keyword
    ("SANDY ANDROID", [("SANDY ANDROID", 1.0)]),  # nor part of a word
    ("a AND", [("a", 1.0), ("", 1.0)]),
    ("", [("", 1.0)]),
    ("a\nAND\nb :2", [("a", 1.0), ("\nb", 2.0)]),
]


@pytest.mark.parametrize(("prompt", "expected"), AND_CASES)
def test_split_and(prompt: str, expected: list[tuple[str, float]]) -> None:
    assert split_and(prompt) == expected


# --- extra networks -----------------------------------------------------------------------------

def test_extract_extra_networks() -> None:
    text, refs = extract_extra_networks(
        "a <lora:add_detail:0.8>, (b <lora:x:0.5:1.0>) [c:<hypernet:anime:1>:5] <not a tag> end")
    assert text == "a , (b ) [c::5] <not a tag> end"
    assert refs == [
        ExtraNetworkRef("lora", "add_detail", ("0.8",)),
        ExtraNetworkRef("lora", "x", ("0.5", "1.0")),
        ExtraNetworkRef("hypernet", "anime", ("1",)),
    ]


@pytest.mark.parametrize(("prompt", "text", "refs"), [
    ("<lora:x>", "", [ExtraNetworkRef("lora", "x", ())]),
    ("<lora:>", "<lora:>", []),  # the name part needs at least one character
    ("<lo ra:x:1>", "<lo ra:x:1>", []),  # the kind is word characters only
    ("<lora:my model v2.1:0.7> cat", " cat", [ExtraNetworkRef("lora", "my model v2.1", ("0.7",))]),
    ("<lora:a<b:1>", "", [ExtraNetworkRef("lora", "a<b", ("1",))]),
    ("x <<lora:y:1>>", "x <>", [ExtraNetworkRef("lora", "y", ("1",))]),
    ("<lora:x:1><lyco:y:2>", "", [ExtraNetworkRef("lora", "x", ("1",)), ExtraNetworkRef("lyco", "y", ("2",))]),
    ("no tags", "no tags", []),
])
def test_extract_extra_networks_edges(prompt: str, text: str, refs: list[ExtraNetworkRef]) -> None:
    assert extract_extra_networks(prompt) == (text, refs)


def test_extra_network_named_args() -> None:
    (ref,) = extract_extra_networks("<lora:x:0.5:unet=0.7:dyn=8:a=b=c>")[1]
    assert ref.args == ("0.5", "unet=0.7", "dyn=8", "a=b=c")
    assert ref.positional == ("0.5", "a=b=c")
    assert ref.named == {"unet": "0.7", "dyn": "8"}


# --- comments -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("prompt", "expected"), [
    ("no comment", "no comment"),
    ("a # note", "a \n"),
    ("a # note\nb", "a \nb"),
    ("a\n# note\nb", "a\nb"),
    ("# note\nb", "\nb"),
    ("# one\n# two\nb", "\n\nb"),
    ("a \\# b\nc", "a \\\nc"),  # no escape in A1111: "\#" starts a comment too
    ("(a:1.2) # x ## y\n[b:c:5]", "(a:1.2) \n[b:c:5]"),
])
def test_strip_comments(prompt: str, expected: str) -> None:
    assert strip_comments(prompt) == expected


# --- properties ---------------------------------------------------------------------------------

_WEIGHT_TOKEN = re.compile(r":\s*([+-]?[.\d]+)\s*\)")


def _has_non_positive_weight(text: str) -> bool:
    for match in _WEIGHT_TOKEN.finditer(text):
        try:
            if float(match.group(1)) <= 0:
                return True
        except ValueError:
            pass
    return False


_mixed_prompts = st.lists(
    st.one_of(
        st.sampled_from(list("()[]:|\\<> ,\n#") + ["AND", "BREAK", " AND ", " BREAK ", "<lora:x:1>"]),
        st.from_regex(r"[a-z]{1,6}", fullmatch=True),
        st.integers(min_value=1, max_value=40).map(str),
        st.sampled_from(["0.25", ".5", "1.3", "2.", "0.9"]),
    ),
    max_size=30,
).map("".join)

_any_prompt = st.one_of(st.text(max_size=60), _mixed_prompts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prompt=_any_prompt, steps=st.integers(min_value=1, max_value=40))
def test_property_never_raises_and_is_well_formed(prompt: str, steps: int) -> None:
    strip_comments(prompt)
    stripped, refs = extract_extra_networks(prompt)
    assert all(isinstance(ref, ExtraNetworkRef) for ref in refs)
    parts = split_and(prompt)
    assert parts and all(isinstance(text, str) for text, _ in parts)

    schedule = prompt_schedule(prompt, steps)
    ends = [end for end, _ in schedule]
    assert ends[-1] == steps
    assert all(a < b for a, b in zip(ends, ends[1:]))
    assert all(a != b for (_, a), (_, b) in zip(schedule, schedule[1:]))

    for text in [prompt, stripped] + [text for _, text in schedule]:
        fragments = parse_attention(text)
        assert fragments
        for fragment, weight in fragments:
            if (fragment, weight) == BREAK:
                continue
            assert math.isfinite(weight)
            assert weight > 0 or _has_non_positive_weight(text), (text, fragments)


@settings(max_examples=200, deadline=None)
@given(prompt=_any_prompt)
def test_property_attention_keeps_the_words(prompt: str) -> None:
    """Emphasis only removes syntax (and weights): the letters survive, in order."""
    text = "".join(fragment for fragment, weight in parse_attention(prompt) if (fragment, weight) != BREAK)
    keep = re.compile(r"[^\W\d_]")  # letters
    source = re.sub(r"\s*\bBREAK\b\s*", "", prompt)
    assert keep.findall(text) == keep.findall(source)
