"""The README and docs/ stay what their readers need: a short README that links every docs page,
keeps the two set-up commands, and has "Open in Colab" badges for the repository named in
pyproject.toml; every relative link and anchor in the README and docs/ leads somewhere."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The pages STYLE habit 12 asks for; the README links each of them.
TOPIC_PAGES = ("cli", "data", "models", "training", "results", "reliability", "development")
SETUP_COMMANDS = (  # .ci/run calls the second one; keep them word for word
    "make demo    # installs SynthGen (pinned) and separates the bundled example with the bundled models",
    "make test    # installs SynthGen and its test tools (pinned) and runs the whole test suite",
)
MAX_README_LINES = 250

BADGE = re.compile(r"\[!\[Open In Colab\]\(https://colab\.research\.google\.com/assets/colab-badge\.svg\)\]"
                   r"\((?P<url>[^)\s]+)\)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _documents() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def _without_code_blocks(text: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    return re.sub(r"`[^`\n]*`", "", _without_code_blocks(text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in _without_code_blocks(path.read_text()).splitlines():
        m = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            slug, n = _slug(m.group(1)), 1
            while slug in found:  # GitHub numbers repeated headings: name, name-1, name-2
                slug, n = f"{_slug(m.group(1))}-{n}", n + 1
            found.add(slug)
    return found


def _links(path: Path) -> list[str]:
    return [m.group("target") for m in LINK.finditer(_prose(path.read_text()))]


def _repository() -> tuple[str, str]:
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["synthgen"]
    return conf["repository"].rstrip("/").removesuffix(".git"), conf.get("ref") or "main"


def test_readme_is_short():
    lines = README.read_text().count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail to docs/ (at most {MAX_README_LINES})"


def test_readme_keeps_the_two_setup_commands():
    text = README.read_text()
    for command in SETUP_COMMANDS:
        assert f"```bash\n{command}\n```" in text, f"README.md lost the set-up command: {command}"
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_readme_links_every_docs_page():
    linked = {target.split("#")[0] for target in _links(README)}
    for name in TOPIC_PAGES:
        assert (DOCS / f"{name}.md").is_file(), f"docs/{name}.md is missing"
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in linked, f"README.md does not link docs/{page.name}"


def test_docs_pages_start_with_a_summary_and_link_back():
    for page in sorted(DOCS.glob("*.md")):
        blocks = page.read_text().split("\n\n")
        assert blocks[0].startswith("# "), f"{page.name}: no title"
        summary = blocks[1]
        assert not summary.startswith(("#", "|", "```", "<!--", "- ")), f"{page.name}: no summary paragraph"
        assert "../README.md" in _links(page), f"{page.name}: no link back to the README"


def test_readme_colab_badges_point_at_the_repository_and_existing_notebooks():
    repository, ref = _repository()
    assert repository.startswith("https://github.com/"), repository
    prefix = f"https://colab.research.google.com/github/{repository.removeprefix('https://github.com/')}/blob/{ref}/"
    urls = [m.group("url") for m in BADGE.finditer(README.read_text())]
    assert urls, "README.md has no Open in Colab badge"
    for url in urls:
        assert url.startswith(prefix), f"{url} is not in {prefix} (pyproject.toml [tool.synthgen])"
        path = url.removeprefix(prefix)
        assert path.startswith("notebooks/") and path.endswith(".ipynb"), url
        assert (ROOT / path).is_file(), f"{url}: {path} does not exist"
    badged = {url.removeprefix(prefix) for url in urls}
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert f"notebooks/{notebook.name}" in badged, f"README.md has no badge for {notebook.name}"


@pytest.mark.parametrize("document", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_relative_links_and_anchors_exist(document):
    problems = []
    for target in _links(document):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        dest = (document.parent / path).resolve() if path else document
        if not dest.exists():
            problems.append(f"{target}: {dest.relative_to(ROOT) if dest.is_relative_to(ROOT) else dest} does not exist")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            problems.append(f"{target}: no heading '#{anchor}' in {dest.name}")
    assert not problems, f"{document.name}: " + "; ".join(problems)


def test_the_bundled_checkpoints_sha256_in_models_md_are_those_of_the_files():
    import hashlib

    listed = {path: digest for digest, path in
              re.findall(r"^([0-9a-f]{64})  (assets/models/\S+)$", (DOCS / "models.md").read_text(), re.M)}
    bundled = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "assets" / "models").glob("*.pt"))
    assert sorted(listed) == bundled
    for path, digest in listed.items():
        assert hashlib.sha256((ROOT / path).read_bytes()).hexdigest() == digest, f"{path}: models.md gives another SHA-256"


def test_the_recipes_quoted_in_training_md_are_the_makefiles_own_lines():
    """training.md shows the bundled models' recipes as ```make blocks; each line of them must be
    a line of the Makefile, in the Makefile's order, so the page cannot tell of a recipe that is
    no longer the one run."""
    makefile = (ROOT / "Makefile").read_text().splitlines()
    blocks = re.findall(r"^```make\n(.*?)^```", (DOCS / "training.md").read_text(), re.M | re.S)
    assert len(blocks) >= 2  # the demo models' recipe and the query model's
    for block in blocks:
        at = 0
        for line in block.rstrip("\n").splitlines():
            assert line in makefile[at:], f"training.md quotes a line the Makefile lacks (or holds earlier): {line}"
            at = makefile.index(line, at) + 1
