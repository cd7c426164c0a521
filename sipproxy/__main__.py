"""``python -m sipproxy --config F``: see :mod:`sipproxy.app`."""

import sys

from sipproxy.app import main

sys.exit(main())
