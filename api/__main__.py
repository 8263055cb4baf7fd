"""`python -m stacktoken`."""

import sys

from stacktoken.shell._warm import main

sys.exit(main())
