"""The local control socket: the console and the CLI ask the running engine to act."""
