"""mailstead-dav: CalDAV/CardDAV (calendars, task lists, address books) on Radicale.

Radicale keeps the protocol (RFC 4791, RFC 6352, WebDAV sync) and the multifilesystem
storage; we plug in what is ours: logins through the one login guard (`auth.py`), who may
touch which collection (`rights.py`: each account its own tree, plus one shared area per
domain), default collections (`provision.py`), the WSGI checks in front (`middleware.py`),
the configuration from our Settings (`app.py`) and the gunicorn server (`gunicorn.conf.py`).
"""
