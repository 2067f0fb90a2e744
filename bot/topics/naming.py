"""Readable topic names from their distinctive words: class-based TF-IDF (c-TF-IDF, as in BERTopic).

All messages of a topic form one document; a term's weight in topic c is
``tf(t, c) * log(1 + A / f(t))`` with ``tf`` the term's frequency in the topic (normalised by the topic's
word count), ``A`` the average number of words per topic and ``f(t)`` the term's frequency over all topics.
English stop words are dropped; unigrams and bigrams are scored, and the name is the best bigram when it
outranks the second-best word, else the top three words.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOP_WORDS = 3
UNNAMED = "(unnamed)"


def distinctive_words(texts: Sequence[str], labels: Sequence[int] | np.ndarray, top: int = 10) -> dict[int, list[str]]:
    """Per topic label (noise, < 0, left out) its ``top`` terms by c-TF-IDF, best first."""
    from sklearn.feature_extraction.text import CountVectorizer

    topics = sorted({int(label) for label in labels if int(label) >= 0})
    if not topics:
        return {}
    kept = [(t, int(label)) for t, label in zip(texts, labels, strict=True) if int(label) >= 0]
    row_of = {topic: row for row, topic in enumerate(topics)}
    try:  # one document per message (no bigram across two messages), summed per topic
        vectorizer = CountVectorizer(stop_words="english", ngram_range=(1, 2), token_pattern=r"(?u)\b[a-zA-Z]{2,}\b")
        per_message = vectorizer.fit_transform([t for t, _ in kept])
    except ValueError:  # only stop words
        return {topic: [] for topic in topics}
    from scipy.sparse import csr_matrix

    membership = csr_matrix((np.ones(len(kept)), ([row_of[label] for _, label in kept], np.arange(len(kept)))),
                            shape=(len(topics), len(kept)))
    counts = np.asarray((membership @ per_message).todense(), dtype=np.float64)
    terms = vectorizer.get_feature_names_out()
    unigram = np.array([" " not in t for t in terms])
    words_per_topic = counts[:, unigram].sum(1, keepdims=True)
    tf = counts / np.maximum(words_per_topic, 1.0)
    average = float(words_per_topic.mean())
    overall = counts.sum(0)
    weights = tf * np.log(1.0 + average / np.maximum(overall, 1.0))
    out: dict[int, list[str]] = {}
    for row, topic in enumerate(topics):
        order = np.argsort(-weights[row], kind="stable")
        out[topic] = [str(terms[i]) for i in order[:top] if weights[row, i] > 0]
    return out


def name_from(words: Sequence[str]) -> str:
    """A bigram when it comes before the second single word, else the top three single words."""
    singles = [w for w in words if " " not in w]
    for position, word in enumerate(words):
        if " " in word:
            second = words.index(singles[1]) if len(singles) > 1 else len(words)
            if position < second:
                return word
            break
    return " ".join(singles[:TOP_WORDS]) or UNNAMED


def topic_names(texts: Sequence[str], labels: Sequence[int] | np.ndarray) -> dict[int, str]:
    return {topic: name_from(words) for topic, words in distinctive_words(texts, labels).items()}
