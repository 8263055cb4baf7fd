"""`python -m stacktoken`."""

import sys

from stacktoken.shell._warm import command

sys.exit(command())
