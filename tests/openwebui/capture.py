"""Capture what the real Open WebUI sends to its OpenAI connection, one fixture per user action.

Run it with the Python of a separate Open WebUI venv (it needs `open-webui` and `playwright` there);
the fake Ollama and the gateway run with the project's own `.venv`, as the tests start them:

    python3 -m venv /work/owui
    /work/owui/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu   # or any CPU wheel
    /work/owui/bin/pip install open-webui playwright
    apt-get install -y chromium                       # Playwright drives Debian's /usr/bin/chromium
    TIKTOKEN_CACHE_DIR=/work/shared/tiktoken /work/owui/bin/python tests/openwebui/capture.py

from the repository root (about 5 minutes for everything; logs go to a printed /tmp folder). It starts,
each on a free loopback port:

    fake Ollama (tests.fake_ollama) <- gateway (python -m gateway serve, temp data dir)
        <- recording proxy (this file, `recorder` mode) <- Open WebUI (temp DATA_DIR) <- headless chromium

and writes `tests/data/openwebui/session.json` (and `forward_headers_off.json`, `custom_headers.json`): each
action in order (the setup ones too) with every request Open WebUI sent to the proxy while it ran (method,
path, all headers as sent, the JSON body as sent, the response status). The gateway and Open WebUI are set up
as the README's Open WebUI section says (its `openwebui` block: the proxy key, the user headers, the task
header of `custom_headers`), so a capture also checks those steps with the real Open WebUI.
`capture.py serve` starts the same stack and waits (to look around in a browser: it prints the URLs);
`capture.py ACTION...` runs only those actions (and the setup ones they need);
`forward_headers_off` and `custom_headers` each run on an Open WebUI of their own (started after the
main one): without ENABLE_FORWARD_USER_INFO_HEADERS, and with template headers on the connection
(CUSTOM_HEADERS). `serve --no-forward-headers` serves without the user headers.
Open WebUI's own environment is in `owui_env()`; NOTES.md beside the fixtures says what they show.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "openwebui"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
OWUI_BIN = Path(sys.executable).parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("OWUI_SHOTS", "/tmp/owui-shots"))
sys.path.insert(0, str(ROOT))
from tests import readme  # noqa: E402  (the README's Open WebUI steps: the gateway's and Open WebUI's settings)
from tests.processes import free_port, stop, wait_for  # noqa: E402

GATEWAY_SETTINGS, OWUI_SETTINGS = readme.environments("openwebui")
API_KEY = OWUI_SETTINGS["OPENAI_API_KEY"]  # the README's proxy key on Open WebUI's connection: not a secret
SECRET = "owui-capture-fixed-secret"
ADMIN = {"name": "Ada Admin", "email": "ada@example.com", "password": "ada-password-1"}
SECOND = {"name": "Bob User", "email": "bob@example.com", "password": "bob-password-1"}
MODEL = "qwen3:4b"
MODEL2 = "huihui_ai/qwen3-abliterated:4b-v2"
NOTES_TXT = (
    "Project Falcon notes.\nThe launch code word for Project Falcon is MARMALADE-42.\nThe launch is on 3 March.\n"
)


def http_json(method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 60) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        raw = r.read()
    return json.loads(raw) if raw else None


@contextmanager
def process(args: list[str], ready: str, env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, cwd=cwd, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(ready, proc, timeout=180)
            yield
        finally:
            stop(proc)


# ---------------------------------------------------------------------------------------------------------
# The recording reverse proxy (`capture.py recorder PORT UPSTREAM`), run as its own process.

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


def recorder_main(port: int, upstream: str) -> None:
    """Forward everything to `upstream`, streaming, and keep each request; GET /_recorder/state?since=N."""
    import http.client
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import urlsplit

    target = urlsplit(upstream)
    records: list[dict[str, Any]] = []
    lock = threading.Lock()
    busy = {"inflight": 0, "last": time.monotonic()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            if self.path.startswith("/_recorder/state"):
                since = int(self.path.partition("since=")[2] or 0)
                with lock:
                    state = {
                        "count": len(records),
                        "inflight": busy["inflight"],
                        "idle": time.monotonic() - busy["last"],
                        "records": records[since:],
                    }
                data = json.dumps(state).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            self.forward()

        def read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                parts: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(parts)
                    parts.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def forward(self) -> None:
            with lock:
                busy["inflight"] += 1
                busy["last"] = time.monotonic()
            try:
                raw = self.read_body()
                headers = dict(self.headers.items())  # as sent, names in their own case
                body: Any
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode("utf-8", "replace")
                record: dict[str, Any] = {"method": self.command, "path": self.path, "headers": headers, "body": body}
                with lock:
                    records.append(record)
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=600)
                out = {k: v for k, v in headers.items() if k.lower() not in HOP}
                conn.request(self.command, self.path, body=raw or None, headers=out)
                up = conn.getresponse()
                record["status"] = up.status
                self.send_response(up.status)
                for k, v in up.getheaders():
                    if k.lower() not in HOP:
                        self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while chunk := up.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
                conn.close()
            finally:
                with lock:
                    busy["inflight"] -= 1
                    busy["last"] = time.monotonic()

    for method in ("POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"):
        setattr(Handler, f"do_{method}", Handler.do_GET)
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


class Recorder:
    def __init__(self, url: str) -> None:
        self.url = url

    def state(self, since: int = 0) -> dict[str, Any]:
        return http_json("GET", f"{self.url}/_recorder/state?since={since}")  # type: ignore[no-any-return]

    def count(self) -> int:
        return int(self.state(10**9)["count"])

    def settle(self, quiet: float = 4.0, timeout: float = 120.0) -> None:
        """Wait until nothing has been in flight for `quiet` seconds (background tasks come after the answer)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.state(10**9)
            if s["inflight"] == 0 and s["idle"] >= quiet:
                return
            time.sleep(0.5)
        print("  warning: the recorder never went quiet", file=sys.stderr)

    def since(self, start: int) -> list[dict[str, Any]]:
        return list(self.state(start)["records"])


