"""The one source of time. Everything that asks "what time is it?" asks here,
so tests can freeze midnight and expiry without sleeping."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo


class Clock:
    """Wall clock in UTC; `freeze`/`advance` exist for tests only."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        if self._frozen is not None:
            return self._frozen
        return datetime.now(timezone.utc)

    def freeze(self, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValueError("freeze() needs an aware datetime")
        self._frozen = at.astimezone(timezone.utc)

    def advance(self, delta: timedelta) -> None:
        self.freeze(self.now() + delta)

    def unfreeze(self) -> None:
        self._frozen = None


clock = Clock()


def now() -> datetime:
    """Aware UTC now."""
    return clock.now()


def timestamp() -> int:
    """Seconds since the epoch, for JWT claims and token lifetimes."""
    return int(clock.now().timestamp())


def today_in(tz: str) -> date:
    """The calendar date right now in the given IANA timezone."""
    return clock.now().astimezone(ZoneInfo(tz)).date()


def next_midnight_in(tz: str, after: datetime | None = None) -> datetime:
    """The first instant of the next local day in `tz`, as aware UTC.

    Built from the local calendar date rather than by adding 24h, so DST
    days (23 or 25 hours long) end at the right instant."""
    zone = ZoneInfo(tz)
    local = (after or clock.now()).astimezone(zone)
    tomorrow = local.date() + timedelta(days=1)
    midnight = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=zone)
    return midnight.astimezone(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """Datetimes come back from SQLite naive; they are always stored as UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def zone_label(tz: str) -> str:
    """How a person names the zone: "UK time", "Dubai time"."""
    if tz in ("Europe/London", "GB", "Europe/Belfast"):
        return "UK time"
    if tz in ("UTC", "Etc/UTC"):
        return "UTC"
    return tz.rsplit("/", 1)[-1].replace("_", " ") + " time"


def local(value: datetime | int | float | None, tz: str) -> datetime | None:
    """An instant (aware datetime, or seconds since the epoch) as wall-clock time in `tz`."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        value = datetime.fromtimestamp(value, timezone.utc)
    return as_utc(value).astimezone(ZoneInfo(tz))


def describe(value: datetime | int | float | None, tz: str) -> str:
    """'2 March 2026, 09:05 (UK time)' for pages."""
    shown = local(value, tz)
    if shown is None:
        return "–"
    return f"{shown.day} {shown:%B %Y, %H:%M} ({zone_label(tz)})"
