"""SMTP: the reply catalogue, pure policy, the aiosmtpd handler and the listeners."""