# ---------------------------------------------------------------------------------------------------------
# The stack


# Headers an admin can add to the connection (Admin > Settings > Connections > the connection > Headers, or
# OPENAI_API_CONFIGS): Open WebUI fills the {{...}} templates per request (utils/headers.py). The README's,
# and the ids a gateway could tell a branch by.
CUSTOM_HEADERS = {
    **json.loads(OWUI_SETTINGS["OPENAI_API_CONFIGS"])["0"]["headers"],
    "X-OpenWebUI-Message-Id": "{{MESSAGE_ID}}",
    "X-OpenWebUI-User-Message-Id": "{{USER_MESSAGE_ID}}",
    "X-OpenWebUI-User-Message-Parent-Id": "{{USER_MESSAGE_PARENT_ID}}",
}


def owui_env(data_dir: Path, proxy: str, forward_headers: bool = True, custom_headers: bool = False) -> dict[str, str]:
    env = {
        "DATA_DIR": str(data_dir),
        "WEBUI_SECRET_KEY": SECRET,
        "ENV": "prod",
        "GLOBAL_LOG_LEVEL": "INFO",
        # nothing from the internet
        "OFFLINE_MODE": "true",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "ENABLE_VERSION_UPDATE_CHECK": "false",
        "ENABLE_COMMUNITY_SHARING": "false",
        "ENABLE_IMAGE_GENERATION": "false",
        "ENABLE_WEB_SEARCH": "false",
        "AUDIO_STT_ENGINE": "openai",  # no local whisper model; voice is not used here
        "AUDIO_STT_OPENAI_API_BASE_URL": proxy + "/v1",
        "AUDIO_STT_OPENAI_API_KEY": API_KEY,
        "USER_AGENT": "open-webui-capture",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "true",
        "ANONYMIZED_TELEMETRY": "false",
        # the one OpenAI connection: the recording proxy in front of the gateway
        "ENABLE_OLLAMA_API": "false",
        "ENABLE_OPENAI_API": "true",
        "OPENAI_API_BASE_URL": proxy + "/v1",
        "OPENAI_API_KEY": API_KEY,
        # RAG embeddings through the same connection
        "RAG_EMBEDDING_ENGINE": "openai",
        "RAG_EMBEDDING_MODEL": "nomic-embed-text",
        "RAG_OPENAI_API_BASE_URL": proxy + "/v1",
        "RAG_OPENAI_API_KEY": API_KEY,
        # connection models are private to admins by default: a plain user would see none
        "BYPASS_MODEL_ACCESS_CONTROL": "true",
        "ENABLE_AUTOCOMPLETE_GENERATION": "true",  # off by default; on to capture its task call
        "TIKTOKEN_CACHE_DIR": os.environ.get("TIKTOKEN_CACHE_DIR", "/work/shared/tiktoken"),
    }
    if forward_headers:
        env["ENABLE_FORWARD_USER_INFO_HEADERS"] = OWUI_SETTINGS["ENABLE_FORWARD_USER_INFO_HEADERS"]
    if custom_headers:
        env["OPENAI_API_CONFIGS"] = json.dumps({"0": {"enable": True, "headers": CUSTOM_HEADERS}})
    return env


