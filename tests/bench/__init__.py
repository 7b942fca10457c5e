"""Benchmarks: scripts that print figures (`python -m tests.bench.<name>`), never collected as tests."""

import os
from pathlib import Path

# Machines without internet keep tiktoken's encodings beside the repository, as the tests do.
_SHARED_TIKTOKEN = Path(__file__).resolve().parents[3] / "shared" / "tiktoken"
if _SHARED_TIKTOKEN.is_dir():
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(_SHARED_TIKTOKEN))
