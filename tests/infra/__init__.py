"""Production parts: databases, migrations, servers, Redis, proxies, operations."""
