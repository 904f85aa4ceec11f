"""Outbound mail: the durable spool, the retry scheduler, MX delivery and bounces.

The spool (queue files + SQLite) owns what must still be delivered; the runner takes due
messages grouped by destination domain and hands each group to `transport.deliver`, which
does one attempt (MX lookup, connection, STARTTLS, SMTP) and returns one result per
recipient; the scheduler decides when to try again; bounces are built from the results.
"""
