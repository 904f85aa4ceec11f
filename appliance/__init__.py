"""Mailstead: the mail engine and the appliance daemons (see DESIGN.md for the whole shape)."""

__version__ = "0.1.0"
