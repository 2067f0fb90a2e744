"""Runs the three processes (Rasa, action server, gateway) as one stack.

Output is prefixed per process; start-up waits until each answers its health check;
Ctrl-C, or any process exiting, stops them all. Tests use the same class.

Only the gateway listens where ``BIND_HOST`` says; Rasa and the action server always listen on 127.0.0.1.
Rasa's HTTP API and REST webhook want ``SHOP_RASA_TOKEN`` and the action server ``SHOP_ACTIONS_TOKEN``;
where the environment sets neither, the stack generates them once and keeps them beside the tracker store
(``var/rasa-api.token``, ``var/actions.token``, readable by their owner only), where the command line's
``model activate`` finds Rasa's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx

from bot import PROJECT_ROOT, rasa_endpoints
from bot.config import ACTIONS_TOKEN_FILE, RASA_TOKEN_FILE, get_settings, local_token

COLORS = {"rasa": "\033[35m", "actions": "\033[36m", "gateway": "\033[32m"}
RESET = "\033[0m"
LOOPBACK = "127.0.0.1"  # where Rasa and the action server listen, whatever BIND_HOST says
# Serving threads per process, unless the environment says otherwise. On a small machine Rasa's TensorFlow,
# the action server's torch and the gateway share the cores: one thread each for one message at a time
# cut p95 at 50 shoppers from 250 ms to 150 ms (docs/benchmarks.md, "Load"). Training jobs (started by the gateway)
# keep their defaults, since they get neither.
SERVING_THREADS = {
    # OpenBLAS too: the intent classifier's NumPy products are small, and OpenBLAS's idle threads spin (with two
    # threads Rasa burned 1.7 cores at 21 turns/s)
    "rasa": {"TF_INTRA_OP_PARALLELISM_THREADS": "1", "TF_INTER_OP_PARALLELISM_THREADS": "1",
             "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
    "actions": {"SHOP_TORCH_THREADS": "1"},
}


@dataclass
class StackConfig:
    """What the stack runs and where; the defaults come from the settings (RASA_PORT, ACTIONS_PORT, GATEWAY_PORT,
    BIND_HOST, RASA_MODEL, TRACKER_DB, APP_PYTHON, RASA_BIN)."""

    rasa_port: int = field(default_factory=lambda: get_settings().stack_rasa_port)
    actions_port: int = field(default_factory=lambda: get_settings().stack_actions_port)
    gateway_port: int = field(default_factory=lambda: get_settings().stack_gateway_port)
    host: str = field(default_factory=lambda: get_settings().bind_host)  # the gateway's interface only
    model: Path = field(default_factory=lambda: get_settings().rasa_model or Path("models/rasa/shop.tar.gz"))
    tracker_db: Path = field(default_factory=lambda: Path(get_settings().tracker_db))
    python: Path = field(default_factory=lambda: get_settings().app_python or Path(sys.executable))
    rasa_bin: Path = field(default_factory=lambda: get_settings().rasa_bin)
    extra_env: dict[str, str] = field(default_factory=dict)
    color: bool = field(default_factory=lambda: sys.stdout.isatty())


class Stack:
    def __init__(self, config: StackConfig, output=None) -> None:  # type: ignore[no-untyped-def]
        self.config = config
        self.output = output or sys.stdout
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._tokens: dict[str, str] | None = None

    @property
    def rasa_url(self) -> str:
        return f"http://{LOOPBACK}:{self.config.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{LOOPBACK}:{self.config.actions_port}"

    @property
    def tokens_dir(self) -> Path:
        path = Path(self.config.tracker_db).parent
        return path if path.is_absolute() else PROJECT_ROOT / path

    def tokens(self) -> dict[str, str]:
        """``SHOP_RASA_TOKEN`` and ``SHOP_ACTIONS_TOKEN``: ``extra_env``'s, else the settings', else generated
        (and kept)."""
        if self._tokens is None:
            settings = get_settings()
            given = {"SHOP_RASA_TOKEN": settings.rasa_token, "SHOP_ACTIONS_TOKEN": settings.actions_token,
                     **self.config.extra_env}
            self._tokens = {name: given.get(name, "").strip() or local_token(self.tokens_dir / file)
                            for name, file in (("SHOP_RASA_TOKEN", RASA_TOKEN_FILE),
                                               ("SHOP_ACTIONS_TOKEN", ACTIONS_TOKEN_FILE))}
        return self._tokens

    @property
    def rasa_token(self) -> str:
        """For Rasa's HTTP API (``?token=``) and its REST webhook (``Authorization: Bearer``)."""
        return self.tokens()["SHOP_RASA_TOKEN"]

    @property
    def actions_token(self) -> str:
        return self.tokens()["SHOP_ACTIONS_TOKEN"]

    @property
    def gateway_url(self) -> str:
        return f"http://{self.config.host}:{self.config.gateway_port}"

    def _env(self) -> dict[str, str]:
        c = self.config
        env = dict(os.environ)
        env.update({
            "ACTION_ENDPOINT_URL": f"{self.actions_url}/webhook",
            "TRACKER_DIALECT": env.get("TRACKER_DIALECT", "sqlite"),
            "TRACKER_DB": str(c.tracker_db),
            "SANIC_HOST": LOOPBACK,
            "SHOP_RASA_URL": self.rasa_url,
            "SHOP_ACTIONS_URL": self.actions_url,
            "PYTHONUNBUFFERED": "1",
            "RASA_TELEMETRY_ENABLED": "false",  # no phoning home (and no network here anyway)
        })
        env.update(c.extra_env)
        env.update(self.tokens())
        return env

    @property
    def endpoints_file(self) -> Path:
        return Path(self.config.tracker_db).parent / f"endpoints-{self.config.rasa_port}.yml"

    def write_endpoints(self) -> Path:
        """Rasa's endpoints for the engines in Rasa's ``DATABASE_URL`` / ``REDIS_URL`` (bot.rasa_endpoints):
        ``extra_env``'s, else the settings'."""
        env = self._env()
        settings = get_settings()
        database_url = env.get("DATABASE_URL", settings.database_url)
        rasa_endpoints.ensure_event_database(database_url)
        return rasa_endpoints.write(self.endpoints_file, action_url=env["ACTION_ENDPOINT_URL"],
                                    action_token=env["SHOP_ACTIONS_TOKEN"], database_url=database_url,
                                    sqlite_file=str(self.config.tracker_db),
                                    redis_url=env.get("REDIS_URL", settings.redis_url))

    def env_for(self, name: str) -> dict[str, str]:
        """The environment of one process: the stack's, plus its serving threads where not set already."""
        env = self._env()
        return {**SERVING_THREADS.get(name, {}), **env}

    def commands(self) -> dict[str, list[str]]:
        c = self.config
        rasa_args = ["run", "--model", str(c.model), "--endpoints", str(self.endpoints_file),
                     "--credentials", "credentials.yml", "--enable-api", "-i", LOOPBACK, "-p", str(c.rasa_port)]
        rasa_python = Path(c.rasa_bin).with_name("python")
        if rasa_python.exists():  # --auth-token from the environment, not on a command line that `ps` shows
            rasa = [str(rasa_python), "-m", "rasa_addons.serve", *rasa_args]
        else:
            rasa = [str(c.rasa_bin), *rasa_args, f"--auth-token={self.rasa_token}"]  # "=": a token may start with "-"
        return {
            "rasa": rasa,
            "actions": [str(c.python), "-m", "actions.server", "--actions", "actions", "-p", str(c.actions_port)],
            "gateway": [str(c.python), "-m", "uvicorn", "--factory", "bot.web.app:create_app", "--host", c.host,
                        "--port", str(c.gateway_port), "--no-access-log", "--no-proxy-headers"],
        }

    def health_urls(self) -> dict[str, str]:
        return {"actions": f"{self.actions_url}/health",
                "rasa": f"{self.rasa_url}/status?token={quote(self.rasa_token, safe='')}",
                "gateway": f"{self.gateway_url}/healthz"}

    def start(self, names: tuple[str, ...] = ("actions", "rasa", "gateway")) -> None:
        Path(self.config.tracker_db).parent.mkdir(parents=True, exist_ok=True)
        if "rasa" in names:
            self.write_endpoints()
        for name in names:
            proc = subprocess.Popen(self.commands()[name], cwd=PROJECT_ROOT, env=self.env_for(name),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
            self.processes[name] = proc
            threading.Thread(target=self._pump, args=(name, proc), daemon=True).start()

    def _pump(self, name: str, proc: subprocess.Popen[bytes]) -> None:
        prefix = f"{COLORS[name]}{name:>7} |{RESET} " if self.config.color else f"{name:>7} | "
        assert proc.stdout is not None
        for raw in proc.stdout:
            with self._lock:
                self.output.write(prefix + raw.decode(errors="replace"))
                self.output.flush()

    def wait_healthy(self, timeout: float = 300.0, names: tuple[str, ...] | None = None) -> None:
        pending = {n: u for n, u in self.health_urls().items() if n in (names or tuple(self.processes))}
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=3.0) as client:
            while pending:
                for name, url in list(pending.items()):
                    proc = self.processes.get(name)
                    if proc is not None and proc.poll() is not None:
                        raise RuntimeError(f"{name} exited with code {proc.returncode} during start-up")
                    try:
                        if client.get(url).status_code < 500:
                            pending.pop(name)
                    except httpx.HTTPError:
                        pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not healthy after {timeout:.0f}s: {', '.join(pending)}")
                time.sleep(0.5)

    def stop(self, timeout: float = 15.0) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in self.processes.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def wait_any_exit(self) -> tuple[str, int]:
        while True:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    return name, proc.returncode
            time.sleep(0.5)


def serve(config: StackConfig | None = None) -> int:
    stack = Stack(config or StackConfig())
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start()
        print("waiting for rasa, actions and gateway to become healthy ...", flush=True)
        stack.wait_healthy()
        print(f"\n  shop-assistant is ready: {stack.gateway_url}  (Ctrl-C stops everything)\n", flush=True)
        name, code = stack.wait_any_exit()
        print(f"{name} exited with code {code}; stopping the others", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except (RuntimeError, TimeoutError) as exc:
        print(f"start-up failed: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C or SIGTERM must not interrupt the shutdown and orphan a process.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
