"""Maildir++ storage: one Maildir per account. `store.MaildirStore` delivers (SMTP);
`account.MaildirAccount` is an account's mail for IMAP/POP3, with a per-account SQLite index."""
