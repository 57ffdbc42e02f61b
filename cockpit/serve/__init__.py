"""The engine as a background process: the daemon, its socket and replay log, attaching to it, headless output."""
