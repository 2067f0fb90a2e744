"""Semantic product search: embeddings, FAISS index, filters and query parsing."""
