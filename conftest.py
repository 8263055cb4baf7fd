"""Hypothesis settings profiles, chosen with HYPOTHESIS_PROFILE (default: ci).

- ci: enough examples to find real bugs, no flaky per-example deadline, a
  bounded run time on a 2-core machine, and reproducible (issue 8):
  `derandomize=True`, so each test's examples come from a seed derived from
  the test itself, the same on every run and machine (for the same Hypothesis,
  Python and test source). A failure in CI is the same failure on a laptop
  with `python -m pytest property_tests` (ci is the default profile), and it
  prints its `@reproduce_failure` blob (`print_blob=True`). Derandomizing
  implies no example database: CI runs start clean, and a local `.hypothesis`
  directory cannot make a local ci run differ from CI's. We chose this over a
  fixed `--hypothesis-seed` because it needs no flag and keeps each test's
  examples independent of which other tests run. Exploring new examples is
  the job of `dev` and `heavy`, which stay random.
- heavy: ten times the examples, random, for a soak before a release:
  `HYPOTHESIS_PROFILE=heavy python -m pytest property_tests`.
- dev: fewer examples, random, for iterating.

Every profile prints the blob of a failure. A counterexample that found a bug
is kept in its test as an explicit `@example` (or a parametrized `_examples`
test), since a blob is only valid for one Hypothesis version; a blob is for
reproducing, never to be committed. property_tests/test_hypothesis_profiles.py
holds these settings.
"""

import os

from hypothesis import settings

settings.register_profile(
    "ci", max_examples=200, deadline=None, derandomize=True, database=None, print_blob=True
)
settings.register_profile("heavy", max_examples=2000, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=50, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
