"""The session and its runs: start-up, propose, commit, train, judge, record; the human's commands."""
