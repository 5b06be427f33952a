"""``python -m hf_transfer`` is the ``hf-transfer`` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
