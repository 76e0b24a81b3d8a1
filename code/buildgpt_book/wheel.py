"""The package as a wheel, published with the book, so that a downloaded chapter runs outside the repository.

Each chapter's first cell (hidden on the page, present in the downloaded notebook) installs
`buildgpt` from this wheel when it is missing: see `INSTALL_CELL`. The intro offers the wheel
for download; `tests/test_notebook_download.py` runs a downloaded chapter in a fresh venv.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import buildgpt

WHEEL_NAME = f"buildgpt-{buildgpt.__version__}-py3-none-any.whl"
SOURCE_FILES, SOURCE_FOLDER = ("pyproject.toml", "README.md"), "code"  # what the wheel is built from

# The first code cell of every chapter (tagged remove-cell). `{extras}` names the pyproject extras it needs.
INSTALL_CELL = '''\
# Outside the book's repository, install its package, buildgpt, from the wheel beside this notebook.
import importlib.util, pathlib, subprocess, sys
if importlib.util.find_spec("buildgpt") is None:
    wheels = sorted(pathlib.Path().glob("buildgpt-*.whl"))
    if not wheels:
        raise ModuleNotFoundError("This notebook needs the book's package, buildgpt: download its wheel "
                                  "(buildgpt-*.whl, offered on the book's first page) into this notebook's "
                                  "folder and run this cell again, or clone the repository and run `make test`.")
    subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", f"{{wheels[-1]}}[{extras}]"])
    importlib.invalidate_caches()'''


def build_wheel(root: Path, out: Path) -> Path:
    """Build the package's wheel from the repository at `root` into `out`, offline (no index, no isolation).

    build_wheel(Path("."), Path("_build/wheel"))  # -> _build/wheel/buildgpt-0.2.0-py3-none-any.whl
    """
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:  # a copy: setuptools leaves build/ beside the sources it builds
        for name in SOURCE_FILES:
            shutil.copy(root / name, tmp)
        shutil.copytree(root / SOURCE_FOLDER, Path(tmp) / SOURCE_FOLDER,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc"))
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                        "--no-index", "-w", str(out), tmp], check=True)
    wheel = out / WHEEL_NAME
    if not wheel.is_file():
        raise FileNotFoundError(f"pip wrote no {WHEEL_NAME} into {out}: {sorted(p.name for p in out.iterdir())}")
    return wheel
