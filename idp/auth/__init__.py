"""Signing in at a tenant's login page: provider selector, second factor, sign-out."""
