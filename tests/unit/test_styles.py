"""styles.csv as A1111 reads and writes it, and A1111's rules for applying styles."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

import pytest

from webui.styles import PromptStyle, StyleDatabase, StyleError, merge_prompt

# Written the way A1111 writes it: UTF-8 with a BOM, csv.DictWriter's minimal quoting, CRLF.
A1111_FILE = (
    "\ufeffname,prompt,negative_prompt\r\n"
    'cinematic,"cinematic still of {prompt}, shallow depth of field","cartoon, ""drawing"""\r\n'
    'sharp,"sharp focus, 8k",\r\n'
    'multiline,"line one,\nline two","neg a,\r\nneg b"\r\n'
    "empty,,\r\n"
)


@pytest.fixture
def db(tmp_path: Path) -> StyleDatabase:
    path = tmp_path / "styles.csv"
    path.write_bytes(A1111_FILE.encode("utf-8"))
    return StyleDatabase(path)


def test_reads_a1111_file_with_quotes_commas_and_newlines(db: StyleDatabase) -> None:
    assert db.names() == ["cinematic", "sharp", "multiline", "empty"]
    assert db.get("cinematic") == PromptStyle("cinematic", "cinematic still of {prompt}, shallow depth of field",
                                              'cartoon, "drawing"')
    assert db.get("sharp") == PromptStyle("sharp", "sharp focus, 8k", "")
    assert db.get("multiline").prompt == "line one,\nline two"
    assert db.get("multiline").negative_prompt == "neg a,\r\nneg b"
    assert db.get("nope") is None


def test_round_trip_keeps_every_field(db: StyleDatabase, tmp_path: Path) -> None:
    before = db.all()
    db.save("new", 'a "quoted", prompt\nwith a newline', "neg, {prompt}")
    raw = db.path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbfname,prompt,negative_prompt\r\n")  # BOM + header, as A1111
    # Python's csv (what A1111 uses) reads it back unchanged.
    with db.path.open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [s.name for s in before] + ["new"]
    again = StyleDatabase(db.path)
    assert again.all() == [*before, PromptStyle("new", 'a "quoted", prompt\nwith a newline', "neg, {prompt}")]


def test_placeholder_is_replaced_else_appended_with_comma() -> None:
    assert merge_prompt("photo of {prompt}, 35mm", "a cat") == "photo of a cat, 35mm"
    assert merge_prompt("{prompt} | {prompt}", "x") == "x | x"  # every occurrence
    assert merge_prompt("sharp focus", "a cat") == "a cat, sharp focus"
    assert merge_prompt("  sharp focus ", " a cat ") == "a cat, sharp focus"  # both stripped
    assert merge_prompt("sharp focus", "") == "sharp focus"  # no leading comma
    assert merge_prompt("", "a cat") == "a cat"  # no trailing comma
    assert merge_prompt("photo of {prompt}", "") == "photo of "  # substitution is verbatim, as A1111


def test_apply_in_order_with_negatives(db: StyleDatabase) -> None:
    prompt, negative = db.apply("a cat", "blurry", ["sharp", "cinematic"])
    assert prompt == "cinematic still of a cat, sharp focus, 8k, shallow depth of field"
    assert negative == 'blurry, cartoon, "drawing"'
    prompt, negative = db.apply("a cat", "blurry", ["cinematic", "sharp"])
    assert prompt == "cinematic still of a cat, shallow depth of field, sharp focus, 8k"
    assert db.apply("a cat", "", ["empty"]) == ("a cat", "")
    assert db.apply("a cat", "", []) == ("a cat", "")


def test_unknown_style_is_an_error_naming_it(db: StyleDatabase) -> None:
    with pytest.raises(StyleError) as caught:
        db.apply("a cat", "", ["sharp", "no such style"])
    assert caught.value.name == "no such style"
    assert "no such style" in str(caught.value)


def test_save_overwrites_and_delete(db: StyleDatabase) -> None:
    db.save("sharp", "very sharp", "soft")
    assert db.names() == ["cinematic", "sharp", "multiline", "empty"]  # same place
    assert StyleDatabase(db.path).get("sharp") == PromptStyle("sharp", "very sharp", "soft")
    db.delete("sharp")
    assert "sharp" not in StyleDatabase(db.path).names()
    with pytest.raises(StyleError):
        db.delete("sharp")
    with pytest.raises(StyleError):
        db.save("  ", "x", "y")


def test_save_is_atomic(db: StyleDatabase, monkeypatch: pytest.MonkeyPatch) -> None:
    before = db.path.read_bytes()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: replaced.append((a, b)) or real_replace(a, b))
    db.save("new", "p", "n")
    assert len(replaced) == 1 and Path(replaced[0][1]) == db.path
    assert Path(replaced[0][0]).parent == db.path.parent  # same filesystem: a rename

    # A failure while writing leaves the old file untouched, no temp file behind, memory unchanged.
    import csv as csv_module

    class Boom(csv_module.DictWriter):
        def writerow(self, row):
            raise OSError("disk full")

    monkeypatch.setattr("webui.styles.csv.DictWriter", Boom)
    now = db.path.read_bytes()
    with pytest.raises(OSError):
        db.save("other", "p", "n")
    assert db.path.read_bytes() == now != before
    assert "other" not in db.names()
    assert sorted(p.name for p in db.path.parent.iterdir()) == ["styles.csv"]


def test_save_creates_the_file(tmp_path: Path) -> None:
    db = StyleDatabase(tmp_path / "sub" / "styles.csv")
    assert db.names() == []  # missing file: no styles
    db.save("a", "p", "")
    assert StyleDatabase(tmp_path / "sub" / "styles.csv").names() == ["a"]
    assert os.stat(db.path).st_mode & 0o777 == 0o644  # not mkstemp's 0600


def test_malformed_rows_are_skipped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "styles.csv"
    path.write_text(
        "name,prompt,negative_prompt\n"
        "good,p1,n1\n"
        ",no name,n\n"  # no name
        "too,many,fields,here\n"  # an unquoted comma
        "short\n"  # no prompt column at all
        "\n"
        "also good,p2,\n",
        encoding="utf-8",
    )
    with caplog.at_level(logging.WARNING, logger="webui.styles"):
        db = StyleDatabase(path)
    assert db.names() == ["good", "also good"]
    assert len([r for r in caplog.records if "malformed" in r.getMessage()]) == 3


def test_old_two_column_format_and_junk_files(tmp_path: Path) -> None:
    path = tmp_path / "styles.csv"
    path.write_text("name,text\nold,old style text\n", encoding="utf-8")
    assert StyleDatabase(path).get("old") == PromptStyle("old", "old style text", "")
    path.write_bytes(b"\x00\xff garbage \x00\n1,2,3\n")
    assert StyleDatabase(path).names() == []
    path.write_text("", encoding="utf-8")
    assert StyleDatabase(path).names() == []


def test_reload_sees_external_edits(db: StyleDatabase) -> None:
    db.path.write_text("name,prompt,negative_prompt\nonly,x,y\n", encoding="utf-8")
    assert "only" not in db.names()
    db.reload()
    assert db.names() == ["only"]
