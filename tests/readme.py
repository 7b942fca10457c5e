"""The README's commands and examples, found by the tag after the fence language (```bash run).

`python3 tests/readme.py test` prints the test command; `.ci/run` runs exactly that.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
_BLOCK = re.compile(r"^```(\w+) (\w[\w-]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def blocks(tag: str, text: str | None = None) -> list[tuple[str, str]]:
    """(language, code) of every fenced block tagged `tag`."""
    text = README.read_text() if text is None else text
    return [(lang, code) for lang, found, code in _BLOCK.findall(text) if found == tag]


def command(tag: str) -> str:
    [(_, code)] = blocks(tag)
    return code.strip()


def environments(tag: str) -> list[dict[str, str]]:
    """The variables set before each command of a block (`A=1 B=2 cmd`), command by command."""
    [(_, code)] = blocks(tag)
    lines = [line for line in code.replace("\\\n", " ").splitlines() if line.strip() and not line.startswith("#")]
    found = []
    for line in lines:
        words = shlex.split(line)
        assigned = [w.split("=", 1) for w in words if re.match(r"^[A-Z_][A-Z0-9_]*=", w)]
        found.append({name: value for name, value in assigned})
    return found


if __name__ == "__main__":
    print(command(sys.argv[1]))
