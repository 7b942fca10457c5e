"""The front doors beside OpenAI's Chat Completions: each turns its protocol into the one flow's request and
its answer back, in pure functions (`translate.py` is Chat Completions' own)."""
