"""Storage: the SQLite directory of domains and accounts, and the Maildir mail store."""
