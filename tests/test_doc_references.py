"""Every pointer into the docs leads somewhere: an error message, a docstring or a doc that names a file
and a section (``docs/runbook.md#a-delivery-was-held-back``, ``docs/exports.md, "Retention"``,
``docs/domain.md §5.3``, a Markdown link ``(handover.md#names-beside-codes)``) names a file that exists
and a heading it has. A steward who follows an error message must not land on nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT

DOCS = PROJECT / "docs"
CODE_FOLDERS = ("assets", "bench", "connectors", "demo", "deploy", "pipelines", "regions", "schemas", "settings",
                "tests")
SUFFIXES = {".py", ".yaml", ".yml", ".md", ".toml", ".j2", ".html"}

DOC = r"docs/(?P<file>[a-z_]+\.md)"
ANCHOR = re.compile(DOC + r"#(?P<anchor>[a-z0-9_-]+)")
QUOTED = re.compile(DOC + r",? (?:\(|, )?\\?[\"“](?P<section>[^\"”\n\\]+)\\?[\"”]")  # \" inside a Python string too
SECTION = re.compile(DOC + r",? §(?P<number>\d+(?:\.\d+)?)")
LINK = re.compile(r"\]\((?P<file>[a-z_]+\.md)#(?P<anchor>[a-z0-9_-]+)\)")  # within docs/
BARE = re.compile(DOC + r"\b")


def _sources() -> list[Path]:
    files = [PROJECT / "README.md", PROJECT / "Makefile", *DOCS.glob("*.md")]
    for folder in CODE_FOLDERS:
        files += [p for p in (PROJECT / folder).rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return sorted(p for p in files if p.resolve() != Path(__file__).resolve())


def _headings(doc: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", doc.read_text(encoding="utf-8"), flags=re.S)
    return [line.lstrip("#").strip() for line in text.splitlines() if re.match(r"#{1,6} ", line)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.lower())
    return text.replace(" ", "-")


def references() -> list[tuple[str, str, str, str]]:
    """(where, doc file, kind, target) for every pointer found."""
    found = []
    for path in _sources():
        where = str(path.relative_to(PROJECT))
        text = path.read_text(encoding="utf-8", errors="ignore")
        for match in ANCHOR.finditer(text):
            found.append((where, match["file"], "anchor", match["anchor"]))
        for match in QUOTED.finditer(text):
            found.append((where, match["file"], "section", match["section"]))
        for match in SECTION.finditer(text):
            found.append((where, match["file"], "number", match["number"]))
        for match in BARE.finditer(text):
            found.append((where, match["file"], "file", ""))
        if path.parent == DOCS or path.name == "README.md":
            for match in LINK.finditer(text):
                found.append((where, match["file"], "anchor", match["anchor"]))
    return found


def test_the_scan_finds_the_kinds_of_pointer_the_code_uses():
    kinds = {kind for _, _, kind, _ in references()}
    assert kinds == {"anchor", "section", "number", "file"}


def test_an_invented_section_is_caught(tmp_path):
    headings = _headings(DOCS / "runbook.md")
    assert "A delivery was held back" in headings
    assert not _resolves(DOCS / "runbook.md", "section", "A delivery that never was")
    assert not _resolves(DOCS / "runbook.md", "anchor", "a-delivery-that-never-was")


def _resolves(doc: Path, kind: str, target: str) -> bool:
    if kind == "file":
        return doc.exists()
    if not doc.exists():
        return False
    headings = _headings(doc)
    if kind == "anchor":
        return target in {slug(h) for h in headings}
    if kind == "number":
        return any(re.match(rf"{re.escape(target)}\.?(\s|$)", h) for h in headings)
    # A quoted section: the heading itself, or the heading after its number ('4.3 DUO verzuimmelding rules').
    wanted = target.strip().rstrip(".").casefold()
    return any(re.sub(r"^\d+(\.\d+)*\.?\s+", "", h).casefold().startswith(wanted) or h.casefold().startswith(wanted)
               for h in headings)


@pytest.mark.parametrize("reference", sorted(set(references())), ids=lambda r: f"{r[0]}->{r[1]}:{r[3]}")
def test_every_pointer_into_the_docs_names_a_file_and_a_section_that_exist(reference):
    where, file, kind, target = reference
    assert _resolves(DOCS / file, kind, target), f"{where} points to docs/{file} {kind} {target!r}, which does not exist"
