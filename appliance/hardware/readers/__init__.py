"""Hardware readers: tool output and kernel files in, frozen dataclasses out. They decide
nothing (that is `appliance.hardware.rules`); each has a pure `parse_*` function that the
tests feed real captured output, and a thin `read_*` that runs the tool or reads the file."""
