"""Signed and encrypted mail: OpenPGP through the user's GnuPG (``openpgp.py``)."""
