"""Imports inside the package point one way only: a part of the book may use earlier parts, never later ones.

The order is the package docstring's: utils < data < tokenizers < nn < train < infer < exercises < settings <
viz < cli_parser < cli. Inside one subpackage, modules may import each other.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import buildgpt

PACKAGE = Path(buildgpt.__file__).parent
LAYERS = ["utils", "data", "tokenizers", "nn", "train", "infer", "exercises", "settings", "viz", "cli_parser", "cli"]
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def layer_of(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def imported_layers(path: Path) -> set[str]:
    """The top-level parts of buildgpt that `path` imports, absolute or relative."""
    package_parts = path.relative_to(PACKAGE).parent.parts
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                target = ["buildgpt", *base, *(node.module.split(".") if node.module else [])]
                names = [".".join([*target, alias.name]) for alias in node.names]  # `from .. import x`
            else:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names if node.module == "buildgpt"]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "buildgpt" and len(parts) > 1 and parts[1] in LAYERS:
                layers.add(parts[1])
    return layers


def test_every_module_is_in_a_layer():
    assert {layer_of(p) for p in MODULES} <= set(LAYERS), sorted({layer_of(p) for p in MODULES})


@pytest.mark.parametrize("path", MODULES, ids=[str(p.relative_to(PACKAGE)) for p in MODULES])
def test_imports_point_down(path):
    own = layer_of(path)
    upward = sorted(layer for layer in imported_layers(path) if LAYERS.index(layer) > LAYERS.index(own))
    assert not upward, f"{path.relative_to(PACKAGE)} ({own}) imports later parts of the book: {upward}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """Break the rule on purpose: a data module importing the model must be caught."""
    fake = PACKAGE / "data" / "_upward_probe.py"
    fake.write_text("from ..nn.model import GPT\nfrom buildgpt.train import loop\n")
    try:
        assert imported_layers(fake) == {"nn", "train"}
    finally:
        fake.unlink()


def test_checkpoints_do_not_import_the_model():
    assert "nn" not in imported_layers(PACKAGE / "train" / "checkpoint.py")


def test_no_module_is_over_300_lines():
    long = {str(p.relative_to(PACKAGE)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 300}
    assert not long, f"split these modules (over 300 lines): {long}"


def test_the_readme_maps_every_module_to_its_tests():
    """The README's chapter -> module -> test table names every module, and every test file it names exists."""
    readme = (PACKAGE.parents[1] / "README.md").read_text()
    table = readme[readme.index("| chapter | modules"):]
    table = table[:table.index("\n\n")]
    missing = [str(p.relative_to(PACKAGE)) for p in MODULES if f"`{p.relative_to(PACKAGE).as_posix()}`" not in table]
    assert not missing, f"modules missing from the README's table: {missing}"
    named = set(re.findall(r"`(test_\w+)`", table))
    tests = {p.stem for p in (PACKAGE.parents[1] / "tests").glob("test_*.py")}
    assert named <= tests, f"the README names tests that do not exist: {sorted(named - tests)}"
