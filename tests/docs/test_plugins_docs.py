"""The plugin docs match the code: every hook documented, no hook named that does not exist.

``docs/plugins.md`` carries a hook reference generated from the hookspec
docstrings; regenerate it with ``python -m tests.docs.test_plugins_docs``.
"""

from __future__ import annotations

import inspect
import re
from types import FunctionType

import pytest

from tests.helpers import ROOT
from triggerhooks.plugins import ENTRY_POINT_GROUP, get_plugin_manager, hookspecs
from triggerhooks.testing import plugin as testing_plugin

PAGE = ROOT / "docs" / "plugins.md"
BEGIN = ("<!-- hook reference: generated from triggerhooks/plugins/hookspecs.py by "
         "`python -m tests.docs.test_plugins_docs`; do not edit -->")
END = "<!-- end of hook reference -->"
EXAMPLE_PLUGIN = ROOT / "plugins" / "triggerhooks-example" / "src" / "triggerhooks_example" / "plugin.py"


def hookspec_functions() -> dict[str, FunctionType]:
    """Every function in the hookspecs module that carries the hookspec marker."""
    return {name: value for name, value in vars(hookspecs).items()
            if inspect.isfunction(value) and hasattr(value, f"{ENTRY_POINT_GROUP}_spec")}


def hook_reference() -> str:
    """The Markdown reference of every hook, from its signature and docstring."""
    sections = []
    for name, function in hookspec_functions().items():
        signature = inspect.signature(function)
        arguments = ", ".join(signature.parameters)
        returns = signature.return_annotation
        heading = f"### `{name}({arguments})" + (f" -> {returns}`" if returns != "None" else "`")
        doc = (inspect.getdoc(function) or "").replace("``", "`")
        sections.append(f"{heading}\n\n{doc}\n")
    return "\n".join(sections)


def split_page(text: str) -> tuple[str, str, str]:
    head, begin, rest = text.partition(BEGIN)
    body, end, tail = rest.partition(END)
    assert begin and end, f"{PAGE.name} lacks the hook reference markers"
    return head + begin, body, end + tail


def regenerate() -> None:
    head, _, tail = split_page(PAGE.read_text())
    PAGE.write_text(f"{head}\n\n{hook_reference()}\n{tail}")


def test_every_hookspec_says_when_it_is_called_and_what_to_do() -> None:
    specs = hookspec_functions()
    assert set(specs) == {name for name in vars(get_plugin_manager().hook)
                          if not name.startswith("_")
                          and getattr(get_plugin_manager().hook, name).has_spec()}
    for name, function in specs.items():
        doc = inspect.getdoc(function) or ""
        assert "Called" in doc, f"{name}'s docstring does not say when it is called"
        assert re.search(r"\b[Rr]eturn", doc), f"{name}'s docstring does not say what to return"


def test_the_hook_reference_in_the_docs_is_generated_from_the_hookspecs() -> None:
    _, body, _ = split_page(PAGE.read_text())
    assert body.strip() == hook_reference().strip(), (
        "docs/plugins.md's hook reference is out of date: run `python -m tests.docs.test_plugins_docs`")


@pytest.mark.parametrize("hook", sorted(hookspec_functions()))
def test_every_hook_is_documented(hook: str) -> None:
    _, body, _ = split_page(PAGE.read_text())
    assert f"### `{hook}(" in body
    assert f"`{hook}`" in split_page(PAGE.read_text())[0], f"{hook} is missing from the hook table"


# The pytest plugin's fixtures (and its ini option) share the prefix too.
PYTEST_FIXTURES = set(testing_plugin.__all__)


def test_the_docs_name_no_hook_that_does_not_exist() -> None:
    # Import packages of plugin distributions (triggerhooks_example, ...) share the prefix.
    packages = {path.name for path in ROOT.glob("plugins/*/src/*") if path.is_dir()}
    packages |= {path.name for path in ROOT.glob("tests/plugins/packages/*/src/*") if path.is_dir()}
    pages = [*ROOT.glob("docs/*.md"), ROOT / "README.md", *ROOT.glob("plugins/*/README.md")]
    hooks = set(hookspec_functions())
    misspelled_on_purpose = {"triggerhooks_register_storage"}  # the "did you mean" example
    assert not misspelled_on_purpose & hooks
    for page in pages:
        # a word followed by ".name" is a module path (triggerhooks_x.plugin), not a hook
        for word in set(re.findall(r"\btriggerhooks_\w+\b(?!\.\w)", page.read_text())):
            if word in packages or word in misspelled_on_purpose or word in PYTEST_FIXTURES:
                continue
            assert word in hooks, f"{page.relative_to(ROOT)} names {word!r}, which is no hook"


def test_the_example_plugin_module_shown_in_the_docs_is_the_real_one() -> None:
    marker = "# not run: plugins/triggerhooks-example/src/triggerhooks_example/plugin.py"
    block = PAGE.read_text().split(marker, 1)[1].split("\n", 1)[1].split("```", 1)[0]
    assert block == EXAMPLE_PLUGIN.read_text()


if __name__ == "__main__":
    regenerate()
    print(f"regenerated the hook reference in {PAGE.relative_to(ROOT)}")
