"""The generation panel's files without a browser: served copies, the Open folder list (whose
images a user may see), the state Save and Zip read, and a fractional seed's message."""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from pydantic import ValidationError

from webui.auth.users import User
from webui.jobs import JobState
from webui.request import GenerationRequest
from webui.result import GeneratedImage, Result
from webui.ui import job_view, output_folder
from webui.ui.served_files import ServedFiles


def _png(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG fake")
    os.utime(path, (mtime, mtime))
    return path


def _studio(root: Path, jobs: list, auth: bool) -> SimpleNamespace:
    options = {"outdir_samples": "", "outdir_txt2img_samples": "outputs/txt2img-images",
               "outdir_img2img_samples": "outputs/img2img-images"}

    def outputs(folder: str) -> Path:
        resolved = (root / folder).resolve()
        if root.resolve() not in resolved.parents:
            raise ValueError(f"the output folder {folder!r} is outside the data dir")
        return resolved

    def get(key: str):
        if key not in options:
            raise KeyError(key)
        return options[key]

    return SimpleNamespace(options=SimpleNamespace(get=get), paths=SimpleNamespace(outputs=outputs),
                           auth=SimpleNamespace(enabled=auth),
                           queue=SimpleNamespace(list=lambda owner=None: [j for j in jobs if owner in (None, j.owner)]))


def _job(owner: str, paths: list[Path], img2img: bool = False) -> SimpleNamespace:
    images = [GeneratedImage(None, 1, 1, "", p) for p in paths]
    payload = SimpleNamespace(img2img=object() if img2img else None)
    return SimpleNamespace(owner=owner, state=JobState.DONE, payload=payload, result=Result(images, {}))


def test_folder_lists_newest_images_first_and_dated_subfolders(tmp_path) -> None:
    folder = tmp_path / "outputs" / "txt2img-images"
    now = time.time()
    old = _png(folder / "00000-1.png", now - 100)
    dated = _png(folder / "2026-01-01" / "00001-2.png", now - 10)
    _png(folder / "notes.txt", now)
    _png(folder / "a" / "b" / "too-deep.png", now)
    studio = _studio(tmp_path, [], auth=False)
    assert output_folder.latest_images(studio, "txt2img", User("local", "admin")) == [dated, old]
    assert output_folder.latest_images(studio, "txt2img", User("local", "admin"), limit=1) == [dated]
    with pytest.raises(ValueError):
        output_folder.latest_images(studio, "extras", User("local", "admin"))


def test_with_logins_a_user_sees_only_their_own_jobs_images(tmp_path) -> None:
    folder = tmp_path / "outputs" / "txt2img-images"
    now = time.time()
    mine = _png(folder / "00000-1.png", now - 5)
    theirs = _png(folder / "00001-2.png", now - 4)
    elsewhere = _png(tmp_path / "outputs" / "img2img-images" / "00002-3.png", now - 3)
    jobs = [_job("alice", [mine]), _job("bob", [theirs]), _job("alice", [elsewhere], img2img=True)]
    studio = _studio(tmp_path, jobs, auth=True)
    assert output_folder.latest_images(studio, "txt2img", User("alice")) == [mine]
    assert output_folder.latest_images(studio, "img2img", User("alice")) == [elsewhere]
    assert output_folder.latest_images(studio, "txt2img", User("bob")) == [theirs]
    assert output_folder.latest_images(studio, "txt2img", User("root", "admin")) == [theirs, mine]


def test_served_files_keep_their_names_and_are_pruned(tmp_path) -> None:
    served = ServedFiles(tmp_path / "served")
    source = _png(tmp_path / "00007-42.png", time.time())
    copy = Path(served.serve(source))
    assert copy.name == "00007-42.png" and copy.read_bytes() == source.read_bytes()
    assert served.holds(copy) and not served.holds(source) and not served.holds(tmp_path / "served" / "nope.png")
    os.utime(copy.parent, (time.time() - 2 * 86400,) * 2)
    served.prune()
    assert not copy.exists()


def test_results_state_lists_files_and_a_new_gallery_resets_it(tmp_path) -> None:
    outputs = job_view.outputs(gallery=[str(tmp_path / "a.png")], log_html="x")
    state = outputs[5]
    assert state["files"] == [str(tmp_path / "a.png")] and state["selected"] is None and state["seeds"] == []


def test_a_fractional_seed_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValidationError) as caught:
        GenerationRequest(prompt="x", seed=1.5)
    assert job_view.validation_message(caught.value) == "Seed: must be a whole number, not 1.5"
    assert GenerationRequest(prompt="x", seed=-1.0).seed == -1  # -1 (random) still passes as a float
