"""Shared by every test: the fake train.py's knobs (FAKE_SLOW_FILE, FAKE_STEP_S,
FAKE_OFFSETS, FAKE_HOLDOUT_SLOPE) reach the runs through COCKPIT_PASS_ENV, as a
user passes their own variables (runs get an allow-listed environment:
cockpit.rules.run_env)."""

import os

os.environ["COCKPIT_PASS_ENV"] = "FAKE_*"
