"""Text built to hurt: parsers stay linear, limits hold before parsing, styles cannot explode.

Each case comes from a security review; the timing checks guard against quadratic blow-ups only
(a linear scan of 200 KB takes milliseconds; the old regexes took minutes).
"""

from __future__ import annotations

import inspect
import re
import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webui import limits
from webui.auth.authenticator import Authenticator
from webui.auth.users import UserStore
from webui.infotext import _RE_PARAM, _find_params, parse_infotext
from webui.jobs import JobQueue, JobState
from webui.jobs.store import JobStore
from webui.limits import LimitExceeded
from webui.prompts.parser import extract_extra_networks, split_and
from webui.request import GenerationRequest
from webui.settings import Options
from webui.styles import MAX_STYLE_CHARS, StyleDatabase, StyledTextTooLong, StyleError

TOO_SLOW = 2.0  # seconds for 200 KB: only a quadratic parser gets anywhere near


def _seconds(parse: Callable[[str], object], text: str) -> float:
    """The best of three runs (one when it is already too slow, so a regression fails fast)."""
    times: list[float] = []
    for _ in range(3):
        start = time.perf_counter()
        parse(text)
        times.append(time.perf_counter() - start)
        if times[-1] > TOO_SLOW:
            break
    return min(times)


def assert_linear(parse: Callable[[str], object], make: Callable[[int], str]) -> None:
    small = _seconds(parse, make(50_000))
    assert small < TOO_SLOW, f"{small:.1f} s for 50 KB"
    big = _seconds(parse, make(200_000))
    # 4× the text: about 4× the time when linear, 16× when quadratic (below 50 ms, noise dominates).
    assert big < TOO_SLOW and big / max(small, 0.05) < 8, (small, big)


def _repeat(unit: str) -> Callable[[int], str]:
    return lambda size: (unit * (size // len(unit) + 1))[:size]


# --- 1. linear parsers ------------------------------------------------------------------------------


@pytest.mark.parametrize("unit", ["a ", "a\t", "-a", "a:", "ab: \"x,", "Steps: 20, " + "a " * 50],
                         ids=["spaces", "tabs", "dashes", "colons", "quotes", "parameters"])
def test_infotext_parameters_parse_in_linear_time(unit):
    assert_linear(parse_infotext, _repeat(unit))


@pytest.mark.parametrize("unit", ["<a:", "<aaaa", "<a:>", "<"], ids=["open-tags", "words", "empty-tags", "angles"])
def test_extra_network_tags_are_found_in_linear_time(unit):
    assert_linear(extract_extra_networks, _repeat(unit))


@pytest.mark.parametrize("make", [lambda n: "a" + " " * n + "b", lambda n: "a" + " " * n + ":1" + " " * n,
                                  _repeat(" :")], ids=["spaces", "weight-in-spaces", "colons"])
def test_and_weights_are_found_in_linear_time(make):
    assert_linear(split_and, make)


_INFOTEXT_PIECES = st.sampled_from(["Steps", "a", "é", "_", "1", " ", "\t", "\u3000", "-", "/", ":", ",", '"',
                                    "\\", "\n", "x y", "Size: 5x5", '"a,b"'])


@settings(max_examples=3000, deadline=None)
@given(st.lists(_INFOTEXT_PIECES, max_size=14).map("".join))
def test_the_parameter_scan_finds_exactly_what_a1111s_regex_finds(line):
    assert _find_params(line) == _RE_PARAM.findall(line)


_A1111_TAG = re.compile(r"<(\w+):([^>]+)>")


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(["<", ">", "a", "b", ":", " ", "\n", "_", "<lora:x:1>"]), max_size=14).map("".join))
def test_extra_network_tags_are_cut_as_before(prompt):
    found: list[str] = []
    expected = _A1111_TAG.sub(lambda m: found.append(m.group(0)) or "", prompt)
    text, refs = extract_extra_networks(prompt)
    assert text == expected and [f"<{r.kind}:{':'.join((r.name, *r.args))}>" for r in refs] == found


_OLD_SUBPROMPT = re.compile(r"(.*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*", re.DOTALL)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "\t", "\u3000", ":", "1", "2", ".", "-", "+", "e", "\n", " AND ",
                                 "\u0661"]), max_size=12).map("".join))
def test_and_parts_and_weights_are_as_before(prompt):
    expected = []
    for sub in re.split(r"\bAND\b", prompt):
        match = _OLD_SUBPROMPT.fullmatch(sub)
        assert match is not None
        expected.append((match.group(1), float(match.group(2)) if match.group(2) is not None else 1.0))
    assert split_and(prompt) == expected


def test_requests_cap_prompts_and_styles_while_parsing():
    for field in ("prompt", "negative_prompt", "hr_prompt", "hr_negative_prompt"):
        with pytest.raises(ValueError, match="at most 200000 characters"):
            GenerationRequest(**{field: "a" * 200_001})
    with pytest.raises(ValueError, match="at most 32 items"):
        GenerationRequest(styles=["s"] * 33)
    with pytest.raises(ValueError, match="at most 200 characters"):
        GenerationRequest(styles=["s" * 201])
    with pytest.raises(ValueError, match="lone surrogate"):  # the cap leaves the clearer message to it
        GenerationRequest(prompt="a \ud800")


