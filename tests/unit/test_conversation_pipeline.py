"""The shopper pipeline without HTTP: the real test database (SQLite), the real agent inbox and hub, and a real
HTTP server on 127.0.0.1 standing in for Rasa's REST webhook (it records what it was sent)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.conversation.pipeline import Answer, RatingRefused, ShopperPipeline
from bot.conversation.rasa_client import HELD, HELD_MORE, MESSAGE_ID, RasaClient
from bot.conversation.rate_limits import ChatLimiter, Rule
from bot.db import session_scope
from bot.handoff import tickets
from bot.handoff.agent_inbox import AgentInbox
from bot.handoff.tables import CLAIMED, SHOPPER, Ticket, TicketMessage
from bot.held_messages import queue as held_queue
from bot.shop import crm
from bot.shop.identity import InvalidToken, issue_token
from bot.shop.tables import Customer
from bot.web.hub import Hub, ticket_topic
from tests.conftest import free_port
from tests.support.json_stub import JsonStub

SECRET = "pipeline-test-secret-0123456789-0123456789"
ISSUER = "shop-assistant"
CARD = "4111 1111 1111 1111"  # Luhn-valid test card


class RecordingRasa:
    """What the stand-in Rasa was sent, in order; it answers each message with one echo line."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.stub = JsonStub(self.answer)
        self.url = self.stub.url

    def answer(self, path: str, body: dict[str, Any]) -> bytes:
        assert path == "/webhooks/rest/webhook", path
        with self._lock:
            self.received.append(body)
        return json.dumps([{"recipient_id": body["sender"], "text": f"echo: {body['message']}"}]).encode()


@pytest.fixture(scope="module")
def rasa() -> Iterator[RecordingRasa]:
    stand_in = RecordingRasa()
    yield stand_in
    stand_in.stub.close()


class Pipe:
    """A pipeline and what the test looks at: the hub, and how often the replay was woken."""

    def __init__(self, rasa_url: str, limiter: ChatLimiter | None = None) -> None:
        self.settings = Settings(jwt_secret=SECRET, jwt_issuer=ISSUER, rasa_url=rasa_url, rasa_timeout_s=2.0)
        self.hub = Hub()
        self.rasa = RasaClient(rasa_url, 2.0)
        self.inbox = AgentInbox(self.settings, self.hub, self.rasa)
        self.woken = 0
        self.pipeline = ShopperPipeline(self.settings, self.rasa, self.inbox, limiter or ChatLimiter(None, None),
                                        self.wake)

    def wake(self) -> None:
        self.woken += 1


@pytest.fixture
async def pipe(rasa: RecordingRasa) -> AsyncIterator[Pipe]:
    made = Pipe(rasa.url)
    yield made
    await made.rasa.aclose()