class Stack:
    """Fake Ollama, gateway, recorder and Open WebUI, as processes, with their logs in `tmp`."""

    def __init__(self, tmp: Path, forward_headers: bool = True, custom_headers: bool = False) -> None:
        self.tmp = tmp
        self.forward_headers = forward_headers
        self.custom_headers = custom_headers

    @contextmanager
    def run(self) -> Iterator[Stack]:
        t = self.tmp
        t.mkdir(parents=True, exist_ok=True)
        ollama_port, gateway_port, recorder_port, owui_port = (free_port() for _ in range(4))
        self.ollama = f"http://127.0.0.1:{ollama_port}"
        self.gateway = f"http://127.0.0.1:{gateway_port}"
        self.proxy = f"http://127.0.0.1:{recorder_port}"
        self.webui = f"http://127.0.0.1:{owui_port}"
        python = str(PROJECT_PYTHON)
        gateway_env = {
            "GATEWAY_UPSTREAM_URL": self.ollama,
            "GATEWAY_MODEL_DEFAULT": MODEL,
            "GATEWAY_MEMORY_DATA_DIR": str(t / "gateway-data"),
            "GATEWAY_SERVER_LOG_LEVEL": "warning",
            **GATEWAY_SETTINGS,  # the README's: Open WebUI's key is a proxy key
        }
        with (
            process(
                [python, "-m", "tests.fake_ollama", str(ollama_port)],
                self.ollama + "/api/version",
                {},
                t / "ollama.log",
            ),
            process(
                [python, "-m", "gateway", "serve", "--port", str(gateway_port)],
                self.gateway + "/health",
                gateway_env,
                t / "gateway.log",
            ),
            process(
                [sys.executable, __file__, "recorder", str(recorder_port), self.gateway],
                self.proxy + "/_recorder/state",
                {},
                t / "recorder.log",
            ),
            process(
                [str(OWUI_BIN / "open-webui"), "serve", "--host", "127.0.0.1", "--port", str(owui_port)],
                self.webui + "/health",
                owui_env(t / "owui-data", self.proxy, self.forward_headers, self.custom_headers),
                t / "open-webui.log",
                cwd=t,
            ),
        ):
            self.recorder = Recorder(self.proxy)
            yield self


def owui_version() -> str:
    from importlib.metadata import version

    return version("open-webui")


# ---------------------------------------------------------------------------------------------------------
# Driving Open WebUI in chromium. `Page` is Playwright's (untyped here: the project's venv has no Playwright).

