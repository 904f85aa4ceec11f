"""DMARC aggregate (RFC 7489 7.2) and TLS-RPT (RFC 8460) report intake.

Other receivers send us reports about our domains to the `rua=mailto:` addresses our DNS
records publish (`mailstead dns records`: postmaster@<domain>). The reports are untrusted
input from anyone on the Internet, so the package is a chain of small, bounded steps:

- `unpack`: gzip and zip with a cap on uncompressed bytes and zip members (bombs refused);
- `dmarc` and `tlsrpt`: XML (defusedxml: no DTD, no entities, a depth limit) and JSON to the
  plain dataclasses of `model`; anything malformed is a `ReportError`, never a crash;
- `extract`: the report attachments of a mail message (content types vary in the wild);
- `store`: tables in mailstead.db, one copy per (kind, organisation, report id), the queries
  the console wants, pruning after `reports.retention_days`;
- `intake`: the engine's hook after the MX delivered a message to a report address: parsing
  and storing run in a worker thread after the `250`, and a bad report is only logged.
"""
