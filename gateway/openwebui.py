"""What Open WebUI sends besides its users' words (pure): its background tasks, the template it wraps a turn
with a file in, its temporary chats.

Recognised from the defaults of Open WebUI 0.12.4 (`backend/open_webui/config.py` and the modules its tasks
live in) and of earlier releases. An admin can change the templates; the connection header `X-OpenWebUI-Task:
{{TASK}}` (Open WebUI fills it for every task and leaves it empty for a chat turn) then says it for certain.

- Tasks, whose prompts quote the chat but are not the user's words: a user message opening with `### Task:`
  (title, tags, follow-ups, search and retrieval queries, autocomplete, image prompt, context compaction, a
  note's title), the emoji prompt of voice calls, the merge-responses prompt, the memory review, and the
  legacy tool choice (a system message opening with `Available Tools:`).
- A turn with a file attached: the RAG template goes before the user's words (`### Task:` ... `<context>` ...
  `</context>`, then the words; in older releases the words were in `<user_query>`). Files attached with
  native tools add an `<attached_files>` list before the words; the legacy code interpreter adds its
  instructions after them.
- A temporary chat: its id opens with `temporary:` (`local:` before 0.6).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

TASK_HEADER = "x-openwebui-task"
TASK = "### Task:"
TASK_OPENINGS = (
    TASK,
    "Your task is to reflect the speaker's likely facial expression",  # the emoji of a voice call
    "You have been provided with a set of responses from various models to the latest user query:",  # merge
    "Review the completed conversation turn and decide whether long-term memory should change.",  # memory review
)
TASK_SYSTEM_OPENINGS = ("Available Tools:", "You are Open WebUI's private memory reviewer.")
TEMPORARY = ("temporary:", "local:")
_CONTEXT_END = "\n</context>\n"
_USER_QUERY = re.compile(r"<user_query>\n?(.*?)\n?</user_query>", re.DOTALL)
_ATTACHED = re.compile(r"\A<attached_files>\n.*?\n</attached_files>\n\n", re.DOTALL)
_CODE_INTERPRETER = "\n\n#### Code Interpreter\n"


def is_task(headers: Mapping[str, str], texts: Sequence[tuple[str, str]]) -> bool:
    """Whether a request is one of Open WebUI's background tasks, from its (role, text) messages.

    The task header decides when the admin has added it to the connection (empty: a chat turn)."""
    marked = headers.get(TASK_HEADER)
    if marked is not None:
        return bool(marked.strip())
    if any(role == "system" and text.lstrip().startswith(TASK_SYSTEM_OPENINGS) for role, text in texts):
        return True
    newest = next((text.lstrip() for role, text in reversed(texts) if role == "user"), "")
    return newest.startswith(TASK_OPENINGS) and not _wraps_files(newest)


def own_words(text: str) -> str:
    """The user's words in a message, without the file context, attachment list or instructions Open WebUI
    put around them (the text itself when it put none)."""
    stripped = text.lstrip()
    if _wraps_files(stripped):
        after = stripped[stripped.rfind(_CONTEXT_END) + len(_CONTEXT_END) :]
        asked = _USER_QUERY.search(after)
        text = asked.group(1) if asked else after.lstrip("\n")
    text = _ATTACHED.sub("", text, count=1)
    cut = text.find(_CODE_INTERPRETER)
    return text[:cut] if cut != -1 else text


def is_temporary(conversation: str | None) -> bool:
    """A temporary chat: Open WebUI promises it is not saved."""
    return conversation is not None and conversation.startswith(TEMPORARY)


def _wraps_files(text: str) -> bool:
    """The RAG template: a task opening, then the files' context, then the user's words (not a task that
    quotes the chat, which ends with its `<chat_history>`)."""
    return text.startswith(TASK) and "<context>" in text and _CONTEXT_END in text and "<chat_history>" not in text
