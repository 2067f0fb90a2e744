"""The action server: ``python -m actions.server --actions actions -p 5055``.

rasa_sdk's command line and server (``python -m rasa_sdk`` takes the same options), plus two things:

- every request except ``GET /health`` must carry the shared secret ``SHOP_ACTIONS_TOKEN`` in the
  ``X-Shop-Actions-Token`` header, which Rasa sends (bot/rasa_endpoints.py, docker/endpoints.compose.yml);
  anything else gets 401. rasa-sdk 3.21 has no option for this, so :func:`create_app` installs the check on
  each Sanic app the server builds (Sanic builds one in the main process and one in its worker);
- it listens on ``SANIC_HOST``, by default 127.0.0.1 (rasa_sdk's own default is every interface).

:func:`set_up` does the process-wide set-up that used to happen when ``actions`` was imported: the
production check, the start method Sanic needs, log redaction. :func:`main` calls it first.

With ``SHOP_ACTIONS_TOKEN`` empty the check is off (with a warning); production refuses to start that way
(bot/production.py), and ``make run`` generates a token (devstack/stack.py).
"""

from __future__ import annotations

import hmac
import logging
import multiprocessing
from functools import partial
from typing import Any

from sanic import Sanic, response
from sanic.request import Request
from sanic.response import HTTPResponse

from bot import production
from bot.config import get_settings
from bot.privacy.redact import install_log_redaction
from bot.rasa_endpoints import ACTIONS_TOKEN_HEADER

log = logging.getLogger(__name__)
OPEN = {("GET", "/health")}  # the health check (the gateway's /healthz, compose) needs no secret


def set_up() -> None:
    """The action server's process-wide set-up, before it imports the actions. SHOP_ENV=production: refuses to
    start with development settings (SystemExit). Sanic serves from a spawned worker process, but an import
    before it (torch) would fix the start method first, which Sanic refuses: set spawn here and tell Sanic it is
    done. Emails, phones, cards and IBANs never reach the action server's logs."""
    try:
        production.check(process="the action server")
    except production.ProductionConfigError as exc:
        raise SystemExit(str(exc)) from None
    multiprocessing.set_start_method("spawn", force=True)
    Sanic.START_METHOD_SET = True
    install_log_redaction()


def require_token(app: Sanic, token: str) -> None:
    """Answer 401 to every request but the health check that lacks ``token`` in the header."""
    expected = token.encode()

    async def check_token(request: Request) -> HTTPResponse | None:
        if (request.method, request.path) in OPEN:
            return None
        sent = request.headers.get(ACTIONS_TOKEN_HEADER, "")
        if hmac.compare_digest(sent.encode("utf-8", "replace"), expected):
            return None
        return response.json({"error": "unauthorized",
                              "message": f"the action server answers Rasa only ({ACTIONS_TOKEN_HEADER})"}, status=401)

    app.register_middleware(check_token, "request")


def create_app(action_executor: Any, **options: Any) -> Sanic:
    """rasa_sdk's app with the token check; module level, so Sanic can hand it to its worker process."""
    from rasa_sdk.endpoint import create_app_for_serve

    install_log_redaction()  # also in Sanic's worker process, which imports this module but never runs main()
    app = create_app_for_serve(action_executor, **options)
    token = get_settings().actions_token
    if token:
        require_token(app, token)
    else:
        log.warning("SHOP_ACTIONS_TOKEN is empty: the action server answers anyone who reaches its port")
    return app


def serve(args: Any) -> None:
    """rasa_sdk's ``main_from_args`` and ``run`` (HTTP only), with :func:`create_app` as the app factory."""
    from rasa_sdk import utils
    from rasa_sdk.constants import APPLICATION_ROOT_LOGGER_NAME
    from rasa_sdk.endpoint import create_ssl_config
    from rasa_sdk.executor import ActionExecutor
    from sanic.worker.loader import AppLoader

    logging.getLogger("matplotlib").setLevel(logging.WARN)
    utils.configure_colored_logging(args.loglevel)
    utils.configure_file_logging(logging.getLogger(APPLICATION_ROOT_LOGGER_NAME), args.log_file, args.loglevel,
                                 args.logging_config_file)
    utils.update_sanic_log_level()

    executor = ActionExecutor()
    executor.register_package(args.actions_module or args.actions)
    loader = AppLoader(factory=partial(create_app, executor, cors_origins=args.cors, auto_reload=args.auto_reload,
                                       endpoints=args.endpoints))
    app = loader.load()
    ssl = create_ssl_config(args.ssl_certificate, args.ssl_keyfile, args.ssl_password)
    host = get_settings().actions_host
    log.info("Action endpoint is up and running on %s://%s:%s", "https" if ssl else "http", host, args.port)
    app.prepare(host=host, port=args.port, ssl=ssl, workers=utils.number_of_sanic_workers())
    Sanic.serve(primary=app, app_loader=loader)


def main(argv: list[str] | None = None) -> None:
    from rasa_sdk.endpoint import create_argument_parser

    set_up()
    parser = create_argument_parser()
    args = parser.parse_args(argv)
    if args.grpc:
        parser.error("--grpc is not supported here (the shared secret is checked over HTTP)")
    serve(args)


if __name__ == "__main__":
    from actions.server import main as run_server  # so the factory pickles as actions.server.create_app

    run_server()
