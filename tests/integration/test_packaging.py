"""A plain `pip install .` (a wheel, not an editable install) ships everything the app serves."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_holds_assets_migrations_and_the_console_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("lianqin-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    served = (p for p in (ROOT / "assets").rglob("*.*") if "screenshots" not in p.parts)
    for asset in sorted(p.relative_to(ROOT / "assets") for p in served):
        assert f"dashboard/web_assets/{asset}" in names, asset
    assert "dashboard/migrations/env.py" in names
    # package data in subfolders too: the UI strings, one file per language
    for data in sorted(ROOT.glob("dashboard/data/**/*.*")):
        assert str(data.relative_to(ROOT)) in names, data
    assert {"dashboard/data/i18n/zh-CN.json", "dashboard/data/i18n/en.json"} <= names
    assert any(n.startswith("dashboard/migrations/versions/0001_") for n in names)
    assert {"layouts/wall.py", "callbacks/router.py", "dashboard/cli/__main__.py"} <= names
    # every package of the tree, and every module in it (a package missing from
    # pyproject.toml's list installs without its modules)
    for module in sorted(ROOT.glob("dashboard/**/*.py")):
        assert str(module.relative_to(ROOT)) in names, module
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "lianqin = dashboard.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_ci_sees_installed_debian_packages() -> None:
    """.ci/run installs only what is missing; with everything installed it asks for nothing,
    every time (an `fc-list | grep -q` under pipefail failed at random on SIGPIPE)."""
    for _ in range(20):
        out = subprocess.run(
            ["bash", str(ROOT / ".ci" / "apt-needs")], capture_output=True, text=True, check=True
        )
        assert out.stdout == "", out.stdout
