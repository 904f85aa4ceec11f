"""Maildir++ storage: one Maildir per account, written only through `store.MaildirStore`."""
