"""Who the shopper is: HMAC-signed tokens (JWT, HS256) that the shop's page hands the widget.

The shop signs ``{"sub": "<customer id>", "iat", "exp", "iss"}`` with a secret it shares with the
gateway (``SHOP_JWT_SECRET``); the gateway verifies it and is then the only source of identity for
the assistant. A token that is expired, tampered with, from another issuer or without the claims
is refused with :class:`InvalidToken` and a short reason.
"""

from __future__ import annotations

import logging
import time

import jwt

from bot.config import DEV_JWT_SECRET, Settings, get_settings

log = logging.getLogger("bot.shop.identity")

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ("sub", "exp", "iat", "iss")
LEEWAY_S = 10  # clock skew between the shop's server and the gateway
MIN_SECRET_BYTES = 32  # HS256 wants a key at least as long as its hash
_warned: set[str] = set()


class InvalidToken(ValueError):
    """A token that does not prove who the shopper is; ``reason`` says why, in a word or two."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"invalid token: {reason}")
        self.reason = reason


def issue_token(customer_id: int, ttl_s: int, secret: str, issuer: str | None = None,
                now: float | None = None) -> str:
    """A token for ``customer_id`` that expires after ``ttl_s`` seconds."""
    if customer_id <= 0:
        raise ValueError("customer_id must be a positive integer")
    if ttl_s <= 0:
        raise ValueError("ttl_s must be positive")
    issued = int(time.time() if now is None else now)
    claims = {"sub": str(customer_id), "iat": issued, "exp": issued + ttl_s,
              "iss": issuer or get_settings().jwt_issuer}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(token: str, secret: str, issuer: str | None = None) -> int:
    """The customer id a valid token names; :class:`InvalidToken` otherwise."""
    if not isinstance(token, str) or not token.strip() or len(token) > 4096:
        raise InvalidToken("malformed")
    try:
        claims = jwt.decode(token.strip(), secret, algorithms=[ALGORITHM], issuer=issuer or get_settings().jwt_issuer,
                            leeway=LEEWAY_S, options={"require": list(REQUIRED_CLAIMS)})
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("expired") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken("missing claims") from exc
    except jwt.InvalidSignatureError as exc:
        raise InvalidToken("bad signature") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("wrong issuer") from exc
    except jwt.ImmatureSignatureError as exc:
        raise InvalidToken("not yet valid") from exc
    except jwt.InvalidAlgorithmError as exc:  # e.g. "alg": "none" or RS256
        raise InvalidToken("bad signature") from exc
    except jwt.InvalidTokenError as exc:  # undecodable, bad JSON, wrong claim types
        raise InvalidToken("malformed") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub.isdigit() or int(sub) <= 0:
        raise InvalidToken("malformed")
    return int(sub)


def jwt_secret(settings: Settings | None = None) -> str:
    """The signing secret; the built-in development secret works but is logged as unsafe."""
    settings = settings or get_settings()
    if settings.jwt_secret in _warned:
        return settings.jwt_secret
    _warned.add(settings.jwt_secret)
    if settings.jwt_secret == DEV_JWT_SECRET:
        log.warning("SHOP_JWT_SECRET is not set: using the development secret. Anyone who reads the source "
                    "can sign in as any customer; set a random secret of 32+ bytes in production.")
    elif len(settings.jwt_secret.encode()) < MIN_SECRET_BYTES:
        log.warning("SHOP_JWT_SECRET is shorter than %d bytes; use a longer random secret.", MIN_SECRET_BYTES)
    return settings.jwt_secret
