"""LiteLLM's proxy, the peer the overhead benchmark compares against, run from its own virtualenv.

LiteLLM's dependencies do not fit the project's lock, so it is installed once, pinned, into
~/.cache/gateway-bench (about 600 MB), with uv. Its settings are the fastest found for a fair comparison:
one worker, no database, no callbacks, the model's cost entry given (without it LiteLLM searches its whole
cost map on every request, at a third of the speed), and no download of the cost map at start-up.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests import processes

VERSION = "1.106.2"  # the newest 1.x whose dependencies are all on PyPI (1.106.3 and later need unpublished ones)
HOME = Path.home() / ".cache" / "gateway-bench" / f"litellm-{VERSION}"

CONFIG = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: ollama_chat/{model}
      api_base: {upstream}
    model_info:
      litellm_provider: ollama_chat
      mode: chat
      max_tokens: 32768
      max_input_tokens: 32768
      max_output_tokens: 8192
      input_cost_per_token: 0.0
      output_cost_per_token: 0.0
litellm_settings:
  telemetry: False
  set_verbose: False
  drop_params: True
  callbacks: []
  success_callback: []
  failure_callback: []
general_settings:
  dangerously_permit_weak_or_unset_master_key: true
  disable_spend_logs: True
  disable_error_logs: True
  disable_adding_master_key_hash_to_db: True
  allow_requests_on_db_unavailable: True
"""


def install() -> Path:
    """The `litellm` command, installed on first use."""
    command = HOME / "bin" / "litellm"
    if not command.exists():
        uv = shutil.which("uv", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
        if uv is None:
            raise RuntimeError("the LiteLLM row needs uv (`pip install uv`)")
        print(f"installing litellm[proxy]=={VERSION} into {HOME} (once)", file=sys.stderr, flush=True)
        subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(HOME)], check=True)
        python = str(HOME / "bin" / "python")
        # compiled now: this machine's PYTHONDONTWRITEBYTECODE would otherwise recompile LiteLLM at each start
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", python, "--compile-bytecode", "litellm[proxy]==" + VERSION],
            check=True,
        )
    return command


@contextmanager
def proxy(upstream: str, model: str) -> Iterator[str]:
    """LiteLLM's proxy in front of `upstream` (Ollama's native API), serving `model`, until the block ends."""
    command = install()
    port = processes.free_port()
    with tempfile.TemporaryDirectory() as home:  # its working directory: it reads a .env from there
        config = Path(home) / "config.yaml"
        config.write_text(CONFIG.format(model=model, upstream=upstream))
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"}
        args = [str(command), "--config", str(config), "--host", "127.0.0.1", "--port", str(port), "--num_workers", "1"]
        process = subprocess.Popen(args, cwd=home, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            processes.wait_for(f"http://127.0.0.1:{port}/health/liveliness", process, timeout=120)
            yield f"http://127.0.0.1:{port}"
        finally:
            processes.stop(process)
