"""Fake upstream prepare.py (karpathy/autoresearch layout) for engine tests.

It imports a module that does not exist in cockpit's environment, as upstream's
prepare.py imports its own dependencies: cockpit must read TIME_BUDGET with
``ast`` and never import or run this file.
"""

import cockpit_tests_no_such_module  # noqa: F401  (importing this file fails on purpose)

MAX_SEQ_LEN = 2048  # context length
TIME_BUDGET = 5  # training time budget in seconds
EVAL_TOKENS = 40 * 524288  # validation tokens

if __name__ == "__main__":
    raise SystemExit("cockpit must not run prepare.py in an upstream checkout")
