"""``python -m sync.cli``: the ``closedloop`` command without its console script."""

from sync.cli import main

if __name__ == "__main__":  # importing the module (the image's byte-compile walk) runs nothing
    main()