Page = Any
DESCRIPTIONS = {
    "first_message": "New chat, first message typed and sent (then Open WebUI's own title, tags and follow-up tasks).",
    "second_message": "A second message in the same chat.",
    "regenerate_later": "In a chat of 3 exchanges, Regenerate > Try Again on the latest answer.",
    "continue_response": "Continue Response on the latest answer of that chat.",
    "edit_later": "Edit the second user message of that chat and Send (a new branch from there).",
    "edit_first": "In a chat of 3 exchanges, edit the FIRST user message and Send.",
    "regenerate_first": "In a chat of 3 exchanges, Regenerate > Try Again on the FIRST answer.",
    "file_attached": "New chat, + > Upload Files notes.txt (embedded at upload), then a question about it.",
    "query_generation": "Open WebUI's POST /api/v1/tasks/queries/completions (type retrieval), called with the "
    "user's token; the same task runs inside file_attached.",
    "temporary_chat": "Temporary Chat button, one message.",
    "merge_responses": "New chat with two models (model selector > Compare), one message, then Merge Responses.",
    "emoji": "Open WebUI's POST /api/v1/tasks/emoji/completions (the voice-call emoji task), with the user's token.",
    "autocomplete": "Autocomplete on (env + the user's Prompt Autocompletion setting), a draft typed in a new chat.",
    "image_prompt": "Open WebUI's POST /api/v1/tasks/image_prompt/completions with the user's token (no image "
    "engine is configured, so the chat UI never triggers it).",
    "second_user": "A second (non-admin) user signs in and sends a message in a new chat.",
    "tools": "New chat, one message, with the model's default capabilities (Builtin Tools on).",
    "tools_off": "Admin > Settings > Models > qwen3:4b > Capabilities > Builtin Tools switched off, Save & Update, "
    "then a new chat and one message.",
    "forward_headers_off": "A second Open WebUI without ENABLE_FORWARD_USER_INFO_HEADERS: new chat, one message.",
    "custom_headers": "A third Open WebUI whose connection has template headers (CUSTOM_HEADERS in capture.py: "
    "{{TASK}}, {{MESSAGE_ID}}, ...): new chat, two messages, then Regenerate > Try Again on the last answer.",
}


