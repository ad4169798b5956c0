"""Prompts from file or textbox: A1111's line syntax parsed into each job's settings, and clear
errors naming the line and the option."""

from __future__ import annotations

import pytest

from webui.scripts.prompt_lines import (
    PromptLineError,
    parse_line,
    parse_lines,
    read_prompt_file,
)


@pytest.mark.parametrize("line, settings", [
    ("a cat in a hat", {"prompt": "a cat in a hat"}),
    ("a cat -- no options here", {"prompt": "a cat -- no options here"}),
    ('--prompt "a red car, fast" --steps 12', {"prompt": "a red car, fast", "steps": 12}),
    ("--prompt a red car --negative_prompt blurry grey --seed -1",
     {"prompt": "a red car", "negative_prompt": "blurry grey", "seed": -1}),
    ("--cfg_scale 6.5 --subseed_strength .25 --width 64 --height 48",
     {"cfg_scale": 6.5, "subseed_strength": 0.25, "width": 64, "height": 48}),
    ("--batch_size 2 --n_iter 3 --tiling TRUE --do_not_save_samples false",
     {"batch_size": 2, "n_iter": 3, "tiling": True, "do_not_save_samples": False}),
    ("--sampler_name 'DPM++ 2M Karras' --styles 'one, two'", {"sampler_name": "DPM++ 2M Karras",
                                                               "styles": ["one", "two"]}),
    ("--sampler_index 0", {"sampler_name": "DPM++ 2M"}),  # A1111 v1.10's first sampler, as ours
])
def test_lines_become_settings(line, settings):
    assert parse_line(line).settings == settings


def test_sd_model_is_a_checkpoint_override_and_restore_faces_is_ignored():
    parsed = parse_line('--prompt x --sd_model "my model.safetensors" --restore_faces true')
    assert parsed.checkpoint == "my model.safetensors" and parsed.settings == {"prompt": "x"}
    assert parsed.ignored == ("restore_faces",)


def test_empty_lines_are_skipped_and_numbers_are_those_of_the_text():
    jobs = parse_lines("first\n\n   \n--prompt second --steps 4\r\nthird\n")
    assert [(job.number, job.settings["prompt"]) for job in jobs] == [(1, "first"), (4, "second"), (5, "third")]


@pytest.mark.parametrize("line, key, words", [
    ("--steps many", "steps", "whole number"),
    ("--steps 2.5", "steps", "whole number"),
    ("--cfg_scale nan", "cfg_scale", "finite"),
    ("--cfg_scale high", "cfg_scale", "a number"),
    ("--colour red", "colour", "unknown option"),
    ("--tiling yes", "tiling", "true or false"),
    ("--sampler_name Bogus", "sampler_name", "unknown sampler"),
    ("--sampler_index 99", "sampler_index", "out of range"),
    ("--prompt x --steps", "steps", "needs a value"),
    ("--width 64 80", "width", "takes one value"),
    ("--outpath_samples /etc", "outpath_samples", "refused"),
    ("--outpath_grids ../../x", "outpath_grids", "refused"),
    ('--prompt "unclosed', None, "cannot split"),
])
def test_bad_lines_name_the_line_and_the_option(line, key, words):
    with pytest.raises(PromptLineError, match=words) as caught:
        parse_lines(f"fine\n\n{line}")
    assert caught.value.line == 3 and caught.value.key == key
    assert str(caught.value).startswith(f"line 3, --{key}:" if key else "line 3:")


def test_prompt_files_must_be_small_utf8_text():
    assert read_prompt_file("\ufeffa cat  \r\n--prompt dog\n".encode()) == "a cat\n--prompt dog"
    with pytest.raises(ValueError, match="not UTF-8"):
        read_prompt_file("café".encode("latin-1"))
    with pytest.raises(ValueError, match="NUL"):
        read_prompt_file(b"\x89PNG\r\n\x1a\n\x00\x00")
    with pytest.raises(ValueError, match="at most"):
        read_prompt_file(b"a\n" * 300_000)


def test_prompts_from_file_totals_the_work_of_all_lines(monkeypatch):
    import importlib.util
    from pathlib import Path

    from webui.limits import Limits
    from webui.plugins.processing import Processing
    from webui.scripts import script_limits

    path = Path(__file__).parents[2] / "webui/extensions_builtin/prompt-tools/scripts/prompts_from_file.py"
    spec = importlib.util.spec_from_file_location("prompts_from_file_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(script_limits, "current", lambda: Limits(20_000, 48, 100, 2048 * 2048, 100))
    monkeypatch.setattr(module, "_check_names", lambda line: None)  # no studio: no checkpoints or styles
    p = Processing(prompt="a cat", steps=2, width=512, height=512)
    module.PromptsFromFile().check_args(p, False, False, "start", "--steps 30\n" * 3)  # 90 units: fine
    with pytest.raises(ValueError, match=r"the 4 lines would take 120 units of work in all .* the limit "
                                         r"\(limit_work_per_job\) is 100"):
        module.PromptsFromFile().check_args(p, False, False, "start", "--steps 30\n" * 4)
