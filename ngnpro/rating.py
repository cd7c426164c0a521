"""``python -m ngnpro.rating``: import rating tables from CSV, export them, and show how a
call would be rated.

::

    python -m ngnpro.rating import rates.csv --config msp.toml [--profile NAME] [--replace]
    python -m ngnpro.rating export [FILE] --config msp.toml [--profile NAME]
    python -m ngnpro.rating quote alice@example.com +31201234567 --config msp.toml [--seconds N] [--at ISO]

The CSV has a header row naming its columns, in any order (docs/accounting.md):
``profile``, ``prefix``, ``name``, ``price_per_minute``, ``connect_fee``, ``increment``,
``min_duration``.  Only ``prefix`` and ``price_per_minute`` are required.  A file is
checked whole before anything is written and imported in one transaction: an operator
who loads a tariff with one typo gets every bad line named and the old tariff untouched,
never half of each.  ``export`` writes the same format, so export -> edit -> import works.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import io
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TextIO

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ngnpro.models.changes import record_change
from ngnpro.models.rating import (
    DEFAULT_PROFILE,
    PREFIX,
    PROFILE,
    TOPIC_RATING,
    RatingRate,
    call_price,
    covers_first_increment,
    entity_keys,
    find_rate,
    first_increment_price,
    is_weekend,
    load_rating,
    max_duration,
    normalize_number,
    normalize_prefix,
    resolve_profiles,
)
from ngnpro.models.sip import SipAccount

COLUMNS = ("profile", "prefix", "name", "price_per_minute", "connect_fee", "increment", "min_duration")
REQUIRED = ("prefix", "price_per_minute")
#: Profile names: what an operator types in RatingEntityProfiles, kept unambiguous.
PROFILE_NAME = re.compile(rf"^[A-Za-z0-9_.-]{{1,{PROFILE}}}$")
MAX_PRICE = Decimal("1e9")
MAX_INCREMENT = 3600
MAX_MIN_DURATION = 86400
#: At most this many errors are listed; a wholly wrong file need not print every line.
MAX_ERRORS = 50


class CsvError(Exception):
    """The file was rejected; ``errors`` are ``(line, message)`` pairs."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__(f"{len(errors)} bad line(s)")
        self.errors = errors


@dataclass(frozen=True)
class RateRow:
    """One checked CSV row."""

    line: int
    profile: str
    prefix: str
    name: str
    price_per_minute: Decimal
    connect_fee: Decimal
    increment: int
    min_duration: int


@dataclass(frozen=True)
class ImportResult:
    inserted: int
    updated: int
    deleted: int
    profiles: tuple[str, ...]


