"""Every documented ``pip install ./plugins/<plugin>`` installs triggerhooks from the checkout
first: the core is not on any package index, so in a fresh environment the plugin alone
finds no ``triggerhooks`` to install."""

from __future__ import annotations

from pathlib import Path

import pytest
from markdown_it import MarkdownIt

from tests.helpers import ROOT

PAGES = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md",
         *sorted((ROOT / "plugins").glob("*/README.md"))]


def install_blocks(page: Path) -> list[list[list[str]]]:
    """The commands (split into words, comments dropped) of each shell block of ``page``
    that installs a plugin of this checkout without ``-e``."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type != "fence" or token.info.split()[:1] not in (["sh"], ["shell"], ["bash"]):
            continue
        commands = [line.partition("#")[0].split() for line in token.content.splitlines()]
        if any(_installs_plugin(words) for words in commands):
            blocks.append(commands)
    return blocks


def _installs_core(words: list[str]) -> bool:
    """``pip install .``, or with extras (``-e ".[test]"``)."""
    return words[:2] == ["pip", "install"] and any(
        word.strip("\"'") == "." or word.strip("\"'").startswith(".[") for word in words[2:])


def _installs_plugin(words: list[str]) -> bool:
    return words[:2] == ["pip", "install"] and "-e" not in words and any(
        word.startswith("./plugins/") for word in words)


@pytest.mark.parametrize("page", [page for page in PAGES if install_blocks(page)],
                         ids=lambda page: str(page.relative_to(ROOT)))
def test_a_plugin_is_installed_after_the_core(page: Path) -> None:
    for commands in install_blocks(page):
        core = [i for i, words in enumerate(commands) if _installs_core(words)]
        plugin = next(i for i, words in enumerate(commands) if _installs_plugin(words))
        assert core and core[0] < plugin, "\n".join(map(" ".join, commands))