class Driver:
    def __init__(self, stack: Stack, browser: Any, wanted: set[str]) -> None:
        self.stack = stack
        self.browser = browser
        self.wanted = wanted
        self.version = owui_version()
        self.written: list[str] = []
        self.session: list[dict[str, Any]] = []  # every action, setup ones too, in order

    # -- pages ---------------------------------------------------------------------------------------------

    def new_page(self) -> Page:
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(30_000)
        return context.new_page()

    def shot(self, page: Page, name: str) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{name}.png"))

    def dismiss_popups(self, page: Page) -> None:
        for text in ("Okay, Let's Go!",):
            button = page.get_by_text(text)
            if button.count():
                button.first.click()
                time.sleep(0.5)

    def sign_up(self, page: Page, user: dict[str, str]) -> None:
        page.goto(self.stack.webui + "/auth")
        page.get_by_text("Get started").click()
        page.get_by_placeholder("Enter Your Full Name").fill(user["name"])
        page.get_by_placeholder("Enter Your Email").fill(user["email"])
        page.get_by_placeholder("Enter Your Password").fill(user["password"])
        page.get_by_role("button", name="Create Admin Account").click()
        page.locator("#chat-input").wait_for()
        time.sleep(2)
        self.dismiss_popups(page)

    def sign_in(self, page: Page, user: dict[str, str]) -> None:
        page.goto(self.stack.webui + "/auth")
        time.sleep(2)
        if page.get_by_text("Get started").count():
            page.get_by_text("Get started").click()
        page.get_by_placeholder("Enter Your Email").fill(user["email"])
        page.get_by_placeholder("Enter Your Password").fill(user["password"])
        page.get_by_role("button", name="Sign in").click()
        page.locator("#chat-input").wait_for()
        time.sleep(2)
        self.dismiss_popups(page)

    def api(self, page: Page, method: str, path: str, body: Any = None) -> Any:
        """Call Open WebUI's own API from the page, with the signed-in user's token."""
        script = """async ([method, path, body]) => {
            const r = await fetch(path, {method, headers: {'Authorization': 'Bearer ' + localStorage.token,
                'Content-Type': 'application/json'}, body: body === null ? undefined : JSON.stringify(body)});
            return {status: r.status, body: await r.text()};
        }"""
        result = page.evaluate(script, [method, path, body])
        if result["status"] >= 400:
            raise RuntimeError(f"{method} {path}: {result['status']} {result['body'][:300]}")
        return json.loads(result["body"]) if result["body"] else None

    def new_chat(self, page: Page) -> None:
        page.goto(self.stack.webui + "/")
        page.locator("#chat-input").wait_for()
        time.sleep(1.5)
        self.dismiss_popups(page)

    def type_message(self, page: Page, text: str, delay: float = 0) -> None:
        box = page.locator("#chat-input")
        box.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.type(text, delay=delay)

    def send(self, page: Page, text: str) -> None:
        self.type_message(page, text)
        page.keyboard.press("Enter")
        self.wait_done()

    def messages(self, page: Page) -> list[Any]:
        ids = page.evaluate(
            "Array.from(document.querySelectorAll('[id^=message-]')).map(e => e.id)"
            ".filter(id => /^message-[0-9a-f-]{36}$/.test(id))"
        )
        return [page.locator(f"[id='{i}']") for i in ids]

    def hover_button(self, message: Any, name: str) -> None:
        message.scroll_into_view_if_needed()
        message.hover()
        time.sleep(0.4)
        message.get_by_role("button", name=name, exact=True).first.click()

    def regenerate(self, page: Page, index: int) -> None:
        self.hover_button(self.messages(page)[index], "Regenerate")
        page.get_by_text("Try Again", exact=True).click()
        self.wait_done()

    def edit(self, page: Page, index: int, text: str) -> None:
        message = self.messages(page)[index]
        self.hover_button(message, "Edit")
        message.locator("textarea").fill(text)
        message.get_by_role("button", name="Send", exact=True).click()
        self.wait_done()

    def set_compare(self, page: Page, on: bool) -> None:
        page.locator("#model-selector-model-button").click()
        compare = page.get_by_role("button", name="Compare")
        if (compare.get_attribute("aria-pressed") == "true") != on:
            compare.click()
            time.sleep(0.3)
        if on:
            page.get_by_text(MODEL2, exact=True).first.click()
        page.keyboard.press("Escape")
        time.sleep(0.5)

    # -- recording -----------------------------------------------------------------------------------------

    def wait_done(self, first: float = 20.0) -> None:
        """Wait for the first proxied request after an action (if any comes), then for quiet."""
        start = self.mark
        deadline = time.monotonic() + first
        while time.monotonic() < deadline and self.stack.recorder.count() <= start:
            time.sleep(0.2)
        self.stack.recorder.settle()
        time.sleep(1.0)

    def action(self, name: str, run: Callable[[], None]) -> None:
        """Run `run` and write the requests it caused to tests/data/openwebui/NAME.json (setup when not wanted)."""
        self.stack.recorder.settle(quiet=2.0)
        self.mark = start = self.stack.recorder.count()
        print(f"- {name}", flush=True)
        run()
        self.stack.recorder.settle()
        requests = self.stack.recorder.since(start)
        self.session.append({"action": name, "description": DESCRIPTIONS.get(name, name), "requests": requests})
        if name in self.wanted:
            self.written.append(name)
        print(f"  {len(requests)} requests", flush=True)

    def write(self, session: str) -> None:
        """tests/data/openwebui/SESSION.json: the version, Open WebUI's settings, and every action in order."""
        OUT.mkdir(parents=True, exist_ok=True)
        env = owui_env(Path("DATA_DIR"), "http://PROXY", self.stack.forward_headers, self.stack.custom_headers)
        doc = {
            "open_webui_version": self.version,
            "settings": {k: v for k, v in env.items() if k in OWUI_SETTINGS or k == "OPENAI_API_CONFIGS"},
            "actions": self.session,
        }
        (OUT / f"{session}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")

    mark = 0

    # -- the flows -----------------------------------------------------------------------------------------

    def run(self, mode: str = "main") -> None:
        page = self.new_page()
        self.action("setup:sign_up", lambda: self.sign_up(page, ADMIN))
        if mode == "forward_headers_off":
            self.new_chat(page)
            self.action("forward_headers_off", lambda: self.send(page, "Hello without user headers."))
            return
        if mode == "custom_headers":
            self.new_chat(page)

            def two_and_regenerate() -> None:
                self.send(page, "Hello with custom headers.")
                self.send(page, "And a second message.")
                self.regenerate(page, 3)

            self.action("custom_headers", two_and_regenerate)
            return
        self.api(page, "POST", "/api/v1/auths/add", {**SECOND, "role": "user"})
        settings = self.api(page, "GET", "/api/v1/users/user/settings") or {}
        ui = {**(settings.get("ui") or {}), "promptAutocomplete": True}
        self.api(page, "POST", "/api/v1/users/user/settings/update", {**settings, "ui": ui})

        need = self.wanted.intersection
        if need({"first_message", "second_message", "regenerate_later", "continue_response", "edit_later"}):
            # chat A: a conversation, then regenerate, continue and edit on its later turns
            self.new_chat(page)
            self.action("first_message", lambda: self.send(page, "My cat is called Miso. What is a good toy for her?"))
            self.action("second_message", lambda: self.send(page, "I live in Lisbon."))
            self.action("setup:third_message", lambda: self.send(page, "What should I cook tonight?"))
            self.action("regenerate_later", lambda: self.regenerate(page, 5))
            self.action("continue_response", lambda: self.continue_(page, 5))
            self.action("edit_later", lambda: self.edit(page, 2, "I live in Porto, by the river."))
            self.shot(page, "chat-a")
        if need({"edit_first"}):
            # chat B: edit the first message of three
            self.three_exchanges(page, "B")
            self.action("edit_first", lambda: self.edit(page, 0, "Actually, my dog is called Pepper."))
            self.shot(page, "chat-b")
        if need({"regenerate_first"}):
            # chat C: regenerate the first answer of three
            self.three_exchanges(page, "C")
            self.action("regenerate_first", lambda: self.regenerate(page, 1))
            self.shot(page, "chat-c")
        if need({"file_attached", "query_generation"}):
            self.new_chat(page)
            self.action("file_attached", lambda: self.file_attached(page))
            self.shot(page, "file")
            self.action("query_generation", lambda: self.task(page, "queries", self.query_body()))
        if need({"temporary_chat"}):
            self.new_chat(page)
            self.action("temporary_chat", lambda: self.temporary(page))
        if need({"merge_responses"}):
            self.new_chat(page)
            self.action("merge_responses", lambda: self.merge(page))
            self.shot(page, "merge")
            self.set_compare(page, False)
        if need({"emoji", "image_prompt", "autocomplete"}):
            emoji = {"model": MODEL, "prompt": "I just won the lottery!"}
            self.action("emoji", lambda: self.task(page, "emoji", emoji))
            self.action("image_prompt", lambda: self.task(page, "image_prompt", self.image_body()))
            self.new_chat(page)
            self.action("autocomplete", lambda: self.autocomplete(page))
            self.type_message(page, "")
        if need({"second_user"}):
            second = self.new_page()
            self.action("setup:sign_in_second", lambda: self.sign_in(second, SECOND))
            self.new_chat(second)
            self.action("second_user", lambda: self.send(second, "Hi, I am Bob and I like sailing."))
            self.shot(second, "second-user")
            second.context.close()
        if need({"tools", "tools_off"}):
            self.new_chat(page)
            self.action("tools", lambda: self.send(page, "What time is it?"))
            self.action("setup:builtin_tools_off", lambda: self.builtin_tools_off(page))
            self.new_chat(page)
            self.action("tools_off", lambda: self.send(page, "What time is it now?"))
        page.context.close()

    def three_exchanges(self, page: Page, tag: str) -> None:
        self.new_chat(page)
        for i, text in enumerate(
            [f"Chat {tag}: my cat is called Miso.", "I live in Lisbon.", "What should I cook tonight?"]
        ):
            self.action(f"setup:{tag}{i}", functools.partial(self.send, page, text))

    def continue_(self, page: Page, index: int) -> None:
        self.hover_button(self.messages(page)[index], "Continue Response")
        self.wait_done()

    def file_attached(self, page: Page) -> None:
        notes = self.stack.tmp / "notes.txt"
        notes.write_text(NOTES_TXT)
        page.locator("#input-menu-button").click()
        with page.expect_file_chooser() as chooser:
            page.get_by_role("menuitem", name="Upload Files").click()
        chooser.value.set_files(str(notes))
        self.wait_done()
        self.send(page, "What is the launch code word for Project Falcon?")

    def temporary(self, page: Page) -> None:
        page.get_by_role("button", name="Temporary Chat").click()
        time.sleep(1)
        self.send(page, "Off the record: my locker code is 4711.")

    def merge(self, page: Page) -> None:
        self.set_compare(page, True)
        self.send(page, "Name three rivers in Portugal.")
        page.get_by_role("button", name="Merge Responses").first.click()
        self.wait_done()

    def autocomplete(self, page: Page) -> None:
        self.type_message(page, "What is the best way to learn", delay=60)
        self.wait_done()

    def task(self, page: Page, name: str, body: dict[str, Any]) -> None:
        self.api(page, "POST", f"/api/v1/tasks/{name}/completions", body)
        self.wait_done()

    def query_body(self) -> dict[str, Any]:
        return {
            "model": MODEL,
            "type": "retrieval",
            "messages": [{"role": "user", "content": "What is the launch code word for Project Falcon?"}],
        }

    def image_body(self) -> dict[str, Any]:
        return {"model": MODEL, "messages": [{"role": "user", "content": "Draw a lighthouse at dusk."}]}

    def builtin_tools_off(self, page: Page) -> None:
        page.goto(self.stack.webui + "/admin/settings/models")
        row = page.locator("div").filter(has_text=MODEL).filter(has=page.get_by_role("button", name="Edit")).last
        row.get_by_role("button", name="Edit").click()
        page.get_by_text("Capabilities", exact=True).first.click()
        switch = page.get_by_role("switch", name="Builtin Tools")
        if switch.get_attribute("aria-checked") == "true":
            switch.click()
        self.shot(page, "builtin-tools-off")
        page.get_by_role("button", name="Save & Update").click()
        time.sleep(2)


