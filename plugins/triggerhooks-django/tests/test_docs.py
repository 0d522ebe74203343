"""Every Python example of the Django pages runs, here in the Django project, and so do the
blocks of other pages marked as needing Django (the core's docs test skips these pages and
blocks: its environment has no Django)."""

from __future__ import annotations

import re
import sys
import types
import weakref
from collections.abc import Iterator
from pathlib import Path

import blinker
import pytest
from markdown_it import MarkdownIt
from triggerhooks_django.settings import parse_settings

import triggerhooks.ext
from triggerhooks import ThreadingTaskRunner

DOCS = Path(__file__).resolve().parents[3] / "docs"
PAGES = ["django.md", "migrating.md"]
"""Pages whose every block runs here."""
DJANGO_BLOCKS = ["from-caluma.md"]
"""Pages whose blocks marked ``DJANGO_MARK`` run here (the core's docs test runs the others)."""
SKIP_MARK = "# not run:"
DJANGO_MARK = "# needs Django:"


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(first line, code)`` of each ```python block of a Markdown page, in order."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type == "fence" and token.info.split()[:1] == ["python"] and token.map:
            blocks.append((token.map[0] + 2, token.content))
    return blocks


@pytest.fixture
def isolated_signals() -> Iterator[None]:
    """Disconnect, afterwards, the receivers a page connected."""
    signals = [s for s in vars(triggerhooks.ext).values() if isinstance(s, blinker.NamedSignal)]
    before = {signal: set(signal.receivers) for signal in signals}
    yield
    for signal in signals:
        for receiver_id in set(signal.receivers) - before[signal]:
            receiver = signal.receivers[receiver_id]
            if isinstance(receiver, weakref.ref):
                receiver = receiver()
            if receiver is not None:
                signal.disconnect(receiver)


@pytest.mark.usefixtures("transactional_db", "isolated_signals")
@pytest.mark.parametrize("name", PAGES + DJANGO_BLOCKS)
def test_python_examples_run(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The blocks run in order in one module; a ``TRIGGERHOOKS`` a block defines must be a
    valid setting (it is checked, not applied: the examples run on the project's own)."""
    page = DOCS / name
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.stem))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.chdir(tmp_path)
    ran = 0
    try:
        for line, code in python_blocks(page):
            if code.lstrip().startswith(SKIP_MARK) or (
                    name in DJANGO_BLOCKS and not code.lstrip().startswith(DJANGO_MARK)):
                continue
            exec(compile("\n" * (line - 1) + code, str(page), "exec", dont_inherit=True),
                 module.__dict__)
            ran += 1
            if "TRIGGERHOOKS" in module.__dict__:
                parse_settings(module.__dict__.pop("TRIGGERHOOKS"))
    finally:
        ThreadingTaskRunner.join_all(timeout=60)
    assert ran >= (2 if name in DJANGO_BLOCKS else 3)


def test_the_pages_are_in_the_docs() -> None:
    for name in PAGES + DJANGO_BLOCKS:
        assert (DOCS / name).read_text(encoding="utf-8").startswith("# ")


@pytest.mark.parametrize("page", [DOCS / "django.md", DOCS.parent / "plugins" /
                                  "triggerhooks-django" / "README.md"], ids=lambda p: p.name)
def test_the_install_steps_install_the_core_before_the_app(page: Path) -> None:
    """The app requires ``triggerhooks``: in a fresh environment, ``pip install
    ./plugins/triggerhooks-django`` alone finds no ``triggerhooks`` to install, so the
    install steps install the core from the checkout first."""
    block = next(token.content for token in MarkdownIt("commonmark").parse(
        page.read_text(encoding="utf-8")) if token.type == "fence" and token.info == "sh")
    commands = [line.partition("#")[0].split() for line in block.splitlines()]
    assert ["pip", "install", "."] in commands, block
    assert commands.index(["pip", "install", "."]) < commands.index(
        ["pip", "install", "./plugins/triggerhooks-django"]), block
