"""Fake prepare.py for engine tests: no torch, no data; TIME_BUDGET like the real harness."""

import os

TIME_BUDGET = float(os.environ.get("COCKPIT_TIME_BUDGET", "0.5"))  # seconds of training

if __name__ == "__main__":
    print("fake prepare: data and tokenizer ready")
