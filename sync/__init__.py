"""Deciding what and when to sync, and remembering it: ledger, mappings, pipelines, analytics."""
