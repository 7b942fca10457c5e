"""The README's commands and examples, found by the tag after the fence language (```bash run).

`python3 tests/readme.py test` prints the test command; `.ci/run` runs exactly that.
"""

from __future__ import annotations

import re
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


if __name__ == "__main__":
    print(command(sys.argv[1]))
