"""People who work in the agent inbox: users with argon2 password hashes, server-side sessions, CSRF, roles.

``users`` and ``sessions`` are plain services over a SQLAlchemy ``Session``; ``web`` holds the
FastAPI glue (session cookie, ``require_role`` dependency, CSRF check).
"""
