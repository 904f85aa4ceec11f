"""Message checks: each check is one unit returning one `CheckResult` (STYLE.md practice 9).

`result.py` holds the result type, `pipeline.py` the merge rule and the runner the SMTP DATA
hooks call, and each check is one module (`clamav.py` so far).
"""
