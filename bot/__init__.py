"""shop-assistant: domain services, web gateway and CLI (knows nothing of Rasa)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
