"""Schemathesis against the gateway's own OpenAPI schema: whatever it sends, no answer is a 5xx.

The real app (``create_app``) runs in process with Rasa and the action server down, so what is tested is the
gateway's own handling of every documented route: the chat and rating API, the shop pages and images, the
demo sign-in, and the agent and lead APIs. Each operation gets schemathesis' examples, its coverage cases
(boundaries such as ``2**31`` or ``2**63`` for an id, wrong types, missing fields) and a fixed number of
fuzzed cases, from a fixed seed (the same cases on every run).

- As an anonymous client on the test database with its catalog: no 5xx, and every agent or lead route
  answers 401 before it reads any input.
- As a logged-in lead (a fresh session per case, with its CSRF token) on a database of its own, where the
  handlers themselves run: no 5xx. ``POST /admin/api/models/train`` is left out: it starts a training process.
"""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error

from bot.auth import sessions, users
from bot.auth.web import CSRF_HEADER, SESSION_COOKIE
from bot.config import Settings
from bot.db import migrate, session_scope
from bot.web.app import create_app
from tests.support.gateway_server import down_url

MAX_EXAMPLES = 25  # fuzzed cases per operation and mode (valid, invalid data), after its coverage cases
MAX_COVERAGE = 150  # coverage cases per operation at most (boundaries, wrong types, missing fields)
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
SEED = 16
PASSWORD = "fuzzing-lead-password-1"
AUTH_TAGS = {"agent", "lead"}
# Before the session is checked, a request may be refused as too large (413) or as a body that is not JSON
# at all (FastAPI reads the body first): nothing about the route's input is validated for an anonymous client.
BEFORE_AUTH = {401, 403, 413}


def gateway_settings(**overrides: Any) -> Settings:
    down = down_url()
    base: dict[str, Any] = {"rasa_url": down, "actions_url": down, "rasa_timeout_s": 1.0,
                            "rate_limit_per_conversation": "off", "rate_limit_per_address": "off"}
    return Settings(**{**base, **overrides})


def fuzzing(schema: schemathesis.BaseSchema) -> schemathesis.BaseSchema:
    schema.config.seed = SEED
    schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True, database="none", modes=MODES)
    # /healthz answers 503 by design while Rasa is down (no input; tests/integration/test_security.py covers it)
    return schema.exclude(path="/healthz")


@pytest.fixture(scope="module")
def anonymous_api(catalog: int) -> schemathesis.BaseSchema:
    return fuzzing(schemathesis.openapi.from_asgi("/openapi.json", create_app(gateway_settings())))


class Lead:
    """A lead on the fuzzing database: a fresh session (cookie and CSRF token) for every case."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        with session_scope(database_url) as session:
            self.user = users.create_user(session, f"fuzz-lead-{uuid.uuid4().hex[:8]}", PASSWORD, "lead")

    def credentials(self) -> tuple[dict[str, str], dict[str, str]]:
        with session_scope(self.database_url) as session:
            token, auth = sessions.start_session(session, self.user)
        return {CSRF_HEADER: auth.csrf_token}, {SESSION_COOKIE: token}


@pytest.fixture(scope="module")
def lead_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[schemathesis.BaseSchema, Lead]:
    folder: Path = tmp_path_factory.mktemp("fuzz-lead")
    database_url = f"sqlite:///{folder / 'shop.sqlite3'}"
    migrate(database_url)
    settings = gateway_settings(database_url=database_url, tracker_store_url=f"sqlite:///{folder / 'tracker.sqlite3'}")
    schema = fuzzing(schemathesis.openapi.from_asgi("/openapi.json", create_app(settings)))
    return schema.exclude(method="POST", path="/admin/api/models/train"), Lead(database_url)


@pytest.fixture(scope="module")
def lead_api(lead_setup: tuple[schemathesis.BaseSchema, Lead]) -> schemathesis.BaseSchema:
    return lead_setup[0]


@pytest.fixture(scope="module")
def lead(lead_setup: tuple[schemathesis.BaseSchema, Lead]) -> Lead:
    return lead_setup[1]


def operations(schema: schemathesis.BaseSchema) -> list[APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 25, [o.label for o in found]
    return found


def exercise(schema: schemathesis.BaseSchema, check: Callable[[Case], None]) -> dict[str, str]:
    """Every operation's coverage cases, then MAX_EXAMPLES fuzzed cases each of valid and invalid data, through
    ``check``; the first failure of each operation by its label (pytest's schemathesis plugin would do the same,
    but its lazy fixtures do not work with this pytest)."""
    failures: dict[str, str] = {}
    for operation in operations(schema):
        try:
            for case in itertools.islice(schema.iter_coverage_cases(
                    operation, generation_modes=MODES,
                    generation_config=schema.config.generation_for(operation=operation)), MAX_COVERAGE):
                check(case)
            for mode in MODES:
                fuzz(operation, mode, check)
        except Exception as exc:  # a failed check, or what the app raised (the in-process client re-raises it)
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:1500]
    return failures


def fuzz(operation: APIOperation, mode: GenerationMode, check: Callable[[Case], None]) -> None:
    @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                         phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(operation.as_strategy(generation_mode=mode))
    def run(case: Case) -> None:
        check(case)

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        assert mode == GenerationMode.NEGATIVE, operation.label  # nothing to get wrong: no input, or only enums


def refused_before_reading(response: schemathesis.Response) -> bool:
    if response.status_code in BEFORE_AUTH:
        return True
    detail = response.json().get("detail") if response.status_code in (400, 422) else None
    if response.status_code == 400:
        return detail == "There was an error parsing the body"
    return isinstance(detail, list) and all(d.get("type") == "json_invalid" for d in detail)


def test_no_request_gets_a_server_error(anonymous_api: schemathesis.BaseSchema) -> None:
    statuses: Counter[int] = Counter()

    def check(case: Case) -> None:
        response = case.call()
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])
        if AUTH_TAGS & set(case.operation.tags or []) and case.method.upper() == case.operation.method.upper():
            assert refused_before_reading(response), (case.operation.label, response.status_code,
                                                      response.text[:300])

    failures = exercise(anonymous_api, check)
    print(f"\nanonymous fuzzing: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
    assert not [s for s in statuses if s >= 500]


def test_no_request_of_a_lead_gets_a_server_error(lead_api: schemathesis.BaseSchema, lead: Lead) -> None:
    statuses: Counter[int] = Counter()

    def check(case: Case) -> None:
        headers, cookies = lead.credentials()
        response = case.call(headers=headers, cookies=cookies)
        statuses[response.status_code] += 1
        case.validate_response(response, checks=[not_a_server_error])

    failures = exercise(lead_api, check)
    print(f"\nfuzzing as a lead: {sum(statuses.values())} requests, statuses {dict(sorted(statuses.items()))}")
    assert not failures, "\n\n".join(f"{label}: {text}" for label, text in failures.items())
    assert statuses[200] > 0  # the handlers ran, not only the session check
