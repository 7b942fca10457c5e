"""Open WebUI's own prompts and wrappings told apart from its users' words (pure; its 0.12.4 defaults)."""

from __future__ import annotations

import pytest

from gateway.openwebui import is_task, is_temporary, own_words

# DEFAULT_RAG_TEMPLATE of Open WebUI 0.12.4 (backend/open_webui/config.py), as rendered for one file
RAG = (
    "### Task:\nRespond to the user query using the provided context, incorporating inline citations in the format"
    ' [id] **only when the <source> tag includes an explicit id attribute** (e.g., <source id="1">).\n\n'
    "### Guidelines:\n- If you don't know the answer, clearly state that.\n"
    "- Do not use XML tags in your response.\n\n"
    "### Output:\nProvide a clear and direct response to the user's query, including inline citations in the"
    " format [id] only when the <source> tag with id attribute is present in the context.\n\n"
    "<context>\n"
    '<source id="1" name="notes.txt">The launch code word for Project Falcon is MARMALADE-42.</source>\n'
    "</context>\n"
)
OLD_RAG = RAG + "\n<user_query>\nwhat is the code word?\n</user_query>"
TASKS = {
    "title": "### Task:\nGenerate a concise title summarizing the chat history.\n### Guidelines:\n- Keep it short"
    "\n### Chat History:\n<chat_history>\nUSER: my dog is Rex\nASSISTANT: Nice!\n</chat_history>",
    "old title": "### Task:\nGenerate a concise, 3-5 word title with an emoji summarizing the chat history.",
    "tags": "### Task:\nGenerate 1-3 broad tags categorizing the main themes of the chat history, along with 1-3"
    " more specific subtopic tags.\n\n### Chat History:\n<chat_history>\nUSER: hi\n</chat_history>",
    "follow-ups": "### Task:\nPredict 3-5 useful messages this user might naturally send next to advance their"
    " current objective.\n### Chat History:\n<chat_history>\nUSER: hi\n</chat_history>",
    "queries": "### Task:\nAnalyze the chat history to determine the necessity of generating search queries, in"
    " the given language.\n### Chat History:\n<chat_history>\nUSER: what is in <context>\n</context>\n"
    "</chat_history>\n",
    "autocomplete": "### Task:\nYou are an autocompletion system. Continue the text in `<text>` based on the"
    " **completion type** in `<type>` and the given language.  \n<type>general</type>  \n<text>my dog</text>  \n"
    "#### Output:\n",
    "image prompt": "### Task:\nGenerate a detailed prompt for am image generation task based on the given"
    " language and context.",
    "compaction": "### Task:\nSummarize the conversation history that will be compacted out of the active chat"
    " context.",
    "emoji": "Your task is to reflect the speaker's likely facial expression through a fitting emoji. Interpret"
    " emotions from the message and reflect their facial expression using fitting, diverse emojis (e.g., 😊, 😢,"
    " 😡, 😱).\n\nMessage: ```I got the job!```",
    "merge": 'You have been provided with a set of responses from various models to the latest user query: "what'
    ' is my dog called?"\n\nYour task is to synthesize these responses into a single, high-quality response.',
}


@pytest.mark.parametrize("name", TASKS)
def test_its_task_prompts_are_tasks(name: str) -> None:
    assert is_task({}, [("user", TASKS[name])])
    assert is_task({}, [("system", "You are a helpful titler."), ("user", TASKS[name])])  # a workspace task model


def test_the_legacy_tool_choice_and_the_memory_review_are_tasks() -> None:
    assert is_task({}, [("system", 'Available Tools: [{"name": "get_time"}]\n\nYour task is to choose...'),
                        ("user", "Query: what time is it?")])  # fmt: skip
    assert is_task({}, [("system", "You are Open WebUI's private memory reviewer. Return only valid JSON."),
                        ("user", "Review the completed conversation turn and decide ...")])  # fmt: skip


def test_a_turn_with_a_file_is_not_a_task_and_its_words_come_out() -> None:
    wrapped = RAG + "\n" + "what is the code word?"
    assert not is_task({}, [("user", "hi"), ("assistant", "hello"), ("user", wrapped)])
    assert own_words(wrapped) == "what is the code word?"
    assert own_words(OLD_RAG) == "what is the code word?"
    multi = RAG + "\nfirst line\n\nsecond line\n"
    assert own_words(multi) == "first line\n\nsecond line\n"


def test_plain_words_are_left_as_they_are() -> None:
    for text in ["hi", "  ### Task: list my chores", "<context>\nmine\n</context>\n\nwhy?", ""]:
        assert own_words(text) == text
    assert not is_task({}, [("user", "what is a ### Task: header?")])
    assert not is_task({}, [("user", "### Task:\nGenerate a title"), ("assistant", "t"), ("user", "thanks")])


def test_attached_files_and_code_interpreter_instructions_come_off() -> None:
    listed = '<attached_files>\n<file type="file" id="f1" url="/api/v1/files/f1" name="a.txt"/>\n</attached_files>\n\n'
    assert own_words(listed + "summarise it") == "summarise it"
    assert own_words("plot it\n\n#### Code Interpreter\n\nYou have access to a Python code interpreter") == "plot it"
    assert own_words(RAG + "\n" + listed + "and this?") == "and this?"


def test_the_task_header_decides_when_the_admin_set_it() -> None:
    assert is_task({"x-openwebui-task": "title_generation"}, [("user", "anything")])
    assert not is_task({"x-openwebui-task": ""}, [("user", TASKS["title"])])  # a chat turn, whatever it says
    assert not is_task({"x-openwebui-task": " "}, [("user", "hi")])


def test_temporary_chats() -> None:
    assert is_temporary("temporary:Yx9Kq2mZb3AAAB")
    assert is_temporary("local:Yx9Kq2mZb3AAAB")
    assert not is_temporary("4f6d0c1e-8a57-4c1b-9d1e-2b8f3c9a7e10")
    assert not is_temporary(None)
