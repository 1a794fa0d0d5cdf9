"""Domain exceptions raised by services, and how they map to HTTP.

Services raise these; views (or the error handlers registered in
create_app) turn them into a page or a status code. Nothing here reads the
request."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: a refusal a person can be told about."""

    status_code = 400

    def __init__(self, message: str = "", **details):
        super().__init__(message)
        self.message = message
        self.details = details


class NotFound(DomainError):
    status_code = 404


class NotAllowed(DomainError):
    status_code = 403


class Conflict(DomainError):
    """A uniqueness rule would be broken (duplicate email, slug...)."""

    status_code = 409


class InvalidInput(DomainError):
    status_code = 400


class PolicyViolation(DomainError):
    """A password or security policy refused the value; `problems` lists every rule that failed."""

    status_code = 400

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


class RateLimited(DomainError):
    status_code = 429


class DeliveryFailed(DomainError):
    """Mail could not be handed to the mail server (a temporary error for the user)."""

    status_code = 503
