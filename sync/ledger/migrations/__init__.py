"""Alembic scripts of the ledger (run through ``sync.ledger.migrate``, never imported directly)."""
