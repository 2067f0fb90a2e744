# One image for the action server and the gateway (Python 3.11); the command picks the role.
# The `trainer` target adds Python 3.10 with Rasa for console trainings (`python -m bot model worker`).
FROM python:3.10-slim-bookworm AS python310

FROM python:3.11-slim-bookworm AS app
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORKDIR /app
# CPU build of torch first, so no dependency pulls the CUDA build. TORCH_INDEX_URL may name
# PyTorch's CPU wheel index where the default index has no CPU build.
ARG TORCH_INDEX_URL=
RUN pip install ${TORCH_INDEX_URL:+--index-url $TORCH_INDEX_URL} torch==2.13.0
COPY requirements/app.lock requirements/app.lock
RUN grep -v '^torch==' requirements/app.lock > /tmp/app.lock && pip install -r /tmp/app.lock
COPY bot bot
COPY actions actions
# the stack's process supervisor: the training gate starts a scratch Rasa and action server with it
# (bot/convtests/runner.py)
COPY devstack devstack
COPY data/shop_policy.yml data/shop_policy.yml
COPY data/search_synonyms.yml data/search_synonyms.yml
# the seed conversation tests that setup-data saves on a fresh install (bot/convtests/seed.py)
COPY data/conversation_tests data/conversation_tests
COPY tests/test_stories.yml tests/test_stories.yml
# The training inputs a lead's training reads and grows (SHOP_TRAINING_ROOT). In compose a named volume
# is mounted here, and Docker fills it from the image the first time.
COPY config.yml domain.yml training/
COPY data/nlu training/data/nlu
COPY data/stories training/data/stories
COPY data/rules training/data/rules
COPY tests/nlu_test.yml training/tests/nlu_test.yml
ENV SHOP_TRAINING_ROOT=/app/training
RUN useradd --create-home shop && mkdir -p var models && chown -R shop var models training
USER shop
EXPOSE 5055 8000
# --no-proxy-headers: X-Forwarded-* count only from SHOP_TRUSTED_PROXIES (the gateway checks the peer itself)
CMD ["python", "-m", "uvicorn", "--factory", "bot.web.app:create_app", "--host", "0.0.0.0", "--port", "8000", "--no-proxy-headers"]

# Rasa 3.6 runs on Python 3.10 only: the official slim image's interpreter, in its own prefix, with Rasa
# in a venv (requirements/rasa.lock, as `make setup` installs it). bot/ stays on 3.11.
FROM app AS trainer
USER root
COPY --from=python310 /usr/local /opt/python3.10
ENV LD_LIBRARY_PATH=/opt/python3.10/lib RASA_BIN=/opt/rasa-venv/bin/rasa RASA_TELEMETRY_ENABLED=false
COPY requirements/rasa.lock requirements/rasa.lock
RUN /opt/python3.10/bin/python3.10 -m venv /opt/rasa-venv \
    && /opt/rasa-venv/bin/pip install -r requirements/rasa.lock
COPY rasa_addons rasa_addons
RUN mkdir -p .rasa && chown shop .rasa
USER shop
CMD ["python", "-m", "bot", "model", "worker", "--alive-file", "/tmp/trainer.alive"]
