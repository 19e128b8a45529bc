"""Everything that talks to a vendor API: sources, CRM sinks, the sandbox.

Connectors own no state and never touch the ledger; they receive cursors and yield records.
"""
