"""``python -m tradewind.cli``: the `tradewind` command."""

from tradewind.cli import main

if __name__ == "__main__":
    main()
