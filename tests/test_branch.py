"""The branch a request's history is on, matched to the journal's turns (pure, literal values)."""

from __future__ import annotations

from gateway.branch import Earlier, place
from gateway.protocol import ChatMessage


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def said(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)


def turns(*pairs: tuple[str, str], replaced: tuple[int, ...] = ()) -> list[Earlier]:
    return [
        Earlier(question=q, answer=a, turn=n, replaced=n in replaced, messages=(2 * n - 1, 2 * n), blocked=True)
        for n, (q, a) in enumerate(pairs, start=1)
    ]


JOURNAL = turns(("hi", "hello"), ("my dog is Rex", "nice"), ("and my cat?", "unknown"))


def test_a_new_turn_on_the_branch_leaves_nothing() -> None:
    placed = place([user("hi"), said("hello"), user("my dog is Rex"), said("nice"), user("more")], JOURNAL[:2])
    assert (placed.leaving, placed.returning, placed.again, placed.continued) == ([], [], None, None)
    assert sorted(placed.blocks) == [0, 2]


def test_a_regenerated_answer_leaves_the_turn_it_replaces() -> None:
    placed = place([user("hi"), said("hello"), user("my dog is Rex")], JOURNAL[:2])
    assert placed.again == JOURNAL[1]
    assert [e.turn for e in placed.leaving] == [2]
    assert placed.left() == [3, 4]  # recall must not bring back the answer being replaced


def test_an_edited_question_leaves_it_and_all_that_followed() -> None:
    placed = place([user("hi"), said("hello"), user("my dog is Max")], JOURNAL)
    assert placed.again is None
    assert [e.turn for e in placed.leaving] == [2, 3]


def test_editing_or_regenerating_the_first_message_of_a_named_chat_leaves_every_turn() -> None:
    edited = place([user("hello?")], JOURNAL, named=True)
    assert [e.turn for e in edited.leaving] == [1, 2, 3]
    regenerated = place([user("hi")], JOURNAL, named=True)
    assert regenerated.again == JOURNAL[0]
    assert [e.turn for e in regenerated.leaving] == [1, 2, 3]


def test_a_lone_message_without_a_name_may_be_the_same_question_another_day() -> None:
    placed = place([user("hi")], JOURNAL, named=False)
    assert (placed.leaving, placed.again) == ([], None)


def test_a_trimmed_history_leaves_nothing_before_its_first_matched_turn() -> None:
    placed = place([user("my dog is Rex"), said("nice"), user("and my cat?"), said("unknown"), user("ok")], JOURNAL)
    assert placed.leaving == []


def test_turns_left_before_are_taken_back_when_the_user_returns_to_their_branch() -> None:
    journal = turns(("hi", "hello"), ("my dog is Rex", "nice"), ("my dog is Max", "fine"), replaced=(2,))
    back = place([user("hi"), said("hello"), user("my dog is Rex"), said("nice"), user("next")], journal)
    assert [e.turn for e in back.returning] == [2]
    assert [e.turn for e in back.leaving] == [3]


def test_between_turns_asking_the_same_the_answer_decides() -> None:
    """A regenerated first answer: two turns ask "hi"; the history carries the answer the user kept."""
    journal = turns(("hi", "hello"), ("hi", "hey there"), replaced=(1,))
    kept = place([user("hi"), said("hey there"), user("next")], journal)
    assert (kept.leaving, kept.returning) == ([], [])
    switched = place([user("hi"), said("hello"), user("next")], journal)
    assert [e.turn for e in switched.returning] == [1]
    assert [e.turn for e in switched.leaving] == [2]


def test_without_a_matching_answer_the_turn_still_on_the_branch_is_chosen() -> None:
    journal = turns(("hi", "hello"), ("hi", "hey there"), replaced=(1,))
    placed = place([user("hi"), said("Hey there!"), user("next")], journal)
    assert (placed.leaving, placed.returning) == ([], [])


def test_the_same_question_asked_twice_on_one_branch_stays_two_turns() -> None:
    journal = turns(("go on", "a"), ("why?", "b"), ("go on", "c"))
    placed = place([user("go on"), said("a"), user("why?"), said("b"), user("go on"), said("c"), user("x")], journal)
    assert placed.leaving == []
    assert sorted(placed.blocks) == [0, 2, 4]


def test_a_continued_answer_names_the_turn_it_completes() -> None:
    placed = place([user("hi"), said("hello"), user("my dog is Rex"), said("ni")], JOURNAL[:2])
    assert placed.continued == JOURNAL[1]
    assert placed.leaving == []
    assert 2 in placed.loading()


def test_words_wrapped_by_a_front_end_are_compared_as_the_user_wrote_them() -> None:
    wrapped = user(
        "### Task:\nRespond to the user query...\n\n<context>\n<source>a file</source>\n</context>\n\nmy dog is Rex"
    )
    listed = user('<attached_files>\n<file type="file" id="f1" name="a.txt"/>\n</attached_files>\n\nhi')
    placed = place([listed, said("hello"), wrapped], JOURNAL[:2])
    assert 0 in placed.blocks
    assert placed.again == JOURNAL[1]


def test_the_answer_of_a_model_not_chosen_is_left() -> None:
    """Two models answered the first question at once; the branch goes on from the second one's answer."""
    journal = turns(("hi", "hello from A"), ("hi", "hello from B"), ("go on", "x"))
    placed = place([user("hi"), said("hello from B"), user("go on"), said("x"), user("next")], journal)
    assert [e.turn for e in placed.leaving] == [1]
    not_adjacent = turns(("go on", "a"), ("why?", "b"), ("go on", "c"))
    assert place([user("go on"), said("c"), user("next")], not_adjacent).leaving == []  # a trimmed history
