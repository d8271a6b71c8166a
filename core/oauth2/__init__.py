"""OAuth2 sign-in built in: the authorization code flow with PKCE and a loopback redirect (or
the address pasted back, over SSH), the device authorization grant, and tokens kept fresh.

The refresh token is stored like a password (``core/secretstore.py``), never in the
config, the cache or the log; the access token lives in memory and is refreshed ahead of its
expiry and once more after a refused login."""