def _money(text: str, column: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not value.is_finite() or value < 0 or value >= MAX_PRICE:
        raise ValueError(f"{column} {text!r} must be a number from 0 to below {MAX_PRICE:f}")
    if value != value.quantize(Decimal("0.0001")):
        raise ValueError(f"{column} {text!r} has more than 4 decimals (prices are stored with 4)")
    return value.quantize(Decimal("0.0001"))


def _seconds(text: str, column: str, low: int, high: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a whole number of seconds") from None
    if not low <= value <= high:
        raise ValueError(f"{column} {value} must be from {low} to {high} seconds")
    return value


def check_profile(name: str) -> str:
    """A profile name as stored; ValueError when it is not one."""
    if not PROFILE_NAME.match(name or ""):
        raise ValueError(f"profile {name!r} must be 1-{PROFILE} letters, digits, '_', '.' or '-'")
    return name


def _row(line: int, cells: dict[str, str], profile: str | None) -> RateRow:
    named = (cells.get("profile") or "").strip()
    if profile is not None and named and named != profile:
        raise ValueError(f"profile {named!r} differs from --profile {profile!r}")
    prefix = normalize_prefix(cells.get("prefix") or "")
    if len(prefix) > PREFIX:
        raise ValueError(f"prefix {prefix!r} is longer than {PREFIX} digits")
    name = (cells.get("name") or "").strip()
    if len(name) > 255:
        raise ValueError("name is longer than 255 characters")
    if not (cells.get("price_per_minute") or "").strip():
        raise ValueError("price_per_minute is empty")
    return RateRow(
        line=line,
        profile=check_profile(profile or named or DEFAULT_PROFILE),
        prefix=prefix,
        name=name,
        price_per_minute=_money(cells["price_per_minute"].strip(), "price_per_minute"),
        connect_fee=_money((cells.get("connect_fee") or "0").strip() or "0", "connect_fee"),
        increment=_seconds((cells.get("increment") or "60").strip() or "60", "increment", 1, MAX_INCREMENT),
        min_duration=_seconds((cells.get("min_duration") or "0").strip() or "0", "min_duration", 0,
                              MAX_MIN_DURATION),
    )


def _lines(stream: TextIO) -> Iterator[tuple[int, str]]:
    """Numbered lines, without blank ones and ``#`` comments (line numbers stay the file's)."""
    for number, text in enumerate(stream, 1):
        if text.strip() and not text.lstrip().startswith("#"):
            yield number, text


def parse_csv(stream: TextIO, profile: str | None = None) -> list[RateRow]:
    """Read and check a whole rates file; raise :class:`CsvError` listing every bad line.

    ``profile`` (``--profile``) puts every row in that profile; a row's own ``profile``
    cell must then be empty or the same.  A prefix given twice for one profile is an error:
    which of the two prices was meant cannot be guessed."""
    if profile is not None:
        try:
            check_profile(profile)
        except ValueError as exc:
            raise CsvError([(0, f"--profile: {exc}")]) from None
    lines = list(_lines(stream))
    if not lines:
        raise CsvError([(0, "the file is empty: a header row is required")])
    header_line, header_text = lines[0]
    delimiter = ";" if header_text.count(";") > header_text.count(",") else ","
    header = [h.strip().lower() for h in next(csv.reader([header_text], delimiter=delimiter))]
    errors: list[tuple[int, str]] = []
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if unknown:
        errors.append((header_line, f"unknown column(s) {', '.join(unknown)}; known: {', '.join(COLUMNS)}"))
    if missing:
        errors.append((header_line, f"missing column(s) {', '.join(missing)}"))
    if repeated:
        errors.append((header_line, f"column(s) given twice: {', '.join(repeated)}"))
    if errors:
        raise CsvError(errors)
    rows: list[RateRow] = []
    seen: dict[tuple[str, str], int] = {}
    for number, text in lines[1:]:
        cells = next(csv.reader([text], delimiter=delimiter))
        if len(cells) != len(header):
            errors.append((number, f"{len(cells)} field(s), the header has {len(header)}"))
            continue
        try:
            row = _row(number, dict(zip(header, cells, strict=True)), profile)
        except ValueError as exc:
            errors.append((number, str(exc)))
            continue
        key = (row.profile, row.prefix)
        if key in seen:
            errors.append((number, f"prefix {row.prefix!r} of profile {row.profile!r} is already on line {seen[key]}"))
            continue
        seen[key] = number
        rows.append(row)
        if len(errors) >= MAX_ERRORS:
            break
    if errors:
        raise CsvError(errors[:MAX_ERRORS])
    if not rows:
        raise CsvError([(header_line, "no rates after the header")])
    return rows


def import_rates(session: Session, rows: Iterable[RateRow], replace: bool = False) -> ImportResult:
    """Write checked rows in the session's transaction (the caller commits).

    Without ``replace`` a row updates the rate of its profile and prefix, or adds it; with
    ``replace`` each profile in the file loses every rate the file does not list."""
    rows = list(rows)
    profiles = sorted({r.profile for r in rows})
    existing = {
        (r.profile, r.prefix): r
        for r in session.scalars(select(RatingRate).where(RatingRate.profile.in_(profiles)))
    }
    inserted = updated = deleted = 0
    wanted = {(r.profile, r.prefix) for r in rows}
    if replace:
        stale = [r.id for key, r in existing.items() if key not in wanted]
        for start in range(0, len(stale), 500):
            deleted += session.execute(
                delete(RatingRate).where(RatingRate.id.in_(stale[start:start + 500]))
                .execution_options(synchronize_session=False)
            ).rowcount or 0
    for row in rows:
        values = {
            "name": row.name, "price_per_minute": row.price_per_minute, "connect_fee": row.connect_fee,
            "increment": row.increment, "min_duration": row.min_duration,
        }
        current = existing.get((row.profile, row.prefix))
        if current is None:
            session.add(RatingRate(profile=row.profile, prefix=row.prefix, **values))
            inserted += 1
        elif any(getattr(current, k) != v for k, v in values.items()):
            for key, value in values.items():
                setattr(current, key, value)
            updated += 1
    for name in profiles:
        record_change(session, TOPIC_RATING, name)
    session.flush()
    return ImportResult(inserted, updated, deleted, tuple(profiles))


def export_rates(session: Session, out: TextIO, profile: str | None = None) -> int:
    """Write the rates (of ``profile``, or all) as CSV with every column; returns the count."""
    stmt = select(RatingRate).order_by(RatingRate.profile, RatingRate.prefix)
    if profile is not None:
        stmt = stmt.where(RatingRate.profile == profile)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    for r in session.scalars(stmt):
        writer.writerow([
            r.profile, r.prefix, r.name, f"{Decimal(r.price_per_minute):.4f}", f"{Decimal(r.connect_fee):.4f}",
            r.increment, r.min_duration,
        ])
        count += 1
    return count


def quote(session: Session, aor: str, number: str, seconds: int, when: _dt.datetime) -> tuple[bool, list[str]]:
    """How a call from ``aor`` to ``number`` at ``when`` is rated, step by step, for an
    operator checking a tariff: ``(rated, lines)``.  Reads the account like the proxy does
    and goes through the same pure functions."""
    user, _, domain = aor.lower().partition("@")
    account = session.scalar(select(SipAccount).where(SipAccount.username == user, SipAccount.domain == domain))
    if account is None:
        return False, [f"no SIP account {aor}"]
    keys = entity_keys(user, domain, account.customer, account.reseller)
    data = load_rating(session, keys, number)
    entity = next((k for k in keys if k in data.entities), "")
    profiles = resolve_profiles(data.entities, keys, when, account.timezone)
    balance = Decimal(account.balance or 0)
    lines = [
        f"account   {account.aor} (customer {account.customer}, reseller {account.reseller}, "
        f"prepaid {'yes' if account.prepaid else 'no'}, balance {balance:.4f})",
        f"entity    {entity or '(none: default only)'}",
    ]
    day = ""
    if entity:
        weekend = is_weekend(when, data.entities[entity].timezone or account.timezone)
        day = " (weekend)" if weekend else " (weekday)"
    lines.append(f"profiles  {', '.join(profiles)}{day}")
    rate = find_rate(data.rates, profiles, number)
    if rate is None:
        return False, [*lines, f"rate      none: no profile has a prefix of {normalize_number(number) or number!r}"]
    lines += [
        f"rate      profile {rate.profile}, prefix {rate.prefix or '(any)'}{f' ({rate.name})' if rate.name else ''}: "
        f"{rate.price_per_minute:.4f}/min, connect fee {rate.connect_fee:.4f}, increment {rate.increment} s, "
        f"minimum {rate.min_duration} s",
        f"price     {seconds} s: {call_price(rate, seconds):.4f}",
        f"first     {first_increment_price(rate):.4f}, covered by the balance: "
        f"{'yes' if covers_first_increment(rate, balance) else 'no'}",
    ]
    longest = max_duration(rate, balance)
    lines.append(f"longest   {'no limit' if longest is None else f'{longest} s'} on the balance")
    return True, lines


# --- command line ------------------------------------------------------------------------


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m ngnpro.rating", description="rating tables: CSV import and export")
    sub = parser.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="import rates from a CSV file (all or nothing)")
    imp.add_argument("file", help="CSV file, or - for standard input")
    imp.add_argument("--replace", action="store_true",
                     help="drop the rates of the file's profiles that the file does not list")
    exp = sub.add_parser("export", help="write rates as CSV")
    exp.add_argument("file", nargs="?", default="-", help="output file (default: standard output)")
    for p in (imp, exp):
        p.add_argument("--profile", help="only this profile (import: put every row in it)")
    quo = sub.add_parser("quote", help="show how a call would be rated")
    quo.add_argument("account", help="the calling account, user@domain")
    quo.add_argument("number", help="the destination number or URI")
    quo.add_argument("--seconds", type=int, default=60, help="the call's duration (default 60)")
    quo.add_argument("--at", help="the call's start, ISO 8601 UTC (default: now)")
    for p in (imp, exp, quo):
        p.add_argument("--config", help="platform TOML config file (default: built-in defaults)")
    return parser.parse_args(argv)


def _open_input(name: str) -> TextIO:
    if name == "-":
        return io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8-sig", newline="")
    return open(name, encoding="utf-8-sig", newline="")


def _read(name: str, profile: str | None) -> list[RateRow]:
    """The checked rows of file ``name``; SystemExit(1) with every problem printed."""
    label = "<stdin>" if name == "-" else name
    try:
        with _open_input(name) as fh:
            return parse_csv(fh, profile)
    except OSError as exc:
        print(f"ngnpro.rating: cannot read {label}: {exc.strerror or exc}", file=sys.stderr)
    except UnicodeDecodeError as exc:
        print(f"ngnpro.rating: {label}: not UTF-8 text ({exc.reason})", file=sys.stderr)
    except CsvError as exc:
        for line, message in exc.errors:
            print(f"{label}:{line}: {message}" if line else f"{label}: {message}", file=sys.stderr)
        print(f"ngnpro.rating: {label} rejected, nothing imported", file=sys.stderr)
    raise SystemExit(1)


def _run(session: Session, args: argparse.Namespace, rows: list[RateRow], when: _dt.datetime) -> int:
    if args.command == "import":
        result = import_rates(session, rows, args.replace)
        print(f"imported {len(rows)} rate(s) into {', '.join(result.profiles)}: "
              f"{result.inserted} added, {result.updated} changed, {result.deleted} removed")
        return 0
    if args.command == "quote":
        rated, lines = quote(session, args.account, args.number, args.seconds, when)
        print("\n".join(lines), file=sys.stdout if rated else sys.stderr)
        return 0 if rated else 1
    if args.file == "-":
        count = export_rates(session, sys.stdout, args.profile)
    else:
        with open(Path(args.file), "w", encoding="utf-8", newline="") as out:
            count = export_rates(session, out, args.profile)
    print(f"exported {count} rate(s)", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    from sqlalchemy.exc import SQLAlchemyError

    from ngnpro.models.config import ConfigError, load_config
    from ngnpro.models.database import open_database

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"ngnpro.rating: configuration error: {exc}", file=sys.stderr)
        return 2
    when = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    if args.command == "quote" and args.at:
        try:
            when = _dt.datetime.fromisoformat(args.at)
        except ValueError:
            print(f"ngnpro.rating: --at {args.at!r} is not an ISO 8601 date and time", file=sys.stderr)
            return 2
        if when.tzinfo is not None:
            when = when.astimezone(_dt.UTC).replace(tzinfo=None)
    try:
        rows = _read(args.file, args.profile) if args.command == "import" else []
    except SystemExit as exc:
        return int(exc.code or 1)
    try:
        engine, Session = open_database(config.database_url)
        try:
            with Session() as session, session.begin():
                return _run(session, args, rows, when)
        finally:
            engine.dispose()
    except SQLAlchemyError as exc:
        outcome = ", nothing imported" if args.command == "import" else ""
        print(f"ngnpro.rating: database error{outcome}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ngnpro.rating: cannot write {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
