"""Forgotten password and first-time sign-in: links that expire at local midnight."""
