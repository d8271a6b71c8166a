"""Protocol-neutral message handling, used by every wing and the UI alike: MIME parsing,
body analysis, HTML to text, modified UTF-7, and the one rule each for charsets, header
text, dates, Message-IDs and subject prefixes (see ARCHITECTURE.md)."""
