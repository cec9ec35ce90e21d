"""The plugin docs' code is real: file blocks equal the files, and the examples run.

- A code block after ``<!-- file: PATH -->`` in docs/plugins/ must equal the file at PATH (relative to the
  repository root), whole; after ``<!-- excerpt: PATH -->`` its lines must appear in that file, in order.
  The tutorial shows every source file of plugins/bestofn-tutorial this way, so the two cannot drift.
- Each hook page (docs/plugins/hooks/<hook>.md) has an ``<!-- example: plugin -->`` block, which is run as
  a plugin module registered as ``myplugin``, and ``<!-- example: usage -->`` blocks, which then run
  against it.
- The ``<!-- example: test -->`` blocks of docs/plugins/testing.md are test modules: pytest runs them.
"""

from __future__ import annotations

import re
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from bestofn_core import hookspecs
from bestofn_core.testing.pytest_plugin import PluginRegistrar

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "plugins"
TUTORIAL = DOCS / "tutorial.md"
TUTORIAL_PLUGIN = ROOT / "plugins" / "bestofn-tutorial"
HOOK_NAMES = sorted(name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name), "bestofn_spec"))

_TAG_RE = re.compile(r"^<!--\s*(file|excerpt|example):\s*(\S+)\s*-->\s*$")
_FENCE_RE = re.compile(r"^(`{3,}|~{3,})")


@dataclass(frozen=True)
class Block:
    """A code block that follows a ``<!-- kind: value -->`` tag in a markdown page."""

    page: Path
    line: int  # 1-based line of the tag
    kind: str
    value: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def tagged_blocks(page: Path) -> list[Block]:
    """Every tagged code block of ``page``; a tag without a code block right after it fails the test."""
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks = []
    for index, line in enumerate(lines):
        tag = _TAG_RE.match(line)
        if tag is None:
            continue
        start = index + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        fence = _FENCE_RE.match(lines[start]) if start < len(lines) else None
        where = f"{page.relative_to(ROOT)}:{index + 1}"
        assert fence is not None, f"{where}: the tag {line.strip()!r} is not followed by a code block"
        end = start + 1
        closing = fence.group(1)[0] * len(fence.group(1))
        while end < len(lines) and lines[end].strip() != closing:
            end += 1
        assert end < len(lines), f"{where}: the code block after the tag is never closed"
        code = "".join(f"{text}\n" for text in lines[start + 1 : end])
        blocks.append(Block(page, index + 1, tag.group(1), tag.group(2), code))
    return blocks


def all_blocks(kind: str) -> list[Block]:
    return [
        block for page in sorted(DOCS.rglob("*.md")) for block in tagged_blocks(page) if block.kind == kind
    ]


# --------------------------------------------------------------------------------- files and excerpts


@pytest.mark.parametrize("block", all_blocks("file"), ids=lambda block: block.where)
def test_a_file_block_is_the_whole_file(block: Block) -> None:
    path = ROOT / block.value
    assert path.is_file(), f"{block.where} shows {block.value}, which does not exist"
    assert block.code == path.read_text(encoding="utf-8"), (
        f"{block.where} differs from {block.value}: update the code block (or the file) so they match"
    )


@pytest.mark.parametrize("block", all_blocks("excerpt"), ids=lambda block: block.where)
def test_an_excerpt_block_is_in_the_file_in_order(block: Block) -> None:
    path = ROOT / block.value
    assert path.is_file(), f"{block.where} quotes {block.value}, which does not exist"
    remaining = iter(path.read_text(encoding="utf-8").splitlines())
    for line in block.code.splitlines():
        if line.strip():
            assert any(candidate == line for candidate in remaining), (
                f"{block.where}: {line!r} is not in {block.value} (after the lines before it)"
            )


def test_the_tutorial_shows_every_source_file_of_the_plugin() -> None:
    shown = {block.value for block in tagged_blocks(TUTORIAL) if block.kind == "file"}
    sources = {
        str(path.relative_to(ROOT))
        for path in TUTORIAL_PLUGIN.rglob("*")
        if path.suffix in {".py", ".toml"} and "__pycache__" not in path.parts
    }
    assert len(sources) >= 7  # pyproject.toml, three modules, conftest.py and two test modules
    assert sources <= shown, f"the tutorial does not show {sorted(sources - shown)}"
    assert (TUTORIAL_PLUGIN / "bestofn_tutorial" / "py.typed").is_file()


# --------------------------------------------------------------------------------- hook page examples


def hook_page(hook_name: str) -> Path:
    return DOCS / "hooks" / f"{hook_name}.md"


@pytest.mark.parametrize("hook_name", HOOK_NAMES)
def test_a_hook_page_example_runs_as_a_plugin(
    hook_name: str,
    bestofn_no_autoload: None,
    bestofn_isolated: Path,
    bestofn_plugin: PluginRegistrar,
) -> None:
    blocks = tagged_blocks(hook_page(hook_name))
    plugins = [block for block in blocks if block.kind == "example" and block.value == "plugin"]
    usages = [block for block in blocks if block.kind == "example" and block.value == "usage"]
    assert len(plugins) == 1 and usages, f"{hook_name}.md needs one 'example: plugin' block and usage blocks"
    module = types.ModuleType(f"myplugin_{hook_name}")
    exec(compile(plugins[0].code, plugins[0].where, "exec"), module.__dict__)
    assert hasattr(getattr(module, hook_name, None), "bestofn_impl"), (
        f"the example of {hook_name}.md does not implement {hook_name} with @hookimpl"
    )
    # check=True: the example must register something, and without errors
    bestofn_plugin(module, name="myplugin")
    for usage in usages:
        exec(compile(usage.code, usage.where, "exec"), {"__name__": f"usage_of_{hook_name}"})


# --------------------------------------------------------------------------------- testing.md examples


def test_the_testing_guide_examples_pass_under_pytest(pytester: pytest.Pytester) -> None:
    blocks = [block for block in tagged_blocks(DOCS / "testing.md") if block.kind == "example"]
    assert blocks and {block.value for block in blocks} == {"test"}
    for number, block in enumerate(blocks):
        pytester.makepyfile(**{f"test_testing_md_{number}": block.code})
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    expected = sum(len(re.findall(r"^def test_", block.code, flags=re.MULTILINE)) for block in blocks)
    # hypothesis's pytest plugin costs 2 s per in-process run and plays no part here
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:hypothesispytest")
    result.assert_outcomes(passed=expected)
