"""Sends held shopper messages to Rasa once it is back, in order, and pushes the answers to the widget.

A message is held (``bot.held_messages.queue``) when Rasa never got it, or when no answer came in time and Rasa may
have got it. Before a held message is sent, Rasa's tracker is asked for a user event with the message's id
(``metadata.message_id``): if Rasa took it, the answer it gave then is delivered instead, so a turn Rasa
finished is not run again (at least once to Rasa, once in the conversation; the tracker cannot show a turn
still running, docs/operations.md, "Faults"). Each gateway replica runs one
:class:`Replayer`; the database decides which replica replays which conversation. The answers go to the
conversation's topic on the hub, so the shopper's widget shows them on whichever replica it is connected to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from bot.conversation.rasa_client import APOLOGY, MESSAGE_ID, RasaClient, RasaUnavailable
from bot.db import in_session
from bot.held_messages import queue as held
from bot.web.hub import Hub, conversation_topic

log = logging.getLogger("bot.held_messages.replay")


class Replayer:
    def __init__(self, database_url: str, rasa: RasaClient, hub: Hub,
                 on_replies: Callable[[str, list[dict[str, Any]]], Awaitable[None]] | None = None,
                 idle_s: float = 2.0, retry_s: float = 1.0, max_retry_s: float = 5.0, lease_s: float = 60.0) -> None:
        self.database_url = database_url
        self.rasa = rasa
        self.hub = hub
        self.on_replies = on_replies
        self.idle_s, self.retry_s, self.max_retry_s, self.lease_s = idle_s, retry_s, max_retry_s, lease_s
        self.owner = f"gw-{uuid.uuid4().hex[:12]}"
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def _db(self, work: Callable[..., Any], *args: Any) -> Any:
        return await in_session(self.database_url, work, *args)

    async def replay_once(self) -> tuple[int, bool]:
        """Replay what is due: ``(messages answered, rasa still down)``."""
        answered = 0
        for conversation_id in await self._db(held.due_conversations):
            messages = await self._db(held.claim, conversation_id, self.owner, self.lease_s)
            for message in messages:
                try:
                    replies = await self.answer(conversation_id, message)
                except RasaUnavailable as exc:
                    if exc.keep:  # still down, or no answer in time again: the next round asks the tracker
                        await self._db(held.release, conversation_id, self.owner, str(exc))
                        return answered, True
                    # Rasa got it but could not answer (e.g. the action server is down): it is in the
                    # tracker now, so sending it again would duplicate it.
                    log.warning("conversation %s: held message %s reached rasa without an answer: %s",
                                conversation_id, message.id, exc)
                    replies = [{"text": APOLOGY}]
                await self._db(held.done, message.id)
                answered += 1
                if not replies:  # e.g. the bot is paused while a person has the conversation
                    continue
                self.hub.publish(conversation_topic(conversation_id),
                                       {"type": "bot", "messages": replies, "replayed": True})
                if self.on_replies is not None:
                    await self.on_replies(conversation_id, replies)
        return answered, False

    async def answer(self, conversation_id: str, message: held.Held) -> list[dict[str, Any]]:
        """Rasa's answer to a held message: the one it gave when it took the message before (its tracker has
        the message's id), else the answer to sending it now."""
        message_id = message.metadata.get(MESSAGE_ID)
        if isinstance(message_id, str) and message_id:
            earlier, paused = await self.rasa.answer_to(conversation_id, message_id)
            if earlier is not None:
                log.info("conversation %s: held message %s was taken by rasa before; delivering its answer",
                         conversation_id, message.id)
                if not earlier and not paused:
                    return [{"text": APOLOGY}]  # taken in, but what answers it failed
                return earlier
        return await self.rasa.send(conversation_id, message.text, message.metadata)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Replay whenever woken (a message was held) or every ``idle_s``; while Rasa stays unreachable,
        try again after ``retry_s``, doubling up to ``max_retry_s``."""
        backoff = self.retry_s
        while not stop.is_set():
            self._wake.clear()
            try:
                _, down = await self.replay_once()
            except Exception:  # e.g. the database is away: the next round tries again
                log.exception("replaying held messages failed")
                down = True
            if down:
                wait_for: Awaitable[Any] = stop.wait()
                timeout, backoff = backoff, min(self.max_retry_s, backoff * 2)
            else:
                wait_for, timeout, backoff = self._wake.wait(), self.idle_s, self.retry_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wait_for, timeout=timeout)
