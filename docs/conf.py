"""Sphinx configuration: MyST Markdown pages and an API reference from the docstrings.

Build with ``sphinx-build -W -b html docs build/docs`` (``-W``: a warning fails the build).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import triggerhooks

HERE = Path(__file__).resolve().parent

project = "triggerhooks"
author = "the triggerhooks authors"
copyright = "the triggerhooks authors"
release = version = triggerhooks.__version__

extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "build"]
root_doc = "index"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_default_options = {"members": True, "show-inheritance": True}

html_theme = "alabaster"
html_title = f"triggerhooks {release}"
html_theme_options = {"description": "Tasks that run when the right triggers have fired"}

# The order of the known pages in the table of contents; any other page follows,
# alphabetically, so a page added to docs/ shows up without touching this file.
PAGE_ORDER = [
    "introduction", "getting-started", "configuration", "statuses", "tasks", "runners",
    "events", "plugins", "storages", "cli", "web", "inspecting", "testing", "cookbook",
    "celery", "django", "migrating", "from-caluma", "security", "internals", "api",
]
TOCTREE_GLOB = ":glob:\n\n*\n"


def ordered_pages(folder: Path = HERE) -> list[str]:
    """Every page of ``folder`` but the index: known pages in ``PAGE_ORDER``, then the rest."""
    pages = {path.stem for path in folder.glob("*.md")} - {"index"}
    known = [page for page in PAGE_ORDER if page in pages]
    return known + sorted(pages - set(known))


def _order_toctree(app: Any, docname: str, source: list[str]) -> None:
    # index.md has a glob toctree (every page, alphabetically); list the pages in order instead.
    if docname == "index" and TOCTREE_GLOB in source[0]:
        source[0] = source[0].replace(TOCTREE_GLOB, "\n" + "\n".join(ordered_pages()) + "\n", 1)


# Modules that are no API: the engine's internals, the entry points.
NOT_API = {"triggerhooks", "triggerhooks.__main__", "triggerhooks.plugins.builtins", "triggerhooks.cli",
           "triggerhooks.cli.render", "triggerhooks.cli.checks", "triggerhooks.cli.why",
           "triggerhooks.core.rules", "triggerhooks.serialization",
           "triggerhooks.testing", "triggerhooks.storages.redis.cache",
           "triggerhooks.storages.redis.client", "triggerhooks.storages.redis.facts",
           "triggerhooks.storages.redis.protocol", "triggerhooks.storages.redis.view"}


def undocumented_modules(api_text: str, package: Path = HERE.parent / "triggerhooks") -> list[str]:
    """Modules of the package that api.md has no ``automodule`` for (and that are API)."""
    found = []
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name not in NOT_API and f".. automodule:: {name}\n" not in api_text:
            found.append(name)
    return found


def _complete_api(app: Any, docname: str, source: list[str]) -> None:
    # A module added since api.md was written still gets its reference, at the end.
    if docname == "api":
        missing = undocumented_modules(source[0])
        if missing:
            source[0] += "\n## Other modules\n" + "".join(
                f"\n```{{eval-rst}}\n.. automodule:: {name}\n```\n" for name in missing)


def setup(app: Any) -> dict[str, Any]:
    app.connect("source-read", _order_toctree)
    app.connect("source-read", _complete_api)
    return {"parallel_read_safe": True}
