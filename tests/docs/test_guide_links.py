"""The operator's guide cannot rot silently: every picture and relative link in docs/guide/*.md
points at a file of the repository, every picture in docs/guide/images/ is used by a page and
made by the screenshot script, and the project's README links to the guide. Plain file checks:
no database, no browser."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "guide"
IMAGES = GUIDE / "images"
PAGES = sorted(GUIDE.glob("*.md"))
# [text](target) and ![alt](target); an optional "title" after the target is dropped.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//|#)", re.IGNORECASE)


def targets(page: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and picture outside code blocks and code spans."""
    found, fenced = [], False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if fenced or line.startswith("    "):
            continue
        text = re.sub(r"`[^`]*`", "", line)
        found.extend((number, target) for target in LINK.findall(text))
    return found


def local(target: str) -> str | None:
    """The file part of a relative target; None for a URL or an anchor in the same page."""
    if EXTERNAL.match(target):
        return None
    return target.split("#", 1)[0] or None


def test_the_guide_has_an_index_and_four_task_pages():
    names = {page.name for page in PAGES}
    assert "README.md" in names
    assert len(names - {"README.md"}) == 4, names


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_picture_and_relative_link_of_a_page_exists_in_the_repository(page):
    missing = []
    for number, target in targets(page):
        path = local(target)
        if path is None:
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.is_relative_to(ROOT):
            missing.append(f"{page.name}:{number}: {target} is outside the repository")
        elif not resolved.exists():
            missing.append(f"{page.name}:{number}: {target} does not exist")
    assert not missing, "\n".join(missing)


def test_every_task_page_is_in_the_index_and_has_pictures():
    index = {local(t) for _, t in targets(GUIDE / "README.md")}
    for page in PAGES:
        if page.name == "README.md":
            continue
        assert page.name in index, f"{page.name} is not linked from docs/guide/README.md"
        pictures = [t for _, t in targets(page) if t.startswith("images/")]
        assert pictures, f"{page.name} has no screenshot"


def test_every_picture_in_images_is_used_by_a_page():
    used = {
        (page.parent / path).resolve()
        for page in PAGES
        for _, target in targets(page)
        if (path := local(target))
    }
    unused = sorted(p.name for p in IMAGES.glob("*.png") if p.resolve() not in used)
    assert not unused, f"pictures no page shows: {unused}"


def test_every_picture_is_made_by_the_screenshot_script():
    """The pictures can be made again: each name is one the script saves."""
    script = (GUIDE / "screenshots.py").read_text()
    made = set(re.findall(r"\"((?:region|history|handoff|recover)-[a-z0-9-]+)\"", script))
    pictures = {p.stem for p in IMAGES.glob("*.png")}
    assert pictures <= made, f"not made by docs/guide/screenshots.py: {sorted(pictures - made)}"


def test_the_readme_links_to_the_guide():
    assert "docs/guide/README.md" in (ROOT / "README.md").read_text()


def test_the_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "![a picture](images/nowhere.png) and [a page](other.md#part), [web](https://x.test)\n"
        "`![in code](images/ignored.png)`\n"
        "```\n![in a block](images/ignored.png)\n```\n"
    )
    assert [t for _, t in targets(page)] == [
        "images/nowhere.png",
        "other.md#part",
        "https://x.test",
    ]
    assert [local(t) for _, t in targets(page)] == ["images/nowhere.png", "other.md", None]
