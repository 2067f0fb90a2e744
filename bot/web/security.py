"""HTTP hardening of the gateway: security headers, request size limits, websocket origins and frames.

- :func:`security_headers` is the one place the security headers are made: a strict CSP (scripts and styles
  from this origin only, nothing inline), ``X-Content-Type-Options``, ``Referrer-Policy``,
  ``X-Frame-Options``, ``Permissions-Policy`` and, over HTTPS, ``Strict-Transport-Security``.
  :class:`SecurityHeaders` puts them on every response; headers a route set itself are kept, and the agent
  and lead consoles' pages set the consoles' stricter set with :func:`console_headers`.
- :class:`BodyLimit` answers 413 to request bodies over the limit, before the app reads them, and 422 to a
  JSON body with ``NaN`` or ``Infinity`` (Python's parser takes them, but they are not JSON, nothing
  downstream can serialise them, and they used to end in a 500).
- :func:`json_depth` and :func:`frame_problem` bound how deeply nested a JSON value may be (the chat's
  ``metadata``, a websocket frame): Rasa fails on deep nesting with a RecursionError.
- :func:`origin_allowed` decides which pages may open the shopper's websocket, :func:`receive_frame`
  reads one websocket frame with a size limit.
- Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) count only from ``SHOP_TRUSTED_PROXIES``;
  otherwise the client address is the TCP peer's, so nobody escapes the rate limits, the login throttle or
  the order-proof lockout by sending a header.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.conversation.rate_limits import Limited

PERMISSIONS_POLICY = ("camera=(), microphone=(), geolocation=(), payment=(), usb=(), interest-cohort=(), "
                      "browsing-topics=()")
HSTS = "max-age=31536000; includeSubDomains"


def policy_host(raw: str) -> str:
    """The ``Host`` header as the policy names it: only host characters survive, so it cannot break out."""
    return "".join(c for c in raw if c.isascii() and (c.isalnum() or c in ".-:[]")) or "localhost"


def content_security_policy(host: str, *, remote_images: bool = True) -> str:
    """Scripts, styles and connections from this origin only; with ``remote_images`` (the shop's pages)
    product images may come from any HTTPS host, else images come from this origin only."""
    images = "'self' data: https:" if remote_images else "'self' data:"
    return (f"default-src 'self'; script-src 'self'; style-src 'self'; img-src {images}; "
            f"connect-src 'self' ws://{host} wss://{host}; font-src 'self'; frame-ancestors 'none'; "
            "base-uri 'none'; form-action 'self'; object-src 'none'")


def security_headers(host: str, *, https: bool, console: bool = False) -> dict[str, str]:
    """Every security header of a response (lower-case names). ``console``: the agent and lead consoles'
    stricter set: images from this origin only, the referrer kept to this origin, nothing cached."""
    headers = {"content-security-policy": content_security_policy(host, remote_images=not console),
               "x-content-type-options": "nosniff",
               "referrer-policy": "same-origin" if console else "strict-origin-when-cross-origin",
               "x-frame-options": "DENY",
               "permissions-policy": PERMISSIONS_POLICY,
               "cross-origin-opener-policy": "same-origin"}
    if console:
        headers["cache-control"] = "no-store"
    if https:
        headers["strict-transport-security"] = HSTS
    return headers


def console_headers(response: Response, connection: HTTPConnection) -> Response:
    """``response`` (a console page, the login form and its answers) with the consoles' security headers."""
    response.headers.update(security_headers(policy_host(connection.headers.get("host", "")),
                                             https=connection.url.scheme in ("https", "wss"), console=True))
    return response


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP response (routes may override each one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = policy_host(dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1"))
        wanted = security_headers(host, https=scope.get("scheme") == "https")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                present = {name.lower() for name, _ in headers}
                headers += [(name.encode(), value.encode()) for name, value in wanted.items()
                            if name.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``limit`` bytes (``limits``: a smaller one per path prefix).

    The declared ``Content-Length`` is checked first; a chunked body is counted as it arrives, and the
    app only sees it once it is known to fit.
    """

    def __init__(self, app: ASGIApp, limit: int, limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.limit = limit
        self.limits = sorted((limits or {}).items(), key=lambda kv: -len(kv[0]))

    def limit_for(self, path: str) -> int:
        return next((n for prefix, n in self.limits if path.startswith(prefix)), self.limit)

    async def _not_json_numbers(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 422,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(NON_FINITE_BODY)).encode())]})
        await send({"type": "http.response.body", "body": NON_FINITE_BODY})

    async def _too_large(self, send: Send, limit: int) -> None:
        body = (b'{"detail":{"error":"too_large","message":"That request is too large (at most '
                + str(limit).encode() + b' bytes)."}}')
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope.get("path", ""))
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                if int(declared) > limit:
                    await self._too_large(send, limit)
                    return
            except ValueError:
                await self._too_large(send, limit)
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await self._too_large(send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if _json_content(scope) and has_non_finite(b"".join(chunks)):
            await self._not_json_numbers(send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


NON_FINITE = "NaN, Infinity and -Infinity are not valid JSON numbers: send a finite number (or null)."
NON_FINITE_BODY = json.dumps({"detail": [{"type": "json_invalid", "loc": ["body"], "input": {},
                                          "msg": f"JSON decode error: {NON_FINITE}",
                                          "ctx": {"error": "non-finite number"}}]}, separators=(",", ":")).encode()


class _NonFinite(ValueError):
    pass


def _refuse_constant(name: str) -> object:
    raise _NonFinite(name)


def _json_content(scope: Scope) -> bool:
    """Whether FastAPI would read this request's body as JSON (a JSON content type, or none at all)."""
    content_type = dict(scope.get("headers") or []).get(b"content-type", b"").split(b";")[0].strip().lower()
    return not content_type or content_type == b"application/json" or content_type.endswith(b"+json")


def has_non_finite(body: bytes | str) -> bool:
    """Whether ``body`` is JSON that only Python's lenient parser reads: with ``NaN`` or ``(-)Infinity``."""
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else body
    if b"NaN" not in raw and b"Infinity" not in raw:
        return False
    try:
        json.loads(body, parse_constant=_refuse_constant)
    except _NonFinite:
        return True
    except (ValueError, RecursionError):  # not JSON at all: the app says so itself
        return False
    return False


def json_depth(value: object, limit: int) -> int:
    """How deeply ``value`` nests objects and arrays (a scalar: 0, ``{}``: 1), counted no further than
    ``limit + 1``; level by level, so a deep value cannot exhaust the stack."""
    depth, level = 0, [value]
    while level and depth <= limit:
        containers = [v for v in level if isinstance(v, (dict, list))]
        if not containers:
            break
        depth += 1
        level = [child for c in containers for child in (c.values() if isinstance(c, dict) else c)]
    return depth


def frame_problem(text: str, max_depth: int) -> str | None:
    """Why a websocket frame is refused before it is read (``NaN``, nested deeper than ``max_depth``), or None."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except _NonFinite:
        return f"That message could not be read: {NON_FINITE}"
    except (ValueError, RecursionError):
        return None  # not JSON: reading it says so
    if json_depth(value, max_depth) > max_depth:
        return f"That message is nested too deeply (at most {max_depth} levels of objects and arrays)."
    return None


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL or origin, lower case; empty when it has none."""
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def origin_allowed(connection: HTTPConnection, allowed: Iterable[str], public_url: str = "") -> bool:
    """Whether the page that opens this websocket may: no ``Origin`` (not a browser), this very host,
    the public URL's origin, or one of ``allowed`` (``*``: any)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    wanted = {origin_of(a) if a.strip() != "*" else "*" for a in allowed if a.strip()}
    if "*" in wanted:
        return True
    if public_url and origin_of(public_url):
        wanted.add(origin_of(public_url))
    if origin_of(origin) in wanted:
        return True
    host = connection.headers.get("host", "").lower()
    return bool(host) and urlsplit(origin.strip()).netloc.lower() == host


class BadFrame(ValueError):
    """A websocket frame the chat cannot take (binary, not UTF-8, too large); the socket stays open."""


async def receive_frame(websocket: WebSocket, max_bytes: int) -> str:
    """The next text frame (raises :class:`BadFrame` for one to refuse, ``WebSocketDisconnect`` at the end)."""
    message = await websocket.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000), message.get("reason"))
    text = message.get("text")
    if text is None:
        data = message.get("bytes") or b""
        if len(data) > max_bytes:
            raise BadFrame(f"That message is too long (at most {max_bytes} bytes).")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadFrame("That message could not be read.") from exc
    if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
        raise BadFrame(f"That message is too long (at most {max_bytes} bytes).")
    return text


def install(app: FastAPI, settings: Settings) -> None:
    """The gateway's hardening: body limits, security headers, and the chat limiter on ``app.state``."""
    from bot.conversation.rate_limits import ChatLimiter, RedisBuckets

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes, limits={"/api/": settings.max_chat_body_bytes})
    app.add_exception_handler(RequestValidationError, validation_error)  # type: ignore[arg-type]
    app.add_middleware(SecurityHeaders)
    # with REDIS_URL every gateway replica draws from the same buckets
    store = RedisBuckets(settings.redis_url) if settings.redis_url else None
    app.state.chat_limiter = ChatLimiter.from_settings(settings, store)
    if settings.trusted_proxy_list:
        # the client address and scheme from X-Forwarded-For / -Proto, but only when the TCP peer is one of
        # the shop's proxies; uvicorn's own handling (which trusts 127.0.0.1 by default) is switched off
        # by --no-proxy-headers in every command that starts the gateway
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: a lone surrogate in echoed input cannot break it."""

    def render(self, content: object) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422 (same shape), safe for any input it echoes (lone surrogates, control characters); an
    input that cannot be echoed (too deep, a non-finite number) is left out rather than becoming a 500."""
    errors = exc.errors()
    try:
        return AsciiJSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
    except (ValueError, RecursionError):
        plain = [{k: v for k, v in error.items() if k not in ("input", "ctx")} for error in errors]
        return AsciiJSONResponse({"detail": jsonable_encoder(plain)}, status_code=422)


def allowed_origins(settings: Settings) -> list[str]:
    """Origins of the pages that may open the shopper websocket besides the gateway's own and SHOP_PUBLIC_URL's.
    Unset: any page in development, so the demo's one script tag works anywhere (production refuses to start
    without the list, bot.production). The shopper socket carries no ambient credentials: it reads no cookie,
    a signed-in shopper's identity comes only from the token the page hands the widget."""
    listed = [o.strip() for o in settings.allowed_origins.split(",") if o.strip()]
    if not listed and settings.env != "production":
        return ["*"]
    return listed


def rate_limited(limited: Limited) -> HTTPException:
    """429 for the chat API, with ``Retry-After``."""
    return HTTPException(429, {"error": "rate_limited", "scope": limited.scope, "retry_after": limited.retry_after,
                               "message": limited.text}, headers={"Retry-After": str(limited.retry_after)})


def rate_limited_frame(limited: Limited) -> dict[str, object]:
    """The websocket's answer to a message over the limit (the socket stays open)."""
    return {"type": "error", "error": "rate_limited", "scope": limited.scope, "retry_after": limited.retry_after,
            "text": limited.text}
