"""Protocol-neutral message handling, used by every wing and the UI alike: MIME parsing,
body analysis, HTML to text, modified UTF-7 (see ARCHITECTURE.md)."""
