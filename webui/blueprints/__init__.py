"""The console's blueprints and its navigation: each helper adds its own lines here.

`BLUEPRINTS`: (module, attribute) pairs that `create_app()` imports and registers, in order.
`NAV`: (label, endpoint, audience) for the navigation bar; audience is "admin" or "user".
An entry whose endpoint does not exist (its blueprint is not written yet) is not shown.
"""

from __future__ import annotations

from typing import Literal

Audience = Literal["admin", "user"]

BLUEPRINTS: list[tuple[str, str]] = [
    ("webui.blueprints.auth", "bp"),        # /login, /login/totp, /logout (helper A)
    ("webui.blueprints.setup", "bp"),       # /setup: the first-boot wizard (helper A)
    ("webui.blueprints.setup_steps", "bp"), # /setup/host, /timezone, /tls, /dkim (helper A)
    ("webui.blueprints.home", "bp"),        # /: dashboard and user home (helper A)
    ("webui.blueprints.account", "bp"),     # /account: an admin's own account (helper A)
    # /admin/...: administration (helper C)
    ("webui.blueprints.admin_domains", "bp"),
    ("webui.blueprints.admin_accounts", "bp"),
    ("webui.blueprints.admin_aliases", "bp"),
    ("webui.blueprints.admin_queue", "bp"),
    ("webui.blueprints.admin_log", "bp"),
    ("webui.blueprints.admin_system", "bp"),    # settings, health
    ("webui.blueprints.admin_updates", "bp"),   # updates: state.json, requests (issue 9)
    ("webui.blueprints.dns", "bp"),     # /dns, MTA-STS policy (helper B)
    ("webui.blueprints.clients", "bp"), # autoconfig, Autodiscover, /clients (helper B)
    ("webui.blueprints.self_service", "bp"),   # /me: a mail user's own settings (helper D)
    ("webui.blueprints.acme", "bp"),    # /.well-known/acme-challenge/ (ACME HTTP-01)
]

NAV: list[tuple[str, str, Audience]] = [
    ("Dashboard", "home.index", "admin"),
    ("Domains", "admin_domains.index", "admin"),             # helper C: administration
    ("Accounts", "admin_accounts.index", "admin"),
    ("Aliases", "admin_aliases.index", "admin"),
    ("Queue", "admin_queue.index", "admin"),
    ("Mail log", "admin_log.index", "admin"),
    ("Health", "admin_system.health", "admin"),
    ("Updates", "admin_updates.index", "admin"),
    ("Settings", "admin_system.settings_page", "admin"),
    ("DNS", "dns.index", "admin"),                           # helper B: DNS page
    ("Admins", "account.index", "admin"),                    # helper A: console admins
    ("Home", "home.index", "user"),
    ("Mail apps", "clients.setup", "user"),                  # helper B: client set-up
    ("My account", "self.index", "user"),                    # helper D: self-service
]
