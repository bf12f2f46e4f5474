"""The docs' Python examples run as doctests, so the walkthroughs stay true."""

import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", ["backprop.md"])
def test_doc_examples_run(name):
    path = DOCS / name
    assert path.is_file(), f"{path} is missing"
    result = doctest.testfile(
        str(path),
        module_relative=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
        encoding="utf-8",
        raise_on_error=False,
        verbose=False,
    )
    assert result.attempted > 0, f"{name} has no >>> examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
