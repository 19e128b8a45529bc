"""``python -m sync.cli``: the ``closedloop`` command without its console script."""

from sync.cli import main

main()
