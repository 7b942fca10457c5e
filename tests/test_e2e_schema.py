"""Every route, fuzzed from the gateway's own OpenAPI schema (schemathesis): no input makes it fail with a 500.

The gateway runs against the fake Ollama with a data dir of its own (the fuzzing writes garbage memories).
Upstream statuses (502-504) are the fake's answers to what it was sent, relayed in the envelope; a 500 is
the gateway's own failure. (Schemathesis' pytest plugin does not run under pytest 9: Hypothesis drives each
operation's strategy here instead.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.core.result import Ok

from tests import processes
from tests.conftest import Fake

FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same inputs on every run: a failure here is reproducible
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def fuzzed(
    fake_session: Fake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, schemathesis.BaseSchema]]:
    with processes.gateway(fake_session.url, tmp_path_factory.mktemp("fuzzed")) as url:
        yield url, schemathesis.openapi.from_url(url + "/schema/openapi.json")


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_no_input_is_a_500(fuzzed: tuple[str, schemathesis.BaseSchema], mode: schemathesis.GenerationMode) -> None:
    """Inputs the schema allows (positive) and inputs it forbids (negative)."""
    url, schema = fuzzed
    operations = [result.ok() for result in schema.get_all_operations() if isinstance(result, Ok)]
    assert len(operations) >= 15

    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy(mode))
        def call(case: schemathesis.Case[Any]) -> None:
            response = case.call(base_url=url, timeout=30)
            said = f"{case.method} {case.formatted_path} {case.body!r:.200}: {response.text[:300]}"
            assert response.status_code != 500, said
            if response.status_code >= 400 and case.method != "HEAD":  # a HEAD answer has no body
                assert set(response.json()) == {"error"}, said

        try:
            call()
        except Unsatisfiable:  # nothing to get wrong (a route without parameters or body, in negative mode)
            assert mode == schemathesis.GenerationMode.NEGATIVE