@pytest.fixture
async def rasa_down() -> AsyncIterator[Pipe]:
    made = Pipe(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    yield made
    await made.rasa.aclose()


def conversation() -> str:
    return f"pipe-{uuid.uuid4().hex[:12]}"


def sent_to_rasa(rasa: RecordingRasa, conversation_id: str) -> list[dict[str, Any]]:
    return [body for body in rasa.received if body["sender"] == conversation_id]


@pytest.fixture
def customer_id() -> int:
    with session_scope() as s:
        customer = Customer(email=f"pipe-{uuid.uuid4().hex[:8]}@example.com", name="Pia Pipeline")
        s.add(customer)
        s.flush()
        return int(customer.id)


def open_ticket(conversation_id: str, claimed: bool = False) -> int:
    with session_scope() as s:
        ticket, _ = tickets.open_ticket(s, conversation_id=conversation_id, customer_id=None, reason="human")
        if claimed:
            tickets.claim(s, ticket.id, agent_id=41, agent_name="Ada")
        return int(ticket.id)


def shopper_lines(ticket_id: int) -> list[str]:
    with session_scope() as s:
        return list(s.scalars(select(TicketMessage.text).where(TicketMessage.ticket_id == ticket_id,
                                                               TicketMessage.role == SHOPPER)
                              .order_by(TicketMessage.id)))


async def test_identity_reaches_rasa_only_from_a_verified_token(pipe: Pipe, rasa: RecordingRasa,
                                                                customer_id: int) -> None:
    conv = conversation()
    token = issue_token(customer_id, 600, SECRET, ISSUER)
    assert await pipe.pipeline.identify(conv, token) == customer_id
    forged = {"customer_id": 1, "Customer_Email": "boss@example.com", "segment": "vip", "authenticated": True,
              "client_key": "ip:1.2.3.4", MESSAGE_ID: "mine", "page": "/products/3"}
    answer = await pipe.pipeline.message(conv, "where is my order", metadata=forged, customer_id=customer_id,
                                         client_host="10.0.0.7")
    assert answer == Answer([{"recipient_id": conv, "text": "echo: where is my order"}], False, False)
    [body] = sent_to_rasa(rasa, conv)
    with session_scope() as s:
        segment = crm.profile(s, customer_id).segment
    metadata = body["metadata"]
    assert {k: v for k, v in metadata.items() if k != MESSAGE_ID} == {
        "customer_id": customer_id, "segment": segment, "client_key": "ip:10.0.0.7", "channel": "api",
        "page": "/products/3"}
    assert metadata[MESSAGE_ID] != "mine" and len(metadata[MESSAGE_ID]) == 32  # the gateway's own id


async def test_a_guest_claims_no_identity_and_a_bad_token_is_refused(pipe: Pipe, rasa: RecordingRasa,
                                                                     customer_id: int) -> None:
    conv = conversation()
    await pipe.pipeline.message(conv, "hi", metadata={"customer_id": customer_id, "segment": "vip",
                                                      "channel": "widget"}, client_host=None)
    [body] = sent_to_rasa(rasa, conv)
    assert set(body["metadata"]) == {"channel", MESSAGE_ID} and body["metadata"]["channel"] == "widget"
    with pytest.raises(InvalidToken):
        await pipe.pipeline.identify(conv, issue_token(customer_id, 600, "some-other-secret-0123456789-abcdef",
                                                       ISSUER))
    with pytest.raises(InvalidToken):
        await pipe.pipeline.identify(conv, issue_token(customer_id, 60, SECRET, ISSUER, now=1_000_000.0))  # expired
    with pytest.raises(InvalidToken):
        await pipe.pipeline.identify(conv, "not-a-token")


async def test_card_numbers_are_masked_before_rasa_and_the_ticket(pipe: Pipe, rasa: RecordingRasa) -> None:
    conv = conversation()
    ticket_id = open_ticket(conv)
    pushed = pipe.hub.subscribe(ticket_topic(ticket_id), maxsize=10)
    try:
        await pipe.pipeline.message(conv, f"my card {CARD} was charged twice")
        event = await pushed.get()
    finally:
        pushed.close()
    [body] = sent_to_rasa(rasa, conv)
    assert CARD not in body["message"] and "1111" in body["message"] and body["message"] != \
        f"my card {CARD} was charged twice"
    assert shopper_lines(ticket_id) == [body["message"]]
    assert event is not None and event["type"] == "message" and event["message"]["text"] == body["message"]


async def test_a_message_is_stored_on_the_open_ticket_and_rasa_still_gets_it(pipe: Pipe, rasa: RecordingRasa) -> None:
    conv = conversation()
    assert (await pipe.pipeline.message(conv, "before any ticket")).with_agent is False
    ticket_id = open_ticket(conv, claimed=True)
    seen: list[bool] = []

    async def stored(with_agent: bool) -> None:
        seen.append(with_agent)
        assert len(sent_to_rasa(rasa, conv)) == 1  # on the ticket before Rasa is asked

    answer = await pipe.pipeline.message(conv, "are you a person?", on_stored=stored)
    assert seen == [True] and answer.with_agent and not answer.degraded
    assert shopper_lines(ticket_id) == ["are you a person?"]  # not the message from before the ticket
    assert [b["message"] for b in sent_to_rasa(rasa, conv)] == ["before any ticket", "are you a person?"]


async def test_a_button_press_reaches_rasa_as_its_payload_and_the_agent_in_words(pipe: Pipe,
                                                                                 rasa: RecordingRasa) -> None:
    conv = conversation()
    ticket_id = open_ticket(conv)
    await pipe.pipeline.message(conv, '/add_to_cart{"product_id": "5"}', channel="widget", clicked="Add to cart",
                                payloads=True)
    await pipe.pipeline.message(conv, '/add_to_cart{"product_id": "6"}', channel="widget", payloads=True)
    await pipe.pipeline.message(conv, "/typed into the api")
    assert [b["message"] for b in sent_to_rasa(rasa, conv)] == [
        '/add_to_cart{"product_id": "5"}', '/add_to_cart{"product_id": "6"}', "/typed into the api"]
    assert shopper_lines(ticket_id) == ["Add to cart", "[button: add to cart (product_id 6)]", "/typed into the api"]


async def test_the_rate_limit_refuses_a_conversation_and_an_address(rasa: RecordingRasa) -> None:
    made = Pipe(rasa.url, ChatLimiter(Rule.parse("1/min burst 2"), Rule.parse("1/min burst 4"), exempt="10.9.0.0/16"))
    limits = made.pipeline
    conv, other = conversation(), conversation()
    assert await limits.limited(conv, "10.0.0.1") is None
    assert await limits.limited(conv, "10.0.0.1") is None
    refused = await limits.limited(conv, "10.0.0.1")
    assert refused is not None and refused.scope == "conversation" and refused.retry_after >= 1
    assert await limits.limited(other, "10.0.0.1") is None  # the address's fourth message (refused ones count)
    refused = await limits.limited(conversation(), "10.0.0.1")
    assert refused is not None and refused.scope == "address"
    assert all([await limits.limited(conversation(), "10.9.1.1") is None for _ in range(5)])  # exempt
    await made.rasa.aclose()


async def test_messages_are_held_in_order_while_rasa_is_down(rasa_down: Pipe) -> None:
    conv = conversation()
    first = await rasa_down.pipeline.message(conv, f"first, card {CARD}", client_host="10.0.0.8")
    assert first == Answer([{"text": HELD}], True, False) and rasa_down.woken == 1
    second = await rasa_down.pipeline.message(conv, "second")
    assert second == Answer([{"text": HELD_MORE}], True, False) and rasa_down.woken == 2
    with session_scope() as s:
        held = held_queue.claim(s, conv, "pipeline-test", lease_s=60)
        assert [h.text.startswith("first, card") and CARD not in h.text for h in held[:1]] == [True]
        assert [h.text for h in held[1:]] == ["second"]
        assert held[0].metadata["client_key"] == "ip:10.0.0.8" and MESSAGE_ID in held[0].metadata
        for h in held:
            held_queue.done(s, h.id)


async def test_a_message_waits_behind_held_ones_even_when_rasa_is_up(pipe: Pipe, rasa: RecordingRasa) -> None:
    conv = conversation()
    with session_scope() as s:
        held_queue.hold(s, conv, "kept earlier", {"channel": "api"})
    answer = await pipe.pipeline.message(conv, "and now this")
    assert answer == Answer([{"text": HELD_MORE}], True, False) and pipe.woken == 1
    assert sent_to_rasa(rasa, conv) == []  # not ahead of the held message
    with session_scope() as s:
        held = held_queue.claim(s, conv, "pipeline-test", lease_s=60)
        assert [h.text for h in held] == ["kept earlier", "and now this"]
        for h in held:
            held_queue.done(s, h.id)


async def test_with_an_agent_a_down_rasa_is_no_apology(rasa_down: Pipe) -> None:
    conv = conversation()
    ticket_id = open_ticket(conv, claimed=True)
    answer = await rasa_down.pipeline.message(conv, "hello Ada")
    assert answer == Answer([], False, True)  # the agent got it; Rasa gets it from the replay
    assert shopper_lines(ticket_id) == ["hello Ada"]
    with session_scope() as s:
        assert held_queue.has_held(s, conv)
        for h in held_queue.claim(s, conv, "pipeline-test", lease_s=60):
            held_queue.done(s, h.id)


async def test_a_resolved_chat_is_rated_once_from_its_own_conversation(pipe: Pipe) -> None:
    conv = conversation()
    ticket_id = open_ticket(conv, claimed=True)
    with pytest.raises(RatingRefused) as early:
        await pipe.pipeline.rate(conv, ticket_id, 5)
    assert early.value.error == "not_rateable"
    with session_scope() as s:
        tickets.resolve(s, ticket_id, 41)
    with pytest.raises(RatingRefused) as elsewhere:
        await pipe.pipeline.rate(conversation(), ticket_id, 5)
    assert elsewhere.value.error == "not_found"
    with pytest.raises(RatingRefused) as bad:
        await pipe.pipeline.rate(conv, ticket_id, 6)
    assert bad.value.error == "bad_rating"
    await pipe.pipeline.rate(conv, ticket_id, 4)
    with session_scope() as s:
        rated = s.get(Ticket, ticket_id)
        assert rated is not None and rated.rating == 4
    with pytest.raises(RatingRefused) as twice:
        await pipe.pipeline.rate(conv, ticket_id, 5)
    assert twice.value.error == "not_rateable" and "already rated" in twice.value.message


async def test_the_widget_state_names_the_agent(pipe: Pipe) -> None:
    conv = conversation()
    assert await pipe.pipeline.widget_state(conv) is None
    ticket_id = open_ticket(conv)
    assert await pipe.pipeline.widget_state(conv) == {"type": "handoff", "state": "queued", "ticket_id": ticket_id}
    with session_scope() as s:
        assert tickets.claim(s, ticket_id, agent_id=41, agent_name="Ada").status == CLAIMED
    state = await pipe.pipeline.widget_state(conv)
    assert state is not None and state["state"] == "agent" and state["ticket_id"] == ticket_id
