"""POP3 (RFC 1939 with CAPA, STLS, AUTH PLAIN): a sans-IO session core and its asyncio driver.

`core.Pop3Session` turns received bytes into replies and actions (log in, open the
maildrop, read a message, remove messages, start TLS); `backend.SessionBackend` performs
the actions through the login guard and the mail store; `server` owns sockets, TLS,
timeouts and connection limits. The maildrop is the account's INBOX.
"""
