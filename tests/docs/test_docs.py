"""The docs are checked: every Python example runs, every signal and command is documented."""

from __future__ import annotations

import importlib.util
import re
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt

from tests.helpers import ROOT
from triggerhooks.cli import cli
from triggerhooks.runners import ThreadingTaskRunner
from triggerhooks.signals import namespace

DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
SKIP_MARK = "# not run:"
DJANGO_TESTS = "plugins/triggerhooks-django/tests/test_docs.py"
RUN_BY_PLUGIN = {"django.md": DJANGO_TESTS, "migrating.md": DJANGO_TESTS}
"""Pages whose examples need Django (not installed here): the Django plugin's tests run them."""
DJANGO_MARK = "# needs Django:"
"""The first line of a block, on another page, that needs Django: the plugin's tests run it."""


def python_blocks(page: Path) -> list[tuple[int, str]]:
    """``(first line, code)`` of each ```python block of a Markdown page, in order."""
    blocks = []
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type == "fence" and token.info.split()[:1] == ["python"] and token.map:
            blocks.append((token.map[0] + 2, token.content))
    return blocks


def run_page(page: Path, monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """Run the Python blocks of ``page`` in order, in one module; tracebacks point into the page."""
    # A real module, so that pydantic and dataclasses find the page's names by module name.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.stem))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    try:
        for line, code in python_blocks(page):
            if code.lstrip().startswith((SKIP_MARK, DJANGO_MARK)):
                continue
            # dont_inherit: the page gets no __future__ import of this test module.
            source = compile("\n" * (line - 1) + code, str(page), "exec", dont_inherit=True)
            exec(source, module.__dict__)
    finally:
        ThreadingTaskRunner.join_all(timeout=60)
    return module


@pytest.mark.usefixtures("isolated_signals")  # receivers a page connects with @on go afterwards
@pytest.mark.parametrize("page", PAGES, ids=[page.name for page in PAGES])
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if page.name in RUN_BY_PLUGIN:
        pytest.skip(f"needs Django: {RUN_BY_PLUGIN[page.name]} runs its examples")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    run_page(page, monkeypatch)


def test_a_page_runs_like_a_module_of_its_own(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```python\ndef f(x: int): pass\n```\n\n"
                    "```python\n# not run: would fail\nraise SystemExit\n```\n\n"
                    "```python\nimport sys\nassert f.__annotations__ == {'x': int}\n"
                    "assert sys.modules[__name__].f is f\n```\n")
    assert run_page(page, monkeypatch).__name__ == "docs_page"
    page.write_text("# Page\n\nText.\n\n```python\nx = 1\n\n1 / 0\n```\n")
    with pytest.raises(ZeroDivisionError) as caught:
        run_page(page, monkeypatch)
    assert (caught.traceback[-1].path, caught.traceback[-1].lineno + 1) == (page, 8)


def test_blocks_are_found_and_skip_marks_honoured(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Page\n\n```python\nx = 1\n```\n\n```sh\nls\n```\n\n"
                    "````markdown\n```python\nnot a block\n```\n````\n\n"
                    "```python\n# not run: needs a server\nraise SystemExit\n```\n\n"
                    "```python\n# needs Django: the plugin runs it\nraise SystemExit\n```\n")
    assert python_blocks(page) == [(4, "x = 1\n"), (18, "# not run: needs a server\nraise SystemExit\n"),
                                   (23, "# needs Django: the plugin runs it\nraise SystemExit\n")]
    run_page(page, monkeypatch)  # neither marked block runs


def test_blocks_that_need_django_are_run_by_the_plugin() -> None:
    pages = [page.name for page in PAGES if page.name not in RUN_BY_PLUGIN
             and any(code.lstrip().startswith(DJANGO_MARK) for _, code in python_blocks(page))]
    assert "from-caluma.md" in pages
    plugin_tests = (ROOT / DJANGO_TESTS).read_text(encoding="utf-8")
    assert [name for name in pages if f'"{name}"' not in plugin_tests] == [], (
        f"pages with blocks marked {DJANGO_MARK!r} must be listed in {DJANGO_TESTS}")


def _all_docs() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in PAGES)


def test_every_signal_is_documented() -> None:
    text = _all_docs()
    missing = [name for name in namespace if f"`{name}`" not in text]
    assert not missing, f"signals not mentioned (as `name`) in docs/*.md: {missing}"


def test_every_command_is_documented() -> None:
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    missing = [name for name in cli.commands if f"## triggerhooks {name}\n" not in text]
    assert not missing, f"commands without a section in docs/cli.md: {missing}"
    assert len(cli.commands) >= 11


def test_every_page_starts_with_a_title() -> None:
    for page in PAGES:
        assert page.read_text(encoding="utf-8").startswith("# "), page.name


def _conf() -> Any:
    spec = importlib.util.spec_from_file_location("docs_conf", DOCS / "conf.py")
    assert spec and spec.loader
    conf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conf)
    return conf


def test_toctree_order(tmp_path: Path) -> None:
    conf = _conf()
    for name in ("index", "api", "cli", "zebra", "configuration", "getting-started", "alpha"):
        (tmp_path / f"{name}.md").write_text(f"# {name}\n")
    assert conf.ordered_pages(tmp_path) == ["getting-started", "configuration", "cli", "api",
                                            "alpha", "zebra"]
    source = [(DOCS / "index.md").read_text(encoding="utf-8")]
    conf._order_toctree(None, "index", source)
    assert ":glob:" not in source[0]
    assert "\n" + "\n".join(conf.ordered_pages()) + "\n```" in source[0]
    assert conf.ordered_pages()[0] == "getting-started"


def test_api_reference_covers_every_module() -> None:
    conf = _conf()
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    source = [api]
    conf._complete_api(None, "api", source)
    assert conf.undocumented_modules(source[0]) == []
    assert "triggerhooks.manager" in conf.undocumented_modules("")
    assert "triggerhooks.core.rules" not in conf.undocumented_modules("")
