"""The stack's processes: one serving thread each unless the environment says otherwise; only the gateway
listens beyond loopback; Rasa and the action server want generated tokens."""

from __future__ import annotations

import io
import ipaddress
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from bot.config import Settings, get_settings
from devstack.stack import Stack, StackConfig
from tests.conftest import ROOT, free_port


def test_the_stack_reads_its_settings_from_the_same_variables(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    given = {"RASA_PORT": "6005", "ACTIONS_PORT": "6055", "GATEWAY_PORT": "9000", "BIND_HOST": "0.0.0.0",
             "RASA_MODEL": str(tmp_path / "m.tar.gz"), "TRACKER_DB": str(tmp_path / "t.sqlite3"),
             "APP_PYTHON": "/opt/app/bin/python", "RASA_BIN": "/opt/rasa/bin/rasa"}
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        config = StackConfig()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
    assert (config.rasa_port, config.actions_port, config.gateway_port, config.host) == (6005, 6055, 9000, "0.0.0.0")
    assert config.model == tmp_path / "m.tar.gz" and config.tracker_db == tmp_path / "t.sqlite3"
    assert config.python == Path("/opt/app/bin/python") and config.rasa_bin == Path("/opt/rasa/bin/rasa")
    default = StackConfig()  # nothing set: the ports and files `make run` always used
    assert (default.rasa_port, default.actions_port, default.gateway_port) == (5005, 5055, 8000)
    assert default.model == Path("models/rasa/shop.tar.gz") and default.python == Path(sys.executable)


def test_serving_threads_per_process_and_overridable(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    for name in ("TF_INTRA_OP_PARALLELISM_THREADS", "TF_INTER_OP_PARALLELISM_THREADS", "SHOP_TORCH_THREADS"):
        monkeypatch.delenv(name, raising=False)
    stack = Stack(StackConfig())
    rasa, actions, gateway = (stack.env_for(name) for name in ("rasa", "actions", "gateway"))
    assert rasa["TF_INTRA_OP_PARALLELISM_THREADS"] == rasa["TF_INTER_OP_PARALLELISM_THREADS"] == "1"
    assert actions["SHOP_TORCH_THREADS"] == "1" and "TF_INTRA_OP_PARALLELISM_THREADS" not in actions
    # the gateway starts training jobs: they keep TensorFlow's and torch's own defaults
    assert not {"TF_INTRA_OP_PARALLELISM_THREADS", "SHOP_TORCH_THREADS"} & set(gateway)
    monkeypatch.setenv("TF_INTRA_OP_PARALLELISM_THREADS", "2")
    assert stack.env_for("rasa")["TF_INTRA_OP_PARALLELISM_THREADS"] == "2"  # the operator's choice wins


def test_only_the_gateway_listens_beyond_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """BIND_HOST exposes the gateway; Rasa and the action server stay on 127.0.0.1 (issue 16, item 12)."""
    stack = Stack(StackConfig(host="0.0.0.0", tracker_db=tmp_path / "tracker.sqlite3"))
    commands = stack.commands()
    rasa, gateway = commands["rasa"], commands["gateway"]
    assert rasa[rasa.index("-i") + 1] == "127.0.0.1"
    assert gateway[gateway.index("--host") + 1] == "0.0.0.0"
    assert stack.env_for("actions")["SANIC_HOST"] == "127.0.0.1"
    assert commands["actions"][1:3] == ["-m", "actions.server"]  # the entry point that checks the secret
    for name in ("rasa", "actions", "gateway"):
        env = stack.env_for(name)
        assert env["SHOP_RASA_URL"].startswith("http://127.0.0.1:")
        assert env["ACTION_ENDPOINT_URL"].startswith("http://127.0.0.1:")


def test_the_stack_generates_and_keeps_the_internal_tokens(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("SHOP_RASA_TOKEN", raising=False)
    monkeypatch.delenv("SHOP_ACTIONS_TOKEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'shop.sqlite3'}")
    config = StackConfig(tracker_db=tmp_path / "tracker.sqlite3")
    stack = Stack(config)
    rasa_token, actions_token = stack.rasa_token, stack.actions_token
    assert len(rasa_token) >= 40 and len(actions_token) >= 40 and rasa_token != actions_token
    for file, token in (("rasa-api.token", rasa_token), ("actions.token", actions_token)):
        path = tmp_path / file
        assert path.read_text().strip() == token and stat.S_IMODE(path.stat().st_mode) == 0o600
    for name in ("rasa", "actions", "gateway"):  # every process gets both
        env = stack.env_for(name)
        assert env["SHOP_RASA_TOKEN"] == rasa_token and env["SHOP_ACTIONS_TOKEN"] == actions_token
    # Rasa gets its token from the environment (rasa_addons/serve.py), not on a command line `ps` shows
    assert config.rasa_bin.with_name("python").exists()
    assert rasa_token not in " ".join(stack.commands()["rasa"])
    assert stack.commands()["rasa"][1:3] == ["-m", "rasa_addons.serve"]
    # Rasa's endpoints send the action server's secret; the file is its owner's only
    endpoints = stack.write_endpoints()
    action_endpoint = yaml.safe_load(endpoints.read_text())["action_endpoint"]
    assert action_endpoint["headers"] == {"X-Shop-Actions-Token": actions_token}
    assert stat.S_IMODE(endpoints.stat().st_mode) == 0o600
    # the next start keeps them (the command line's `model activate` reads Rasa's), and the settings find it
    assert Stack(StackConfig(tracker_db=tmp_path / "tracker.sqlite3")).tokens() == stack.tokens()
    assert Settings(tracker_db=str(tmp_path / "tracker.sqlite3")).rasa_api_token == rasa_token
    # tokens from the environment win
    given = Stack(StackConfig(tracker_db=tmp_path / "tracker.sqlite3",
                              extra_env={"SHOP_RASA_TOKEN": "given-rasa", "SHOP_ACTIONS_TOKEN": "given-actions"}))
    assert given.env_for("rasa")["SHOP_RASA_TOKEN"] == "given-rasa"
    assert given.env_for("actions")["SHOP_ACTIONS_TOKEN"] == "given-actions"


def _listening(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                raw = bytes.fromhex(address)
                # the kernel writes each 32-bit word in host (little-endian) order
                words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.add(str(ipaddress.ip_address(words)))
    return found


def test_a_real_action_server_wants_the_secret_and_listens_on_loopback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    log = io.StringIO()
    config = StackConfig(host="0.0.0.0", actions_port=free_port(), tracker_db=tmp_path / "tracker.sqlite3",
                         python=ROOT / ".venv" / "bin" / "python", color=False)
    stack = Stack(config, output=log)
    stack.start(names=("actions",))
    try:
        stack.wait_healthy(timeout=120, names=("actions",))
        assert _listening(config.actions_port) == {"127.0.0.1"}
        url = stack.actions_url
        call = {"next_action": "no_such_action", "tracker": {"sender_id": "x"}, "domain": {}}
        assert httpx.get(f"{url}/health").status_code == 200  # the health check needs nothing
        assert httpx.post(f"{url}/webhook", json=call).status_code == 401
        wrong = httpx.post(f"{url}/webhook", json=call, headers={"X-Shop-Actions-Token": "guess"})
        assert wrong.status_code == 401 and "no_such_action" not in wrong.text
        assert httpx.get(f"{url}/actions").status_code == 401
        right = httpx.post(f"{url}/webhook", json=call, headers={"X-Shop-Actions-Token": stack.actions_token})
        assert right.status_code == 404 and "no_such_action" in right.text  # through to the executor
    finally:
        stack.stop()


@pytest.mark.parametrize("token", ["-starts-with-a-dash", "--even-two", "plain_token"])
def test_rasa_reads_a_token_that_starts_with_a_dash(token: str) -> None:
    """A generated token (urlsafe base64) may start with "-": passed as one ``--auth-token=...`` argument,
    Rasa's own argument parser (in its venv) reads it as the token instead of refusing to start."""
    rasa_python = ROOT / ".venv-rasa" / "bin" / "python"
    script = ("import sys; from rasa.__main__ import create_argument_parser; "
              "from rasa_addons.serve import argv_with_token; "
              "args = create_argument_parser().parse_args(argv_with_token(['run', '--enable-api'], sys.argv[1])); "
              "print(args.auth_token)")
    done = subprocess.run([str(rasa_python), "-c", script, token], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == token
