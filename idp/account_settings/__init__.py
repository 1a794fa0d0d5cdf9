"""Account settings of the signed-in person (security keys)."""
