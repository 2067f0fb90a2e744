"""Customers' personal data: redaction (logs, exports, helpdesks), export, erasure and retention."""
