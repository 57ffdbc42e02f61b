"""The subcommands that read a workspace from outside a session: status/stop, doctor, report."""
