"""Account settings of the signed-in person (authenticator apps)."""
