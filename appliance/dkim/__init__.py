"""Outbound DKIM (RFC 6376, RFC 8463): per-domain keys with dated selectors, and the signer."""
