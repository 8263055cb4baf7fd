"""Hypothesis settings profiles, chosen with HYPOTHESIS_PROFILE (default: ci).

- ci: enough examples to find real bugs, no flaky per-example deadline, and a
  bounded run time on a 2-core machine.
- heavy: ten times the examples, for a soak before a release:
  `HYPOTHESIS_PROFILE=heavy python -m pytest property_tests`.
"""

import os

from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None, print_blob=True)
settings.register_profile("heavy", max_examples=2000, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
