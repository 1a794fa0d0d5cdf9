"""OpenID Connect provider: authlib wiring (server, grants, endpoints, keys, claims)."""