def test_the_api_caps_infotext_and_prompts():
    from webui.api.models import Txt2ImgApiRequest

    for field, size in (("infotext", 64_000), ("prompt", 200_000), ("hr_negative_prompt", 200_000)):
        assert getattr(Txt2ImgApiRequest(**{field: "a" * size}), field) == "a" * size
        with pytest.raises(ValueError, match=f"at most {size} characters"):
            Txt2ImgApiRequest(**{field: "a" * (size + 1)})
    assert Txt2ImgApiRequest(prompt=None, infotext=None).infotext is None


# --- 2. the token counter ---------------------------------------------------------------------------


def test_the_token_counter_refuses_text_past_the_prompt_limits_without_parsing(tmp_path):
    import gradio as gr

    from webui.ui.token_counter import add_token_counter

    counted: list[str] = []

    def count_tokens(text: str, steps: int = 20) -> tuple[int, int]:
        counted.append(text)
        return 3, 75

    studio = SimpleNamespace(options=Options(tmp_path / "config.json"), count_tokens=count_tokens)
    with gr.Blocks() as demo:
        add_token_counter(studio, gr.Textbox(), "counter")  # type: ignore[arg-type]
    count = next(f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "count")

    assert count("a cat") == "<span>3/75</span>"
    long, deep = "[a:" * 20_000, "(" * 100 + "a"
    for text, limit in ((long, "limit_prompt_chars"), (deep, "limit_prompt_depth")):
        shown = count(text)
        assert "over limit" in shown and limit in shown
    assert counted == ["a cat"]


# --- 3. styles cannot grow a prompt past the limits; crash loops end ----------------------------------


@pytest.fixture
def styles(tmp_path: Path) -> StyleDatabase:
    db = StyleDatabase(tmp_path / "styles.csv")
    db.save("double", "{prompt}{prompt}", "")
    db.save("sharp", "sharp focus", "blurry")
    return db


LIMITS = limits.Limits(prompt_chars=20_000, prompt_depth=48, images_per_job=100, pixels_per_image=2048 ** 2,
                       work_per_job=6000)


def test_styles_stop_growing_a_prompt_as_soon_as_it_passes_the_limit(styles):
    start = time.perf_counter()
    with pytest.raises(StyledTextTooLong, match="'double'.*limit_prompt_chars"):
        styles.apply("a cat", "", ["double"] * 40, max_chars=20_000)  # 2^40 × 5 characters unchecked
    assert time.perf_counter() - start < 1
    assert styles.apply("a cat", "", ["double", "sharp"], max_chars=20_000) == ("a cata cat, sharp focus", "blurry")


def test_styled_prompts_are_checked_before_queuing(styles):
    request = GenerationRequest(prompt="a cat", styles=["double"] * 30)
    with pytest.raises(LimitExceeded, match="limit_prompt_chars") as refused:
        limits.check_styled(request, styles, LIMITS)
    assert refused.value.field == "styles"
    styles.save("deep", "(" * 26 + "{prompt}" + ")" * 26, "")
    with pytest.raises(LimitExceeded, match="prompt with styles nests brackets 52 deep"):
        limits.check_styled(GenerationRequest(prompt="a", styles=["deep", "deep"]), styles, LIMITS)
    hires = GenerationRequest(prompt="a", hr_prompt="b" * 10_001, enable_hr=True, styles=["double"])
    with pytest.raises(LimitExceeded, match="hr_prompt with styles: .*20002 characters"):
        limits.check_styled(hires, styles, LIMITS)
    limits.check_styled(GenerationRequest(prompt="a cat", styles=["double", "sharp", "gone"]), styles, LIMITS)


def test_saved_styles_are_capped_with_a_clear_error(styles):
    with pytest.raises(StyleError, match=f"at most {MAX_STYLE_CHARS}"):
        styles.save("huge", "x" * (MAX_STYLE_CHARS + 1), "")
    with pytest.raises(StyleError, match="negative prompt"):
        styles.save("huge", "", "x" * (MAX_STYLE_CHARS + 1))
    with pytest.raises(StyleError, match="name may have at most 200"):
        styles.save("n" * 201, "", "")
    assert styles.get("huge") is None


class _Codec:
    def dump_payload(self, payload: object) -> str:
        return str(payload)

    def load_payload(self, text: str) -> object:
        return text

    def dump_result(self, result: object) -> str | None:
        return None

    def load_result(self, text: str | None, images: dict[int, dict]) -> object:
        return None


def test_a_job_running_at_two_crashes_is_failed_not_run_again(tmp_path):
    path = tmp_path / "jobs.sqlite"
    store = JobStore(path)
    store.add("j", "ann", "payload", time.time())
    store.started("j", time.time())  # the worker starts it; the server dies (nothing more is written)
    assert JobQueue(lambda p, c: None, store=JobStore(path), codec=_Codec()).recover() == 1  # once more
    store.started("j", time.time())  # its second run starts; the server dies again
    later = JobQueue(lambda p, c: None, store=JobStore(path), codec=_Codec())
    assert later.recover() == 0
    job = later.get("j")
    assert job is not None and job.state is JobState.FAILED and "2 times" in (job.error or "")


