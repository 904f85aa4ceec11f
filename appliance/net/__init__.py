"""Socket plumbing shared by the engine's own line-protocol listeners (IMAP, POP3)."""
