"""What a user installs: the wheel holds every module, the ``py.typed`` marker, the
Redis backend's Lua script and the web inspector's templates and assets."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.helpers import ROOT


@pytest.mark.slow  # builds the wheel in a subprocess
def test_the_wheel_ships_every_module_py_typed_the_lua_script_and_web_assets(tmp_path: Path) -> None:
    # Built from a copy, so the source tree gets no build/ or egg-info.
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(ROOT / "triggerhooks", source / "triggerhooks",
                    ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--disable-pip-version-check", "--wheel-dir",
         str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = (tmp_path / "dist").glob("triggerhooks-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    assert "triggerhooks/py.typed" in names
    modules = {path.relative_to(ROOT).as_posix()
               for path in (ROOT / "triggerhooks").rglob("*.py")}
    assert modules - names == set()
    web = {path.relative_to(ROOT).as_posix() for folder in ("templates", "static")
           for path in (ROOT / "triggerhooks" / "web" / folder).iterdir()}
    assert "triggerhooks/web/templates/session.html" in web
    assert "triggerhooks/web/static/live.js" in web
    assert web - names == set()  # the inspector's templates and assets, all shipped
    scripts = {path.relative_to(ROOT).as_posix() for path in (ROOT / "triggerhooks").rglob("*.lua")}
    assert "triggerhooks/storages/redis/commit.lua" in scripts
    assert scripts - names == set()
    assert {name.partition("/")[0] for name in names if not name.endswith(".dist-info/")} == {
        "triggerhooks", wheel.name.partition("-py3")[0] + ".dist-info"}
