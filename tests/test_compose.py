"""docker-compose.yml stays valid (no Docker engine is needed to check it)."""

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


def test_compose_file_is_accepted() -> None:
    result = subprocess.run([*_compose(), "config", "-q"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_compose_describes_the_three_services() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    assert {"rasa", "actions", "gateway"} <= set(services)
    rasa_dockerfile = (ROOT / services["rasa"]["build"]["dockerfile"]).read_text()
    assert "FROM rasa/rasa:3.6.21" in rasa_dockerfile  # the official image plus our NLU component and policy
    assert "COPY rasa_addons/" in rasa_dockerfile and "bot/sentiment.py" in rasa_dockerfile
    assert (ROOT / "docker" / "app.Dockerfile").exists()