def capture_all(actions: list[str], tmp: Path, headed: bool = False) -> None:
    from playwright.sync_api import sync_playwright  # type: ignore[import-not-found, unused-ignore]

    wanted = set(actions or DESCRIPTIONS)
    unknown = wanted - set(DESCRIPTIONS)
    if unknown:
        raise SystemExit(f"unknown actions: {sorted(unknown)}; known: {sorted(DESCRIPTIONS)}")
    written: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=not headed, args=["--no-sandbox"])
        sessions = [  # each on an Open WebUI of its own
            ("session", Stack(tmp / "main"), bool(wanted - {"forward_headers_off", "custom_headers"})),
            ("forward_headers_off", Stack(tmp / "no-headers", forward_headers=False), "forward_headers_off" in wanted),
            ("custom_headers", Stack(tmp / "custom-headers", custom_headers=True), "custom_headers" in wanted),
        ]
        for session, stack, needed in sessions:
            if not needed:
                continue
            with stack.run():
                driver = Driver(stack, browser, wanted)
                driver.run("main" if session == "session" else session)
                driver.write(session)
                written += driver.written
        browser.close()
    print(f"captured {', '.join(written)} into {OUT}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("actions", nargs="*", help="'serve', or actions to capture (default: all)")
    parser.add_argument("--no-forward-headers", action="store_true")
    parser.add_argument("--headed", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so the processes started here are stopped too
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    if args.actions[:1] == ["recorder"]:
        recorder_main(int(args.actions[1]), args.actions[2])
        return
    tmp = Path(tempfile.mkdtemp(prefix="owui-capture-"))
    print(f"logs and data in {tmp}")
    if args.actions == ["serve"]:
        with Stack(tmp, not args.no_forward_headers).run() as stack:
            print(f"open webui {stack.webui}  proxy {stack.proxy}  gateway {stack.gateway}  ollama {stack.ollama}")
            sys.stdout.flush()
            while True:
                time.sleep(3600)
    capture_all(args.actions, tmp, headed=args.headed)


if __name__ == "__main__":
    main()
