"""The README's Python examples run as written (so the quickstart stays true)."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_a_quickstart():
    assert python_blocks(), "README.md lost its ```python quickstart block"


def test_readme_python_blocks_run(capsys):
    for block in python_blocks():
        exec(compile(block, str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "(1, 2) (2, 3)" in out and "False" in out and "True" in out
