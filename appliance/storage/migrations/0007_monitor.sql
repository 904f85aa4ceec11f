-- The hardware monitor (appliance/hardware/alerts.py): alerts with their dedup key and
-- history, the time series behind charts and trend rules, and a little state.

-- One row per alert key (a disk, an array, the mail file system): its current level and
-- text, when it was first and last seen, when it was last mailed, and when it cleared.
CREATE TABLE monitor_alerts (
    key            TEXT PRIMARY KEY,           -- e.g. disk_health:<serial>, raid:md0
    level          TEXT NOT NULL,              -- warning or critical (as last seen)
    title          TEXT NOT NULL,
    text           TEXT NOT NULL,
    device         TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,              -- active or cleared
    first_seen     INTEGER NOT NULL,           -- POSIX seconds, start of this episode
    last_seen      INTEGER NOT NULL,
    last_notified  INTEGER NOT NULL DEFAULT 0, -- last mail about it
    cleared_at     INTEGER                     -- NULL while active
);

-- Every change an alert went through: raised, changed (level), reminder, cleared.
CREATE TABLE monitor_alert_events (
    id     INTEGER PRIMARY KEY,
    key    TEXT NOT NULL,
    event  TEXT NOT NULL,
    level  TEXT NOT NULL,
    title  TEXT NOT NULL,
    at     INTEGER NOT NULL
);
CREATE INDEX monitor_alert_events_key ON monitor_alert_events (key, at);

-- Time series: temperature (C) per disk or sensor, space and inode use (percent) of the
-- mail file system, bad-sector counts per disk (for the trend rule).
CREATE TABLE monitor_series (
    kind     TEXT NOT NULL,
    subject  TEXT NOT NULL,
    at       INTEGER NOT NULL,
    value    REAL NOT NULL
);
CREATE INDEX monitor_series_subject ON monitor_series (kind, subject, at);

-- Small named values: when each disk's last self-tests were started, the last snapshot.
CREATE TABLE monitor_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
