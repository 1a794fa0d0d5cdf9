"""Bulk import of members from CSV (email, name, role, provider): preview, then all or nothing.

The preview and the import run the same validation over the same text, so the confirm step trusts
nothing the browser kept between the two: it re-checks the file it is sent."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

from ..accounts import directory, lifecycle, providers
from ..errors import DomainError, InvalidInput
from ..mail import delivery
from ..models import Account, Tenant
from ..models.accounts import ROLES, normalise_email
from ..models.base import column_length
from . import service

COLUMNS = ("email", "name", "role", "provider")
MAX_ROWS = 5000


@dataclass
class Row:
    line: int
    email: str
    name: str
    role: str
    provider: str
    errors: list[str] = field(default_factory=list)


@dataclass
class Preview:
    rows: list[Row]
    problems: list[str]  # about the file as a whole

    @property
    def ok(self) -> bool:
        return not self.problems and bool(self.rows) and not any(row.errors for row in self.rows)

    @property
    def error_count(self) -> int:
        return len(self.problems) + sum(1 for row in self.rows if row.errors)


def decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise InvalidInput("The file is not a text CSV file")


def preview(tenant: Tenant, text: str) -> Preview:
    """Every row with its problems: bad email, role or provider, a duplicate in the file, or a conflict."""
    text = (text or "").lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text))
    try:
        records = [record for record in reader]
    except csv.Error as error:
        return Preview([], [f"The file could not be read as CSV: {error}"])
    records = [(number, record) for number, record in enumerate(records, start=1) if any(c.strip() for c in record)]
    if not records:
        return Preview([], ["The file is empty. The first line must be: " + ",".join(COLUMNS)])
    header_line, header = records[0]
    header = [column.strip().lower() for column in header]
    missing = [column for column in COLUMNS if column not in header]
    if missing:
        return Preview([], [f"Line {header_line}: the header must name the columns " + ",".join(COLUMNS)
                            + " (missing: " + ", ".join(missing) + ")"])
    if len(records) - 1 > MAX_ROWS:
        return Preview([], [f"The file has {len(records) - 1} users; import at most {MAX_ROWS} at a time"])
    position = {column: header.index(column) for column in COLUMNS}

    rows: list[Row] = []
    seen: dict[tuple[str, str], int] = {}
    for number, record in records[1:]:
        value = {c: (record[i].strip() if i < len(record) else "") for c, i in position.items()}
        row = Row(number, value["email"], value["name"], value["role"].lower(), value["provider"].lower())
        rows.append(row)
        try:
            row.email = directory.validate_email(row.email)
        except InvalidInput:
            row.errors.append(f"“{row.email}” is not a valid email address" if row.email else "The email is missing")
            row.email = normalise_email(row.email)
        if row.role not in ROLES:
            row.errors.append("The role must be staff or admin")
        if row.provider not in providers.KEYS:
            row.errors.append("The provider must be identity or sso")
        if len(row.name) > column_length(Account.name):
            row.errors.append(f"The name is longer than {column_length(Account.name)} characters")
        if row.errors:
            continue
        key = (row.provider, row.email)
        if key in seen:
            row.errors.append(f"Duplicate of line {seen[key]}")
            continue
        seen[key] = number
        conflict = lifecycle.membership_conflict(tenant, row.provider, row.email)
        if conflict:
            row.errors.append(conflict)
    return Preview(rows, [])


@dataclass
class ImportResult:
    added: list[lifecycle.Joined]

    @property
    def count(self) -> int:
        return len(self.added)


def import_members(tenant: Tenant, text: str, *, actor: Account | None, ip: str | None = None) -> ImportResult:
    """Add every row or none: re-validates `text`; the caller commits, or rolls back on any error."""
    checked = preview(tenant, text)
    if not checked.ok:
        raise InvalidInput(f"The file has {checked.error_count} problem(s); nothing was imported")
    added = []
    for row in checked.rows:
        try:
            added.append(service.add_member(tenant, email=row.email, name=row.name, role=row.role,
                                            provider=row.provider, actor=actor, ip=ip, mail=False))
        except DomainError as error:
            raise InvalidInput(f"Line {row.line}: {error.message}; nothing was imported") from None
    return ImportResult(added)


def send_invitations(tenant: Tenant, result: ImportResult, *, actor: Account | None = None,
                     ip: str | None = None) -> int:
    """After the import: a first-time link to every new account, an acceptance link to every
    existing SSO account the school added. Returns how many mails were sent."""
    authority = service.authority(tenant, actor, ip)
    with delivery.batch():
        return sum(lifecycle.send_welcome(joined, tenant, authority).mailed for joined in result.added)
