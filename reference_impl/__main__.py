"""``python3 -m reference_impl <role>``: the same entry as ``main.py``."""

import sys

from reference_impl.main import main

sys.exit(main())
