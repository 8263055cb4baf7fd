"""`python -m stacktoken`."""

import sys

from stacktoken.shell._cli import main

sys.exit(main())
