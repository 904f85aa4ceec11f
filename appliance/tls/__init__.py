"""TLS: certificates made with `cryptography`, and the server contexts (TLS 1.2+ only)."""
