"""Admin area: a tenant's users, applications and audit log; operators' tenant management."""
