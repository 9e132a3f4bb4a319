"""``python -m gpt``: see :mod:`gpt.cli`."""
import sys

from gpt.cli import main

sys.exit(main())
