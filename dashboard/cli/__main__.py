"""``python -m dashboard.cli …``: the demo spawns its worker and simulator this way."""

from dashboard.cli import main

if __name__ == "__main__":
    main()
