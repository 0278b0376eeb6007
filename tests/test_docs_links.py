"""Every relative link in the README, docs/ and the other Markdown files resolves, anchors included.

Anchors follow GitHub's rule for heading ids: lower case, punctuation other than ``-`` and ``_``
dropped, spaces turned into ``-``, and ``-1``, ``-2``... added to repeated headings.
"""

from __future__ import annotations

import functools
import re
import subprocess
from pathlib import Path

import pytest

from tests.markdown import prose_lines

REPO = Path(__file__).resolve().parent.parent
INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
HTML_HREF = re.compile(r"<a\s[^>]*href=\"([^\"]+)\"")


def repository_files() -> set[Path]:
    """Files in the repository (tracked, or new and not ignored): what a clone has, unlike .venv/ or .devdb/."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    return {(REPO / name).resolve() for name in listed}


IN_THE_REPOSITORY = repository_files()


def markdown_files() -> list[Path]:
    return sorted(path for path in IN_THE_REPOSITORY
                  if path.suffix == ".md" and "node_modules" not in path.parts and path.is_file())


def _published(destination: Path) -> bool:
    """A file in the repository, or a folder holding one."""
    if destination in IN_THE_REPOSITORY:
        return True
    return destination.is_dir() and any(destination in path.parents for path in IN_THE_REPOSITORY)


def slug(heading: str) -> str:
    text = re.sub(r"`|\*\*?|__", "", heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


@functools.cache
def anchors(path: Path) -> frozenset[str]:
    found: set[str] = set()
    counts: dict[str, int] = {}
    for line in prose_lines(path.read_text(encoding="utf-8").splitlines()):
        found.update(HTML_ID.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            number = counts.get(base, 0)
            counts[base] = number + 1
            found.add(base if number == 0 else f"{base}-{number}")
    return frozenset(found)


def links(path: Path) -> list[str]:
    found: list[str] = []
    for line in prose_lines(path.read_text(encoding="utf-8").splitlines()):
        line = re.sub(r"`+[^`]*`+", "", line)  # a link inside a code span is not a link
        found += INLINE.findall(line) + HTML_HREF.findall(line)
        match = REFERENCE.match(line)
        if match:
            found.append(match.group(1))
    return [target for target in found if not re.match(r"^[a-z][a-z0-9+.-]*:", target)]


def broken(path: Path) -> list[str]:
    problems: list[str] = []
    for target in links(path):
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{target}: no such file")
        elif REPO in destination.parents and not _published(destination) and REPO in path.parents:
            problems.append(f"{target}: not in the repository (ignored by git), so not in a clone")
        elif anchor and destination.suffix == ".md" and anchor not in anchors(destination):
            problems.append(f"{target}: no heading with that anchor in {destination.name}")
    return problems


FILES = markdown_files()


@pytest.mark.parametrize("path", FILES, ids=[str(path.relative_to(REPO)) for path in FILES])
def test_every_relative_link_resolves(path):
    assert broken(path) == []


def test_the_checker_sees_links_and_catches_broken_ones(tmp_path):
    assert {"README.md", "docs/configuration.md"} <= {str(path.relative_to(REPO)) for path in FILES}
    assert len(links(REPO / "README.md")) >= 10, "the README links to the manual"
    page = tmp_path / "page.md"
    (tmp_path / "other.md").write_text("# Other page\n\n## Sign-in with `OAuth`\n\n## Sign-in with `OAuth`\n")
    page.write_text("# Page\n\n[ok](other.md#sign-in-with-oauth) [ok](other.md#sign-in-with-oauth-1) [ok](#page)\n"
                    "[bad](other.md#nowhere) [bad](missing.md) `[code](missing.md)`\n```\n[fenced](missing.md)\n```\n"
                    "~~~~sh\n[tilde](missing.md)\n~~~\n~~~~\n"
                    "[web](https://example.com/x) <a href=\"gone.md\">html</a>\n")
    assert broken(page) == ["other.md#nowhere: no heading with that anchor in other.md", "missing.md: no such file",
                            "gone.md: no such file"]


def test_the_readme_is_a_front_door():
    """At most ~250 lines, the two commands first, and a way into every page of the manual."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250
    assert any("make run" in line for line in lines[:10]) and any("make test" in line for line in lines[:10])
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(REPO / "README.md")}
    pages = {path.resolve() for path in (REPO / "docs").rglob("*.md")}
    assert sorted(str(page.relative_to(REPO)) for page in pages - linked) == []
