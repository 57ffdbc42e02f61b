#!/bin/sh
# Run a command in a network namespace of its own, with only the loopback up: Ray then
# binds to 127.0.0.1 and nothing else (../shared/NOTES.md). Used by `make test` for
# tests/ray. Tries `unshare -n` (root), then an unprivileged user namespace; where
# neither works it runs the command as it is (the Ray tests then skip, saying why).
inner='ip link set lo up && exec "$@"'
if unshare -n true 2>/dev/null; then
    exec unshare -n sh -c "$inner" sh "$@"
elif unshare --user --map-root-user --net true 2>/dev/null; then
    exec unshare --user --map-root-user --net sh -c "$inner" sh "$@"
fi
echo "in_netns.sh: no network namespace here (needs root or user namespaces); running without one" >&2
exec "$@"
