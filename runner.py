"""`python runner.py ...` is the same program as `ablate ...`."""

from ablations.cli import main

if __name__ == "__main__":
    main()
