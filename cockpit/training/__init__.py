"""One training process on one device: spawn, stream, time, kill, sweep what it leaves behind."""
