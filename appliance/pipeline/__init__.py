"""The message pipeline: receive -> check -> decide -> store/queue -> journal (DESIGN.md)."""
