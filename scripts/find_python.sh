#!/bin/sh
# Print the path of a Python >= 3.11 to build cockpit's .venv with, or say in one line
# (stderr, exit 1) what to install. Tried in order: python3 when it is 3.11+, then
# python3.14 ... python3.11 on PATH (newest first), then uv (`uv python find`, and when
# it finds none, `uv python install 3.12`: uv downloads a standalone build).
# Used by the Makefile when PYTHON is not given (`make PYTHON=/path/to/python` wins).
ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }
for name in python3 python3.14 python3.13 python3.12 python3.11; do
    path=$(command -v "$name" 2>/dev/null) || continue
    if ok "$path"; then echo "$path"; exit 0; fi
done
if command -v uv >/dev/null 2>&1; then
    path=$(uv python find '>=3.11' 2>/dev/null) || path=""
    if [ -z "$path" ] && uv python install 3.12 >/dev/null 2>&1; then
        path=$(uv python find '>=3.11' 2>/dev/null) || path=""
    fi
    if [ -n "$path" ] && ok "$path"; then echo "$path"; exit 0; fi
fi
found=$(python3 -c 'import platform; print(platform.python_version())' 2>/dev/null) || found="none"
echo "cockpit needs Python 3.11+ (found python3: $found). Install one: sudo apt install python3.11 python3.11-venv python3.11-dev (Ubuntu 22.04: add ppa:deadsnakes/ppa first), or uv (https://docs.astral.sh/uv/), then run make again" >&2
exit 1
