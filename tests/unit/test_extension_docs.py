"""docs/extensions.md's hook reference is the one the code's docstrings generate."""

from webui.plugins import reference


def test_the_hook_reference_in_the_docs_is_current():
    text = reference.DOC.read_text(encoding="utf-8")
    assert reference.replace_in(text) == text, "run: python -m webui.plugins.reference --write"


def test_the_reference_covers_every_hook_and_callback():
    from webui.plugins.callbacks import KINDS
    from webui.plugins.script import JOB_HOOKS

    generated = reference.reference()
    assert all(f"`{hook}(" in generated for hook in JOB_HOOKS)
    assert all(f"`on_{kind}(fn)`" in generated for kind in KINDS)
