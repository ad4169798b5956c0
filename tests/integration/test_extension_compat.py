"""Extensions written the A1111 way (``from modules import ...``) running on SD Studio, in process.

The fixture extensions in tests/kit/extensions are copied into a fresh data dir before the
Studio is built, as a user drops an extension into ``extensions/``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from tests.conftest import build_studio, copy_checkpoint
from webui.plugins import context
from webui.request import GenerationRequest

KIT = Path(__file__).resolve().parents[1] / "kit" / "extensions"
SMALL = dict(prompt="a cat", steps=2, width=64, height=64, seed=3)
REWRITE = {"prompt rewriter": {"args": [True, "zebra"]}}


def add_extensions(data_dir: Path, *names: str) -> None:
    for name in names:
        shutil.copytree(KIT / name, data_dir / "extensions" / name)


@pytest.fixture(scope="module")
def module_studio(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("compat")
    add_extensions(data_dir, "a1111-style")
    studio = build_studio(data_dir, checkpoint_store, ("sd15",))
    yield studio
    studio.stop()


@pytest.fixture
def studio(module_studio):
    context.activate(module_studio.plugins)  # `modules.*` look up the active studio's plugins
    return module_studio


def pngs(studio) -> set[Path]:
    return set((studio.paths.data_dir / "outputs").rglob("*.png"))


def test_always_on_script_rewrites_every_prompt(studio):
    result = studio.generate(GenerationRequest(**SMALL, batch_size=2, alwayson_scripts=REWRITE))

    texts = [g.infotext for g in result.images]
    assert [t.splitlines()[0] for t in texts] == ["a cat, zebra 0", "a cat, zebra 1"]
    assert all("Prompt rewriter: zebra" in t for t in texts)
    assert result.info["all_prompts"] == ["a cat, zebra 0", "a cat, zebra 1"]


def test_selectable_script_runs_twice_and_returns_both(studio):
    from modules import processing

    before = pngs(studio)
    result = studio.generate(GenerationRequest(**SMALL, script_name="Run twice"))

    first, second = result.images
    assert (first.seed, second.seed) == (3, 3 + 7)  # the script's default offset
    assert first.infotext.splitlines()[0] == "a cat"
    assert second.infotext.splitlines()[0] == "a cat, again"
    # The second p said do_not_save_samples: only the first run's image is on disk, and the
    # result still knows that file.
    assert pngs(studio) - before == {first.path}
    assert second.path is None
    assert isinstance(processing.Processed, type)


def test_processing_classes_and_processed_as_a1111_scripts_check_them(studio):
    from modules import processing

    from webui.plugins.processing import Processing

    p = processing.StableDiffusionProcessingTxt2Img(sd_model=None, prompt="a dog", steps=2, width=64, height=64,
                                                     seed=11, do_not_save_samples=True, do_not_save_grid=True,
                                                     restore_faces=False, mask_blur=2)
    assert isinstance(p, processing.StableDiffusionProcessing)
    assert not isinstance(p, processing.StableDiffusionProcessingImg2Img)
    job_p = Processing(init_images=[Image.new("RGB", (64, 64))])  # the kind of p a job hands to scripts
    assert isinstance(job_p, processing.StableDiffusionProcessingImg2Img)
    assert not isinstance(job_p, processing.StableDiffusionProcessingTxt2Img)
    assert (p.mask_blur_x, p.mask_blur_y) == (2, 2)
    with pytest.raises(TypeError, match=r"argument 'cfg_scal' \(not an A1111 processing argument"):
        processing.StableDiffusionProcessingTxt2Img(prompt="x", cfg_scal=7)
    fixed = processing.StableDiffusionProcessingTxt2Img(seed=-1, subseed=5)
    processing.fix_seed(fixed)
    assert fixed.seed >= 0 and fixed.subseed == 5

    processed = processing.process_images(p)  # outside a job: queued, waited for
    assert isinstance(processed, processing.Processed)
    assert processed.all_seeds == [11] and processed.images[0].size == (64, 64)
    assert processed.info.splitlines()[0] == "a dog"


def test_extension_setting_reads_changes_and_persists(studio):
    from modules import shared

    assert shared.opts.a1111_style_greeting == "hello"
    assert studio.options.infos()["a1111_style_greeting"].section == "A1111-style test extension"

    studio.options.update({"a1111_style_greeting": "hi"})
    assert shared.opts.a1111_style_greeting == "hi"
    saved = json.loads((studio.paths.data_dir / "config.json").read_text("utf-8"))
    assert saved["a1111_style_greeting"] == "hi"

    app = FastAPI()
    studio.plugins.callbacks.call("app_started", None, app)
    answer = TestClient(app).get("/a1111-style/hello").json()
    assert answer == {"greeting": "hi", "interrupted": False, "save_image": True}

    seen = []
    shared.opts.onchange("a1111_style_greeting", lambda: seen.append(shared.opts.a1111_style_greeting), call=False)
    shared.opts.set("a1111_style_greeting", "hey")
    assert seen == ["hey"] and studio.options.get("a1111_style_greeting") == "hey"


def test_shared_views_of_the_studio(studio):
    from modules import shared

    assert shared.cmd_opts.data_dir == str(studio.paths.data_dir) and shared.cmd_opts.port == 7860
    assert shared.cmd_opts.share is False and shared.cmd_opts.api is True
    with pytest.raises(AttributeError, match="logins are not handed to extensions"):
        shared.cmd_opts.gradio_auth  # noqa: B018
    assert shared.sd_model is studio.manager.selected and shared.sd_model is not None
    assert shared.device == studio.manager.device
    assert shared.models_path == str(studio.paths.models_dir)
    assert shared.state.interrupted is False and shared.state.skipped is False  # no job running
    shared.state.job_count = 3  # scripts set progress fields; reading them back works
    assert shared.state.job_count == 3


def test_missing_a1111_names_say_so(studio):
    from modules import processing, shared

    with pytest.raises(AttributeError, match=r"^modules\.shared\.foo is not provided by SD Studio's A1111 "
                                             r"compatibility layer \(see docs/extensions\.md\)$"):
        shared.foo  # noqa: B018
    assert not hasattr(shared, "hypernetworks")  # hasattr / getattr(..., default) still work
    with pytest.raises(ImportError, match=r"modules\.sd_hijack is not provided by SD Studio's A1111"):
        from modules import sd_hijack  # noqa: F401
    with pytest.raises(ImportError, match=r"modules\.sd_samplers_kdiffusion is not provided"):
        import modules.sd_samplers_kdiffusion  # noqa: F401
    with pytest.raises(ImportError, match=r"modules\.shared\.hypernetworks is not provided"):
        from modules.shared import hypernetworks  # noqa: F401
    with pytest.raises(AttributeError, match="shared.opts.no_such_option"):
        shared.opts.no_such_option  # noqa: B018
    with pytest.raises(AttributeError, match=r"modules\.processing\.create_infotext is not provided"):
        processing.create_infotext  # noqa: B018


def test_save_image_writes_inside_the_data_dir_only(studio, tmp_path):
    from modules import images, script_callbacks

    calls = []

    def before(params):
        calls.append(("before", params.filename))
        params.pnginfo["parameters"] += ", Saved by: test"

    def after(params):
        calls.append(("after", params.filename))

    script_callbacks.on_before_image_saved(before)
    script_callbacks.on_image_saved(after)
    try:
        image = Image.new("RGB", (8, 8), "red")
        outside = tmp_path / "elsewhere"
        with pytest.raises(ValueError, match="elsewhere"):
            images.save_image(image, str(outside), "", seed=1, info="a red square")
        assert not outside.exists() and calls == []

        saved, txt = images.save_image(image, "outputs/compat-test", "", seed=7, info="a red square",
                                       save_to_dirs=False)
        path = Path(saved)
        assert txt is None and path.parent == studio.paths.data_dir / "outputs" / "compat-test"
        assert path.name.endswith("-7.png")
        with Image.open(path) as png:
            assert images.read_info_from_image(png)[0] == "a red square, Saved by: test"
        assert calls == [("before", str(path.parent)), ("after", saved)]

        jpg, _ = images.save_image(image, "outputs/compat-test", "ext", seed=8, extension="jpg",
                                   info="a red jpeg", save_to_dirs=False)
        assert Path(jpg).name.startswith("ext-") and jpg.endswith("-8.jpg")
        with Image.open(jpg) as read:
            assert images.read_info_from_image(read)[0] == "a red jpeg, Saved by: test"
    finally:
        script_callbacks.remove_callbacks_for_function(before)
        script_callbacks.remove_callbacks_for_function(after)
    assert not studio.plugins.callbacks.has("before_image_saved")


def test_basedir_is_the_calling_scripts_extension(studio):
    from modules import scripts

    script_file = studio.paths.extensions_dir / "a1111-style" / "scripts" / "prompt_tools.py"
    namespace: dict = {}
    exec(compile("from modules import scripts\nfound = scripts.basedir()", str(script_file), "exec"), namespace)
    assert Path(namespace["found"]) == studio.paths.extensions_dir / "a1111-style"
    # A1111's ScriptRunner view: the built-in ControlNet, then the extension's always-on script.
    assert [s.title() for s in scripts.scripts_txt2img.alwayson] == ["ControlNet", "Prompt rewriter"]


def test_failing_hook_is_noted_then_switched_off(tmp_path, make_studio):
    add_extensions(tmp_path, "broken-process")
    studio = make_studio()

    def job():
        result = studio.generate(GenerationRequest(**SMALL, save_images=False))
        assert len(result.images) == 1
        return result.info.get("notes", [])

    for _ in range(3):
        notes = job()
        assert any("broken-process" in n and "process of Broken process" in n for n in notes)
    assert any("Broken process" in key for key in studio.plugins.problems.switched_off)
    assert job() == []


RACE = '''
import threading
import time

from webui.plugins import context
from webui.plugins.api import Script, process_images


class Race(Script):
    """Asks for a model switch between its two process_images calls, as a second client would."""

    def title(self):
        return "Race"

    def run(self, p):
        first = process_images(p)
        studio = context.plugins().studio
        other = next(f.title for f in studio.catalog.checkpoints if f.path != studio.manager.selected.file.path)
        self.switch = threading.Thread(target=studio.options.update, args=({"sd_model_checkpoint": other},))
        self.switch.start()
        time.sleep(1.0)  # time for the switch to take the model, were it free
        second = process_images(p)
        first.images += second.images
        first.infotexts += second.infotexts
        return first
'''


def test_a_model_switch_waits_for_the_whole_scripted_job(tmp_path, make_studio, checkpoint_store):
    (tmp_path / "extensions" / "race" / "scripts").mkdir(parents=True)
    (tmp_path / "extensions" / "race" / "scripts" / "race.py").write_text(RACE)
    copy_checkpoint(checkpoint_store("sd15", seed=1), tmp_path / "models" / "Stable-diffusion", "other.safetensors")
    studio = make_studio()
    started_with = studio.manager.selected.file.model_name
    result = studio.generate(GenerationRequest(**SMALL, save_images=False, script_name="Race"))
    assert [text.split("Model: ")[1].split(",")[0] for text in result.infotexts] == [started_with] * 2
    script = studio.plugins.scripts["txt2img"].find("race")
    script.switch.join(timeout=60)
    assert studio.manager.selected.file.model_name != started_with  # the switch happened, after the job
