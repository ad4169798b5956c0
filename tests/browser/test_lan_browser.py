"""Two people on one shared studio, each in their own browser: log in, and stop only your own job.

Today's defect this guards: with two pages open, B's Interrupt ended A's running job.
"""

from __future__ import annotations

import httpx
import pytest

from tests.browser.conftest import needs_chromium
from tests.conftest import copy_checkpoint
from tests.kit.servers import add_user, start_server, wait_for

pytestmark = [pytest.mark.browser, needs_chromium, pytest.mark.timeout(600)]

PASSWORDS = {"admin": "admin-pass-1", "bob": "bob-pass-22", "carol": "carol-pass-333"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, checkpoint_store):
    data_dir = tmp_path_factory.mktemp("lan-browser")
    copy_checkpoint(checkpoint_store("sd15"), data_dir / "models" / "Stable-diffusion", "sd15.safetensors")
    for name, password in PASSWORDS.items():
        assert add_user(data_dir, name, password, admin=name == "admin").returncode == 0
    server = start_server(data_dir, extra_args=["--no-demo-model"], auth=("admin", PASSWORDS["admin"]))
    yield server
    server.stop()


def logged_in_page(browser, server, name: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(server.base_url, wait_until="domcontentloaded")
    assert "/login" in page.url  # the UI asks for a login first
    page.locator("#username").fill(name)
    page.locator("#password").fill(PASSWORDS[name])
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.locator("#txt2img_prompt textarea").wait_for()
    return context, page


def start_slow_job(page, prompt: str) -> None:
    page.locator("#txt2img_prompt textarea").fill(prompt)
    box = page.locator("#txt2img_steps input[type=number]").first
    for _ in range(10):  # the page's load event may overwrite early typing
        box.fill("150")
        box.press("Tab")
        page.wait_for_timeout(300)
        if box.input_value() == "150":
            break
    page.locator("#txt2img_generate").click()
    page.locator("#txt2img_interrupt").wait_for(state="visible")


def job_of(admin: httpx.Client, owner: str) -> dict:
    """The owner's latest job as the admin sees it ({} before there is one)."""
    jobs = [j for j in admin.get("/api/v1/jobs").json() if j["owner"] == owner]
    return max(jobs, key=lambda j: j["created_at"]) if jobs else {}



def test_each_page_interrupts_and_skips_only_its_own_job(browser, server):
    admin = server.as_user("admin", PASSWORDS["admin"])
    bob_context, bob = logged_in_page(browser, server, "bob")
    carol_context, carol = logged_in_page(browser, server, "carol")
    try:
        start_slow_job(bob, "bob's long render")
        wait_for(lambda: job_of(admin, "bob").get("state") == "running")
        start_slow_job(carol, "carol's render")
        wait_for(lambda: job_of(admin, "carol").get("state") == "queued")
        carol.locator("#txt2img_progress", has_text="1 ahead of you").wait_for()

        carol.locator("#txt2img_interrupt").click()  # her own job, still waiting: it is cancelled
        wait_for(lambda: job_of(admin, "carol").get("state") == "cancelled")
        bobs = job_of(admin, "bob")
        assert bobs.get("state") == "running" and not bobs["interrupted"]

        bob.locator("#txt2img_skip").click()  # skip works from the page too, on bob's job only
        wait_for(lambda: job_of(admin, "bob").get("state") == "done")
        bobs = job_of(admin, "bob")
        assert bobs["progress"]["step"] < 150, bobs["progress"]
        bob.locator("#txt2img_generate").wait_for(state="visible")
    finally:
        bob_context.close()
        carol_context.close()
        admin.close()
