-- Our own DMARC evaluations on the MX, for the aggregate reports we send to the domains
-- whose mail we receive (RFC 7489 7.2; appliance/reports/evaluations.py, sender.py).
-- One row per (message, author domain whose DMARC record has rua=); rows are summed into
-- report records when a day's report is built, then marked reported and later pruned.
CREATE TABLE dmarc_evaluations (
    id             INTEGER PRIMARY KEY,
    day            TEXT NOT NULL,              -- UTC day of the evaluation, YYYY-MM-DD
    evaluated_at   INTEGER NOT NULL,           -- POSIX seconds
    policy_domain  TEXT NOT NULL,              -- where the DMARC record was found
    p              TEXT NOT NULL,              -- the policy published (RFC 7489 6.3)
    sp             TEXT NOT NULL,
    pct            INTEGER NOT NULL,
    adkim          TEXT NOT NULL,
    aspf           TEXT NOT NULL,
    fo             TEXT NOT NULL,
    rua            TEXT NOT NULL,              -- the rua= URIs, comma separated
    source_ip      TEXT NOT NULL,
    header_from    TEXT NOT NULL,
    envelope_from  TEXT NOT NULL,              -- the MAIL FROM domain ("" for <>)
    spf_domain     TEXT NOT NULL,
    spf_scope      TEXT NOT NULL,              -- mfrom or helo
    spf_result     TEXT NOT NULL,
    dkim           TEXT NOT NULL,              -- JSON: [[domain, selector, result], ...]
    disposition    TEXT NOT NULL,              -- none, quarantine, reject (as applied)
    dkim_aligned   TEXT NOT NULL,              -- policy_evaluated dkim: pass or fail
    spf_aligned    TEXT NOT NULL,              -- policy_evaluated spf: pass or fail
    reasons        TEXT NOT NULL,              -- JSON: [[type, comment], ...] (overrides)
    reported       INTEGER NOT NULL DEFAULT 0  -- 1 once a report covered the row
);
CREATE INDEX dmarc_evaluations_day ON dmarc_evaluations (day, policy_domain);
