# One image for the action server and the gateway (Python 3.11); the command picks the role.
FROM python:3.11-slim
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
COPY data/shop_policy.yml data/shop_policy.yml
RUN useradd --create-home shop && mkdir -p var models && chown -R shop var models
USER shop
EXPOSE 5055 8000
CMD ["python", "-m", "uvicorn", "bot.web.app:app", "--host", "0.0.0.0", "--port", "8000"]
