"""Account setup: finding an address's servers (bundled table, autoconfig, DNS, guesses),
probing them without credentials, and diagnosing what fails (``kittiwake setup``/``doctor``)."""
