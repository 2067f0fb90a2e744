"""docker-compose.yml stays valid (no Docker engine is needed to check it)."""

import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT


def _compose() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor the docker compose plugin is installed (apt-get install docker-compose)")


SECRETS = {"POSTGRES_PASSWORD": "pw-for-the-check", "SHOP_RASA_TOKEN": "token-for-the-check",
           "SHOP_ACTIONS_TOKEN": "actions-token-for-the-check", "SHOP_JWT_SECRET": "secret-for-the-check",
           "SHOP_ALLOWED_ORIGINS": "https://shop.example"}


def _config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run([*_compose(), "config"], cwd=ROOT, capture_output=True, text=True, env={**clean, **env})


def test_compose_file_is_accepted() -> None:
    result = _config(SECRETS)
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_its_secrets() -> None:
    for missing in SECRETS:
        result = _config({k: v for k, v in SECRETS.items() if k != missing})
        assert result.returncode != 0 and missing in result.stderr, (missing, result.stderr)


def test_production_services_engines_and_health_checks() -> None:
    config = yaml.safe_load(_config(SECRETS).stdout)
    services = config["services"]
    assert {"rasa", "actions", "gateway", "postgres", "redis"} <= set(services)
    for name in ("rasa", "actions", "gateway", "postgres", "redis"):
        assert "healthcheck" in services[name], name
    assert {"pg-data", "redis-data", "models"} <= set(config["volumes"])
    assert "ports" not in services["rasa"] and "ports" not in services["actions"]  # only the gateway is public
    # one argument ("--auth-token=..."): a token that starts with "-" is not taken for an option
    assert f"--auth-token={SECRETS['SHOP_RASA_TOKEN']}" in services["rasa"]["command"]
    # Rasa sends the action server's secret, which refuses calls without it; the REST webhook wants Rasa's token
    assert services["actions"]["command"][:3] == ["python", "-m", "actions.server"]
    assert services["rasa"]["environment"]["SHOP_ACTIONS_TOKEN"] == SECRETS["SHOP_ACTIONS_TOKEN"]
    assert services["rasa"]["environment"]["SHOP_RASA_TOKEN"] == SECRETS["SHOP_RASA_TOKEN"]
    assert services["gateway"]["environment"]["SHOP_ALLOWED_ORIGINS"] == SECRETS["SHOP_ALLOWED_ORIGINS"]
    for name in ("gateway", "actions"):
        env = services[name]["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://") and env["REDIS_URL"].startswith("redis://")
        assert env["SHOP_ENV"] == "production" and env["SHOP_DEMO_MODE"] == "false"
    endpoints = yaml.safe_load((ROOT / "docker" / "endpoints.compose.yml").read_text())
    assert endpoints["action_endpoint"]["headers"] == {"X-Shop-Actions-Token": "${SHOP_ACTIONS_TOKEN}"}
    assert endpoints["tracker_store"]["dialect"] == "postgresql" and endpoints["lock_store"]["type"] == "redis"
    assert endpoints["tracker_store"]["type"] == "rasa_addons.sql_stores.ShopSQLTrackerStore"
    assert endpoints["event_broker"]["type"] == "rasa_addons.sql_stores.PingingSQLEventBroker"
    assert endpoints["event_broker"]["db"].endswith("_events")
    assert "CREATE DATABASE shop_events" in (ROOT / "docker" / "postgres-init" / "10-event-broker.sql").read_text()


def test_compose_describes_the_three_services() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"rasa", "actions", "gateway"} <= set(services)
    rasa_dockerfile = (ROOT / services["rasa"]["build"]["dockerfile"]).read_text()
    assert "FROM rasa/rasa:3.6.21" in rasa_dockerfile  # the official image plus our NLU component and policy
    assert "COPY rasa_addons/" in rasa_dockerfile and "bot/sentiment.py" in rasa_dockerfile
    assert (ROOT / "docker" / "app.Dockerfile").exists()


def test_the_rasa_image_has_every_project_module_rasa_imports() -> None:
    """rasa_addons imports parts of bot/ (sentiment, the encoder, the escalation model): the Rasa image must copy
    each of them, or the container fails at its first message."""
    import ast
    from pathlib import Path

    copied = [line.split()[1:-1] for line in (ROOT / "docker" / "rasa.Dockerfile").read_text().splitlines()
              if line.startswith("COPY ")]
    sources = [source.rstrip("/") for group in copied for source in group]
    todo = sorted((ROOT / "rasa_addons").glob("*.py"))
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.split(".")[0] not in ("bot", "rasa_addons"):
                    continue
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # the module and its packages' __init__ files
                    module = ROOT.joinpath(*parts[:i])
                    for candidate in (module.with_suffix(".py"), module / "__init__.py"):
                        if candidate.exists():
                            todo.append(candidate)
    needed = sorted(str(p.relative_to(ROOT)) for p in seen)
    missing = [n for n in needed if not any(n == s or n.startswith(s + "/") for s in sources)]
    assert not missing, f"docker/rasa.Dockerfile does not copy {missing}"
    assert "bot/escalation/escalation_model.json" in {str(p.relative_to(ROOT)) for p in
                                                      (ROOT / "bot" / "escalation").glob("*.json")}


def test_console_trainings_run_in_the_trainer_service() -> None:
    services = yaml.safe_load(_config(SECRETS).stdout)["services"]
    trainer = services["trainer"]
    assert trainer["build"]["target"] == "trainer" and "healthcheck" in trainer
    assert trainer["command"][:5] == ["python", "-m", "bot", "model", "worker"]
    assert services["gateway"]["environment"]["SHOP_TRAINING_RUNNER"] == "worker"
    for name in ("gateway", "trainer"):  # the leads' labels and the test set live in one volume both see
        mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]]  # compose v1 or v2
                  for v in services[name]["volumes"]]
        targets = {target: source for source, target in mounts}
        assert targets["/app/training"] == "training" and targets["/app/models"] == "models", name
    dockerfile = (ROOT / "docker" / "app.Dockerfile").read_text()
    assert "FROM app AS trainer" in dockerfile and "RASA_BIN=/opt/rasa-venv/bin/rasa" in dockerfile
    for needed in ("config.yml", "domain.yml", "data/nlu", "tests/nlu_test.yml", "requirements/rasa.lock"):
        assert needed in dockerfile and (ROOT / needed).exists(), needed


def test_the_app_image_holds_the_seed_conversation_tests() -> None:
    """setup-data seeds the conversation tests from these files on a fresh install, in the image too."""
    from bot.convtests.seed import SEED_FILES

    copied = {line.split()[1] for line in (ROOT / "docker" / "app.Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") and not line.startswith("COPY --")}
    for path in SEED_FILES:
        relative = path.relative_to(ROOT)
        assert str(relative) in copied or str(relative.parent) in copied, relative
