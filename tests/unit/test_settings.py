"""Persisted options: defaults, validation, listeners that refuse, and a broken config file."""

from __future__ import annotations

import errno
import json
import os

import pytest

from webui.flags import CommandLine, OutsideFolder, Paths, parse_args
from webui.settings import OPTIONS, OptionError, Options, OptionSaveError


def test_defaults_then_changes_persist(tmp_path):
    options = Options(tmp_path / "config.json")
    assert options.sd_checkpoint_cache == OPTIONS["sd_checkpoint_cache"].default
    assert options.update({"sd_checkpoint_cache": 3, "grid_save": False}) == ["sd_checkpoint_cache", "grid_save"]
    reloaded = Options(tmp_path / "config.json")
    assert (reloaded.sd_checkpoint_cache, reloaded.grid_save) == (3, False)
    assert options.update({"sd_checkpoint_cache": 3}) == []  # no change, nothing rewritten


@pytest.mark.parametrize("key, value", [
    ("sd_checkpoint_cache", -1), ("sd_checkpoint_cache", 2.5), ("grid_save", "yes"),
    ("CLIP_stop_at_last_layers", 13), ("txt2img_default_cfg", "high"),
])
def test_bad_values_are_refused_with_the_key_named(tmp_path, key, value):
    options = Options(tmp_path / "config.json")
    with pytest.raises(OptionError, match=key):
        options.update({key: value})
    assert not (tmp_path / "config.json").exists()


def test_a_refusing_listener_keeps_the_old_value_but_earlier_changes_stay_saved(tmp_path):
    options = Options(tmp_path / "config.json")

    def refuse(value):
        raise RuntimeError("cannot load that")

    options.on_change("sd_model_checkpoint", refuse)
    with pytest.raises(RuntimeError):
        options.update({"grid_save": False, "sd_model_checkpoint": "x.safetensors"})
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved == {"grid_save": False}
    assert options.sd_model_checkpoint == ""


def test_a1111_options_round_trip_and_unknown_keys_are_refused(tmp_path):
    options = Options(tmp_path / "config.json")
    everything = options.as_dict()
    assert (everything["send_seed"], everything["samples_format"]) == (True, "png")  # A1111's defaults
    options.update({"send_seed": False, "realesrgan_enabled_models": ["R-ESRGAN 4x+"]})
    assert Options(tmp_path / "config.json").as_dict()["send_seed"] is False
    options.update(everything)  # a client writing back what it read changes nothing it did not mean to
    with pytest.raises(OptionError, match="unknown option"):
        options.update({"some_tool_option": 1})
    for bad in ({"send_seed": "yes"}, {"jpeg_quality": float("nan")}, {"font": "x" * 100_000}):
        with pytest.raises(OptionError):
            options.update(bad)
    assert json.loads((tmp_path / "config.json").read_text()).keys() <= set(everything)


def test_a_broken_config_file_is_kept_aside_and_defaults_used(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    options = Options(tmp_path / "config.json")
    assert options.grid_save is True
    assert (tmp_path / "config.json.bak").read_text() == "{not json"


def test_flags_and_paths(tmp_path):
    cmd = parse_args(["--data-dir", str(tmp_path), "--listen", "--port", "9000", "--medvram", "--api"])
    assert (cmd.host, cmd.port, cmd.medvram) == ("0.0.0.0", 9000, True)
    paths = Paths.from_cmd(cmd)
    assert paths.ckpt_dir == tmp_path / "models" / "Stable-diffusion"
    assert Paths.from_cmd(CommandLine(data_dir=tmp_path, ckpt_dir=tmp_path / "c")).ckpt_dir == tmp_path / "c"


def test_a_change_that_cannot_be_saved_is_not_applied(tmp_path, monkeypatch):
    options = Options(tmp_path / "config.json")
    options.update({"jpeg_quality": 70})
    before = (tmp_path / "config.json").read_text()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("webui.settings.os.fsync", disk_full)
    with pytest.raises(OptionSaveError, match="No space left on device"):
        options.update({"jpeg_quality": 50})
    assert options.jpeg_quality == 70  # not applied in memory either
    assert (tmp_path / "config.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no config.json.tmp left behind


def test_output_folders_stay_inside_the_data_dir_or_an_allowed_folder(tmp_path):
    allowed = tmp_path / "nas"
    paths = Paths.from_cmd(CommandLine(data_dir=tmp_path / "data", output_dirs=(allowed,)))
    assert paths.outputs("outputs/txt2img-images") == (tmp_path / "data" / "outputs" / "txt2img-images").resolve()
    assert paths.outputs(str(allowed / "renders")) == (allowed / "renders").resolve()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "link").symlink_to("/etc")
    for outside in ("../../..", "/etc", str(tmp_path), "link/cron.d", str(allowed) + "-evil"):
        with pytest.raises(OutsideFolder, match="outside"):
            paths.outputs(outside)
