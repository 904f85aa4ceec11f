"""The hardware monitor (mailstead-monitor): know before a disk dies.

Readers -> rules -> alerts (STYLE.md practice 13). `readers/` turn tool output and kernel
files (smartctl JSON, /proc/mdstat, `mdadm --detail --export`, pyudev, psutil) into frozen
dataclasses and decide nothing. `rules/` are pure functions from one `Snapshot` to
`Finding`s, one small module per check as TrueNAS's alert sources, with thresholds from the
`monitor.*` settings. `alerts.py` keeps the alerts by dedup key in mailstead.db (a change
alerts once, a lasting problem at most daily, a clear is recorded) with the time series.
`monitor.py` is the driver: it polls, mails the admin through the engine's own Deliverer
(`notify.py`), keeps the engine's critical-space flag, starts SMART self-tests and runs
the disk hooks (`hooks.py`). `run.py` is the one place that starts programs.
"""
