"""Files and git: results.tsv and records.jsonl, the journal, the workspace and its cockpit.toml, the repository, the .cockpit/ run directory, program.md. No loop logic."""
