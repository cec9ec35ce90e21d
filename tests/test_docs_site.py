"""The documentation site builds, publishes every page, and cannot drift from the README or the API.

- ``mkdocs build --strict`` (mkdocs.yml) succeeds with no warning, and the API reference it generates from
  the docstrings shows the real signatures (``BestOfN``, ``LMBackend.acomplete``).
- docs/getting-started.md shows the README's two set-up commands verbatim: the first fenced block under
  "## Set up" and the block after the ``<!-- ci:test-command`` marker.
- Every page under docs/ is in mkdocs.yml's ``nav`` (mkdocs only logs an INFO line for a page left out,
  even with ``--strict``), and every page the nav names exists.
- Every name ``bestofn_core.__all__`` exports has a ``:::`` directive in docs/reference/.
"""

from __future__ import annotations

import html
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import bestofn_core
from bestofn_core.best_of_n.best_of_n import BestOfN
from bestofn_core.protocols import LMBackend

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
GETTING_STARTED = DOCS / "getting-started.md"
MKDOCS_YML = ROOT / "mkdocs.yml"

CI_MARKER = "<!-- ci:test-command"
FIRST_COMMAND = "the first set-up command"
TEST_COMMAND = "the test command (after <!-- ci:test-command)"

_FENCE_RE = re.compile(r"^(`{3,}|~{3,})")
_TAG_RE = re.compile(r"<[^>]+>")


def fenced_blocks(lines: list[str]) -> Iterator[tuple[int, str]]:
    """``(line index of the opening fence, content)`` for every fenced code block in ``lines``."""
    i = 0
    while i < len(lines):
        opening = _FENCE_RE.match(lines[i].strip())
        if opening is None:
            i += 1
            continue
        fence = opening.group(1)
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        yield i, "\n".join(lines[i + 1 : end]).strip()
        i = end + 1


def readme_commands() -> dict[str, str]:
    """The README's set-up commands: the first block under "## Set up", the one after the CI marker."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks = list(fenced_blocks(lines))
    setup = next((i for i, line in enumerate(lines) if line.strip() == "## Set up"), None)
    assert setup is not None, 'README.md has no "## Set up" section'
    marker = next((i for i, line in enumerate(lines) if line.strip().startswith(CI_MARKER)), None)
    assert marker is not None, "README.md has no <!-- ci:test-command --> marker"
    first = next((text for start, text in blocks if start > setup), None)
    test = next((text for start, text in blocks if start > marker), None)
    assert first and test, "README.md's set-up commands are not in fenced code blocks"
    return {FIRST_COMMAND: first, TEST_COMMAND: test}


def nav_pages(node: Any) -> Iterator[str]:
    """Every page path in an mkdocs ``nav`` (a list of strings and ``{title: page or list}`` dicts)."""
    if isinstance(node, str):
        if not node.startswith(("http://", "https://")):
            yield node
    elif isinstance(node, list):
        for item in node:
            yield from nav_pages(item)
    elif isinstance(node, dict):
        for value in node.values():
            yield from nav_pages(value)


def rendered_signature(page: Path, object_id: str) -> str:
    """The signature mkdocstrings rendered for ``object_id`` on ``page``, as plain text."""
    text = page.read_text(encoding="utf-8")
    heading = text.find(f'id="{object_id}"')
    assert heading != -1, f"{page} documents no object {object_id!r}"
    match = re.compile(r'<div class="doc-signature[^"]*">(.*?)</div>', re.S).search(text, heading)
    assert match is not None, f"{page} shows no signature for {object_id!r}"
    return " ".join(html.unescape(_TAG_RE.sub("", match.group(1))).split())


@pytest.mark.slow
def test_mkdocs_build_strict_renders_the_api_reference(tmp_path: Path) -> None:
    site = tmp_path / "site"
    # NO_MKDOCS_2_WARNING silences mkdocs-material's end-of-life banner (stderr, not a build warning)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(MKDOCS_YML), "-d", str(site)]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=110)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    assert "WARNING" not in output, output

    signature = rendered_signature(site / "reference" / "api" / "index.html", "bestofn_core.BestOfN")
    assert signature.startswith("BestOfN("), signature
    for name in inspect.signature(BestOfN).parameters:
        assert f"{name}:" in signature, f"BestOfN's rendered signature lacks {name!r}: {signature}"

    protocols = site / "reference" / "protocols" / "index.html"
    assert 'id="bestofn_core.protocols.LMBackend"' in protocols.read_text(encoding="utf-8")
    signature = rendered_signature(protocols, "bestofn_core.protocols.LMBackend.acomplete")
    assert signature == "acomplete(request: LMRequest) -> LMResponse", signature
    assert list(inspect.signature(LMBackend.acomplete).parameters) == ["self", "request"]

    # the hook specifications' ":param register:" docstrings render as a parameters table
    hookspecs = (site / "reference" / "hookspecs" / "index.html").read_text(encoding="utf-8")
    assert ":param" not in hookspecs


@pytest.mark.parametrize("which", [FIRST_COMMAND, TEST_COMMAND])
def test_getting_started_shows_the_readme_commands(which: str) -> None:
    command = readme_commands()[which]
    blocks = [text for _, text in fenced_blocks(GETTING_STARTED.read_text(encoding="utf-8").splitlines())]
    assert command in blocks, (
        f"docs/getting-started.md must show README.md's {which} verbatim, in a code block of its own:\n"
        f"{command}"
    )


def test_every_docs_page_is_in_the_nav() -> None:
    config = yaml.safe_load(MKDOCS_YML.read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs"
    in_nav = list(nav_pages(config["nav"]))
    on_disk = {page.relative_to(DOCS).as_posix() for page in DOCS.rglob("*.md")}
    assert sorted(on_disk - set(in_nav)) == [], "pages under docs/ missing from mkdocs.yml's nav"
    assert sorted(set(in_nav) - on_disk) == [], "pages in mkdocs.yml's nav missing from docs/"
    assert len(in_nav) == len(set(in_nav)), "a page is listed twice in mkdocs.yml's nav"


def test_every_public_name_is_in_the_api_reference() -> None:
    directives = {
        line.strip().removeprefix(":::").strip()
        for page in (DOCS / "reference").glob("*.md")
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith(":::")
    }
    if "bestofn_core.settings.Settings" in directives:
        directives.add("bestofn_core.settings")  # bon.settings, the live instance, documented by its class
    public = [name for name in bestofn_core.__all__ if name != "__version__"]
    missing = [name for name in public if f"bestofn_core.{name}" not in directives]
    assert missing == [], f"add a ::: bestofn_core.NAME directive to docs/reference/api.md for {missing}"
