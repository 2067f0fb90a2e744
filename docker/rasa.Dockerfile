# Rasa 3.6 with the project's own components: the sentiment NLU component and the escalation
# policy (rasa_addons/), which import bot/sentiment.py (vaderSentiment) and bot/privacy/redact.py (log redaction).
FROM rasa/rasa:3.6.21-full
USER root
RUN pip install --no-cache-dir vaderSentiment==3.3.2
WORKDIR /app
COPY rasa_addons/ /app/rasa_addons/
COPY bot/__init__.py bot/sentiment.py /app/bot/
COPY bot/privacy/__init__.py bot/privacy/redact.py /app/bot/privacy/
USER 1001
