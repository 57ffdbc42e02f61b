"""Pure functions of the ratchet: the keep rule, the noise floor, early abort, holdout divergence, triviality, edit and summary parsing, redaction, usage. No files, no processes, no git."""
