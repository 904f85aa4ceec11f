-- DMARC aggregate (RFC 7489 7.2) and TLS-RPT (RFC 8460) reports other receivers sent us
-- about our domains (appliance/reports/store.py). Times are POSIX seconds (UTC).
CREATE TABLE reports (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,              -- 'dmarc' or 'tlsrpt'
    org_name       TEXT NOT NULL,              -- the reporting organisation
    report_id      TEXT NOT NULL,              -- unique per organisation (RFC 7489 7.2.1.1)
    contact        TEXT NOT NULL,              -- DMARC email / TLS-RPT contact-info
    domain         TEXT NOT NULL,              -- the policy domain reported on
    date_begin     INTEGER NOT NULL,
    date_end       INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,           -- retention counts from here
    source         TEXT NOT NULL,              -- 'mail <queue id>' or 'import <file name>'
    messages       INTEGER NOT NULL,           -- DMARC: messages; TLS-RPT: sessions
    failed         INTEGER NOT NULL,           -- of those, failing DMARC / TLS
    details        TEXT NOT NULL,              -- JSON: policy_published, extra contact, errors
    UNIQUE (kind, org_name, report_id)
);
CREATE INDEX reports_domain_date ON reports (domain, date_end);
CREATE INDEX reports_received ON reports (received_at);

CREATE TABLE dmarc_records (
    id             INTEGER PRIMARY KEY,
    report         INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    source_ip      TEXT NOT NULL,
    count          INTEGER NOT NULL,
    disposition    TEXT NOT NULL,              -- none, quarantine, reject
    dkim           TEXT NOT NULL,              -- policy_evaluated: aligned DKIM pass/fail
    spf            TEXT NOT NULL,              -- policy_evaluated: aligned SPF pass/fail
    passed         INTEGER NOT NULL,           -- 1 when DMARC passed (dkim or spf pass)
    header_from    TEXT NOT NULL,
    envelope_from  TEXT NOT NULL,
    envelope_to    TEXT NOT NULL,
    auth_results   TEXT NOT NULL               -- JSON: dkim and spf results, reasons
);
CREATE INDEX dmarc_records_report ON dmarc_records (report);

CREATE TABLE tlsrpt_policies (
    id             INTEGER PRIMARY KEY,
    report         INTEGER NOT NULL REFERENCES reports(id) ON DELETE CASCADE,
    policy_type    TEXT NOT NULL,              -- tlsa, sts, no-policy-found
    policy_domain  TEXT NOT NULL,
    policy         TEXT NOT NULL,              -- JSON: policy-string and mx-host lists
    successful     INTEGER NOT NULL,
    failed         INTEGER NOT NULL
);
CREATE INDEX tlsrpt_policies_report ON tlsrpt_policies (report);
CREATE INDEX tlsrpt_policies_domain ON tlsrpt_policies (policy_domain);

CREATE TABLE tlsrpt_failures (
    id                     INTEGER PRIMARY KEY,
    policy                 INTEGER NOT NULL REFERENCES tlsrpt_policies(id) ON DELETE CASCADE,
    result_type            TEXT NOT NULL,
    failed_sessions        INTEGER NOT NULL,
    sending_mta_ip         TEXT NOT NULL,
    receiving_mx_hostname  TEXT NOT NULL,
    receiving_mx_helo      TEXT NOT NULL,
    receiving_ip           TEXT NOT NULL,
    additional_information TEXT NOT NULL,
    failure_reason_code    TEXT NOT NULL
);
CREATE INDEX tlsrpt_failures_policy ON tlsrpt_failures (policy);
