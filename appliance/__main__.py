"""`python -m appliance` runs the `mailstead` command line."""

from appliance.cli import main

raise SystemExit(main())
