"""Use cases: the rules of each operation in one place, called alike by the HTTP routes, the CLI, the
alert actions and the background loops. They take what they act on (the store, a `Serving`) as
arguments, so the same rule runs in a server (which applies changes now) and in a CLI process (which
only writes the store; running servers follow within a poll)."""
