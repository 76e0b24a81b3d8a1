"""The `>>>` examples in the package's docstrings run and print what they show."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest
import torch

import buildgpt

PACKAGE = Path(buildgpt.__file__).parent
WITH_EXAMPLES = sorted(p for p in PACKAGE.rglob("*.py") if ">>> " in p.read_text())


def module_name(path: Path) -> str:
    return ".".join(("buildgpt", *path.relative_to(PACKAGE).with_suffix("").parts))


def test_the_package_has_examples_to_run():
    assert len(WITH_EXAMPLES) >= 5, [str(p) for p in WITH_EXAMPLES]


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=[module_name(p) for p in WITH_EXAMPLES])
def test_docstring_examples(path):
    torch.manual_seed(0)
    module = importlib.import_module(module_name(path))
    result = doctest.testmod(module, extraglobs={"torch": torch}, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted and not result.failed, f"{result.failed} of {result.attempted} examples failed"
