"""Local accounts: a Maildir++ tree (filled by POP3) indexed into the same cache IMAP uses."""
