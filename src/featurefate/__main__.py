"""``python -m featurefate``: the same as the ``featurefate`` command."""

from featurefate.cli import main

if __name__ == "__main__":
    main()
