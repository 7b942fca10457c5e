"""Memory gateway: an OpenAI-compatible front for Ollama that gives small local models a long-term memory."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("memory-gateway")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0"
