"""The user's own programs: a command line to pipe messages into, a viewer to open a part
with. Mail never reaches a shell through these: only a command line the user wrote is run by
the shell; file names from mail are argv elements, never parsed."""