def test_clean_restarts_do_not_count_as_crashes(tmp_path):
    path = tmp_path / "jobs.sqlite"
    started = threading.Event()

    def held(payload: object, ctx) -> None:  # runs until a shutdown interrupts it
        started.set()
        while not ctx.interrupted:
            time.sleep(0.01)

    for restart in range(3):  # the server is stopped cleanly three times while the job runs
        queue = JobQueue(held, store=JobStore(path), codec=_Codec())
        if restart == 0:
            job = queue.submit("payload", owner="ann")
        else:
            assert queue.recover() == 1
        started.clear()
        queue.start()
        assert started.wait(5)
        assert queue.stop(timeout=5)
    assert JobStore(path).get(job.id).runs == 0
    assert JobQueue(held, store=JobStore(path), codec=_Codec()).recover() == 1


def test_an_old_job_database_gains_the_runs_column(tmp_path):
    path = tmp_path / "jobs.sqlite"
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE jobs (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, owner TEXT, payload TEXT NOT NULL, "
                     "state TEXT NOT NULL, created_at REAL NOT NULL, started_at REAL, finished_at REAL, error TEXT, "
                     "interrupted INTEGER DEFAULT 0, result TEXT);"
                     "INSERT INTO jobs (id, seq, payload, state, created_at) VALUES ('old', 1, 'p', 'running', 0);")
    db.close()
    store = JobStore(path)
    assert store.get("old").runs == 0
    store.started("old", 1.0)
    assert store.get("old").runs == 1


# --- 4. shared styles are saved by admins only ------------------------------------------------------


def test_only_an_admin_saves_styles_when_logins_are_on(tmp_path):
    import base64

    import gradio as gr

    from webui.ui.styles_ui import build_styles

    users = UserStore(tmp_path / "users.json")
    users.add("alice", "alice-secret-1", role="admin")
    users.add("bob", "bob-secret-22")
    studio = SimpleNamespace(styles=StyleDatabase(tmp_path / "styles.csv"), auth=Authenticator(users),
                             options=Options(tmp_path / "config.json"))
    with gr.Blocks() as demo:
        prompt, negative = gr.Textbox(), gr.Textbox()
        with gr.Row() as tools:
            pass
        build_styles(studio, demo, prompt, negative, tools)  # type: ignore[arg-type]
    save = next(f.fn for f in demo.fns.values() if f.fn is not None and f.fn.__name__ == "save_style")

    def as_user(name: str, password: str) -> SimpleNamespace:
        token = base64.b64encode(f"{name}:{password}".encode()).decode()
        return SimpleNamespace(headers={"authorization": f"Basic {token}"}, client=None)

    refused = save("mine", "{prompt}{prompt}", "", [], as_user("bob", "bob-secret-22"))
    assert "Only an admin" in refused[-1] and studio.styles.get("mine") is None
    saved = save("mine", "{prompt}, shiny", "", [], as_user("alice", "alice-secret-1"))
    assert "Saved style" in saved[-1] and studio.styles.get("mine").prompt == "{prompt}, shiny"
    assert "Only an admin" in save("mine", "x", "", [], as_user("bob", "bob-secret-22"))[-1]  # no overwrite either
    assert studio.styles.get("mine").prompt == "{prompt}, shiny"


# --- 5. undecodable passwords ------------------------------------------------------------------------


def test_an_undecodable_password_is_a_counted_failed_login(tmp_path):
    users = UserStore(tmp_path / "users.json", {"flagged": "flag-pass-1"})
    users.add("bob", "bob-secret-22")
    auth = Authenticator(users)
    for name in ("bob", "flagged", "nobody"):
        assert users.verify(name, "\ud800") is None
    for _ in range(10):
        assert auth.login("flagged", "pw\udfff", "10.0.0.9") is None
    assert auth.blocked("10.0.0.9")


# --- 7. auth takes no threadpool thread --------------------------------------------------------------


def test_the_api_caller_dependency_is_async():
    from webui.api.access import caller

    assert inspect.iscoroutinefunction(caller)


def test_a_prompt_of_thousands_of_bracket_groups_is_refused_before_parsing():
    from webui.limits import MAX_BRACKET_GROUPS, LimitExceeded, Limits, check_text

    limits = Limits(prompt_chars=200_000, prompt_depth=100, images_per_job=100, pixels_per_image=4_000_000,
                    work_per_job=10_000)
    check_text("prompt", "(a:1.1) [b:c:5] <lora:x:1> " * (MAX_BRACKET_GROUPS // 3), limits)  # at the limit: fine
    with pytest.raises(LimitExceeded, match="bracketed groups"):
        check_text("prompt", "[a:]" * (MAX_BRACKET_GROUPS + 1), limits)
