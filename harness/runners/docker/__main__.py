"""`python -m harness.runners.docker selftest`: see `harness.runners.docker.selftest`."""

import sys

from harness.runners.docker.selftest import main

sys.exit(main())
