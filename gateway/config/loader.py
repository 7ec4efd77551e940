"""Read a YAML file into a validated Config; every problem names the file, the
line, the key path, the bad value and what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from gateway.config.model import Config, Meter, Unit
from gateway.money import minor_digits

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    path: Path_
    message: str
    value: object = None
    has_value: bool = False


class ConfigError(Exception):
    """A configuration that cannot run; str() is a list an installer can act on."""

    def __init__(self, file: Path, lines: list[str]) -> None:
        self.file = file
        self.lines = lines
        super().__init__("\n".join(lines))


def dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _line_index(node: yaml.Node, path: Path_ = ()) -> dict[Path_, int]:
    """Map every key path in a composed YAML tree to its 1-based line."""
    index: dict[Path_, int] = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            sub = (*path, str(key_node.value))
            index.update(_line_index(value_node, sub))
            index[sub] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            index.update(_line_index(item, (*path, i)))
    return index


def _duplicate_keys(node: yaml.Node, path: Path_ = ()) -> Iterable[Problem]:
    """Find keys written twice in one mapping: YAML keeps the last silently."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                line = key_node.start_mark.line + 1
                yield Problem(
                    (*path, key),
                    f"written twice in this section (line {line}): keep one",
                )
            seen.add(key)
            yield from _duplicate_keys(value_node, (*path, key))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _duplicate_keys(item, (*path, i))


def _nearest_line(index: dict[Path_, int], path: Path_) -> int | None:
    while True:
        if path in index:
            return index[path]
        if not path:
            return None
        path = path[:-1]


def _pydantic_problems(err: ValidationError) -> Iterable[Problem]:
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p in _TAGS))
        kind = e["type"]
        if kind == "extra_forbidden":
            msg = "unknown key: remove it or check its spelling"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "union_tag_invalid":
            msg = f"kind must be one of: {e.get('ctx', {}).get('expected_tags', '')}"
        elif kind in ("decimal_parsing", "decimal_type"):
            msg = "not a number: write it like 5.00 (a point, no comma), in quotes"
        else:
            msg = e["msg"].removeprefix("Value error, ")
        # A secret's value is never echoed, not even a malformed one.
        shown = kind != "missing" and (not loc or loc[-1] not in _SECRET_KEYS)
        yield Problem(loc, msg, e.get("input"), shown)


# Keys whose values are secrets: a problem with one names the key only.
_SECRET_KEYS = {"key", "password"}


# Discriminator tags pydantic puts into error locations; they are not keys.
_TAGS = {"mbus", "modbus", "wmbus", "lora"}


def _cross_problems(config: Config) -> Iterable[Problem]:
    """Check the references between sections that pydantic cannot see."""
    bus_kinds = {b.id: b.kind for b in config.buses}
    accounts = {a.id for a in config.accounts}
    tariffs = {t.id for t in config.tariffs}
    meters = {m.id: m for m in config.meters}

    for section, items in (
        ("buses", config.buses),
        ("meters", config.meters),
        ("units", config.units),
        ("accounts", config.accounts),
        ("tariffs", config.tariffs),
    ):
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.id in seen:
                yield Problem((section, i, "id"), "duplicate id", item.id, True)
            seen.add(item.id)

    def one_of(names: Iterable[str]) -> str:
        listed = ", ".join(sorted(names))
        return f"expected one of: {listed}" if listed else "none is configured"

    addresses: dict[tuple[str, int], str] = {}
    wireless_ids: dict[tuple[str, str], str] = {}
    for i, m in enumerate(config.meters):
        if m.bus not in bus_kinds:
            yield Problem(
                (("meters", i, "bus")), f"no such bus; {one_of(bus_kinds)}", m.bus, True
            )
        if m.account not in accounts:
            yield Problem(
                ("meters", i, "account"),
                f"no such account; {one_of(accounts)}",
                m.account,
                True,
            )
        if bus_kinds.get(m.bus) == "mbus":
            if m.address is None and m.secondary_id is None:
                yield Problem(
                    ("meters", i),
                    "an M-Bus meter needs `address` "
                    "(0-250) or `secondary_id` (8 hex digits)",
                )
            if m.address is not None:
                key = (m.bus, m.address)
                if key in addresses:
                    yield Problem(
                        ("meters", i, "address"),
                        f"address already used by meter {addresses[key]}",
                        m.address,
                        True,
                    )
                addresses[key] = m.id
        yield from _wireless_meter_problems(i, m, bus_kinds.get(m.bus), wireless_ids)

    unit_addresses: dict[tuple[str, int], str] = {}
    for i, u in enumerate(config.units):
        if bus_kinds.get(u.bus) is None:
            yield Problem(
                ("units", i, "bus"), f"no such bus; {one_of(bus_kinds)}", u.bus, True
            )
        elif bus_kinds[u.bus] in ("mbus", "wmbus"):
            yield Problem(
                ("units", i, "bus"),
                "dispensing units sit on a modbus or lora bus, not M-Bus",
                u.bus,
                True,
            )
        yield from _unit_link_problems(i, u, bus_kinds.get(u.bus))
        key = (u.bus, u.address)
        if key in unit_addresses:
            yield Problem(
                ("units", i, "address"),
                f"address already used by unit {unit_addresses[key]}",
                u.address,
                True,
            )
        unit_addresses[key] = u.id
        for j, mid in enumerate(u.meters):
            if mid not in meters:
                yield Problem(
                    ("units", i, "meters", j),
                    f"no such meter; {one_of(meters)}",
                    mid,
                    True,
                )

    digits = minor_digits(config.site.currency)
    for i, a in enumerate(config.accounts):
        if a.tariff is not None and a.tariff not in tariffs:
            yield Problem(
                ("accounts", i, "tariff"),
                f"no such tariff; {one_of(tariffs)}",
                a.tariff,
                True,
            )
        if a.tariff is None and len(tariffs) > 1:
            yield Problem(
                ("accounts", i),
                f"several tariffs exist: name one with `tariff:` ({one_of(tariffs)})",
            )
        for field_name in ("credit_line", "low_balance"):
            amount = getattr(a, field_name)
            if int(amount.as_tuple().exponent) < -digits:
                yield Problem(
                    ("accounts", i, field_name),
                    f"{config.site.currency} has {digits} decimal places",
                    amount,
                    True,
                )

    yield from _credit_problems(config)
    yield from _prepaid_rule_problems(config)
    yield from _wiring_problems(config)

    for i, t in enumerate(config.tariffs):
        for medium, price in t.prices.items():
            from gateway.units import UnitError, factor_to_canonical

            try:
                factor_to_canonical(price.per, medium)
            except UnitError as err:
                yield Problem(
                    ("tariffs", i, "prices", medium.value, "per"),
                    str(err),
                    price.per,
                    True,
                )
    yield from _tariff_problems(config)


def _wiring_problems(config: Config) -> Iterable[Problem]:
    """Catch wiring that would bill or switch the wrong thing: a meter on a bus
    that cannot read it, a medium nobody prices, a unit switching two flats,
    two buses on one serial port."""
    kinds = {b.id: b.kind for b in config.buses}
    meters = {m.id: m for m in config.meters}
    tariffs = {t.id: t for t in config.tariffs}
    only = config.tariffs[0].id if len(config.tariffs) == 1 else None
    tariff_of = {a.id: a.tariff or only for a in config.accounts}

    for i, m in enumerate(config.meters):
        if kinds.get(m.bus) in ("modbus", "lora"):
            yield Problem(
                ("meters", i, "bus"),
                f"bus {m.bus} is a {kinds[m.bus]} bus for dispensing units; meters "
                "are read on an mbus or wmbus bus",
                m.bus,
                True,
            )
        tariff = tariffs.get(tariff_of.get(m.account) or "")
        if tariff is not None and not any(
            m.medium in prices
            for prices in [tariff.prices, *(v.prices for v in tariff.versions)]
        ):
            yield Problem(
                ("meters", i, "medium"),
                f"tariff {tariff.id} (of account {m.account}) has no price for "
                f"{m.medium.value}: add tariffs[{tariff.id}].prices.{m.medium.value}",
                m.medium.value,
                True,
            )

    for i, u in enumerate(config.units):
        owners = sorted({meters[mid].account for mid in u.meters if mid in meters})
        if len(owners) > 1:
            yield Problem(
                ("units", i, "meters"),
                f"these meters belong to accounts {', '.join(owners)}; one unit "
                "switches one flat's supply",
            )

    ports: dict[str, str] = {}
    for i, b in enumerate(config.buses):
        port = getattr(b, "port", None)
        if not port or port == "/dev/null":  # /dev/null: a bus not yet cabled
            continue
        if port in ports:
            yield Problem(
                ("buses", i, "port"),
                f"bus {ports[port]} already uses this port; one serial port "
                "carries one bus",
                port,
                True,
            )
        ports[port] = b.id


def _tariff_problems(config: Config) -> Iterable[Problem]:
    """Check bands, blocks, version order and version units of every tariff."""
    from gateway.config.tariffs import tariff_problems

    for path, message, value in tariff_problems(config.tariffs):
        yield Problem(path, message, value, value is not None)


def _wireless_meter_problems(
    i: int, meter: Meter, kind: str | None, seen: dict[tuple[str, str], str]
) -> Iterable[Problem]:
    """Check what a wireless M-Bus meter needs: its radio id, a key only there."""
    if kind != "wmbus":
        if meter.key is not None:
            yield Problem(
                ("meters", i, "key"),
                "a key is used only for meters on a wmbus bus; remove it",
            )
        return
    if meter.secondary_id is None:
        yield Problem(
            ("meters", i),
            "a wireless M-Bus meter needs `secondary_id`: the 8-digit id printed"
            " on the meter, which it sends in every telegram",
        )
        return
    radio_id = meter.secondary_id[:8].lower()
    if (meter.bus, radio_id) in seen:
        yield Problem(
            ("meters", i, "secondary_id"),
            f"id already used by meter {seen[(meter.bus, radio_id)]}",
            meter.secondary_id,
            True,
        )
    seen[(meter.bus, radio_id)] = meter.id


def _unit_link_problems(i: int, unit: Unit, kind: str | None) -> Iterable[Problem]:
    """Check that a unit has a key exactly when its bus is a lora bus."""
    if kind == "lora" and unit.key is None:
        yield Problem(
            ("units", i),
            "a LoRa unit needs `key`: the unit's AES-128 key as 32 hex digits,"
            " the one written into it at installation",
        )
    if kind == "modbus" and unit.key is not None:
        yield Problem(("units", i, "key"), "a key is used only for units on a lora bus")


def _credit_problems(config: Config) -> Iterable[Problem]:
    """Check credit amounts against the currency, and every resident's contact.

    A contact can hold a password or an API token, so its problems never
    carry the value itself.
    """
    from gateway.config.credit import contact_problem, contacts_of

    digits = minor_digits(config.site.currency)
    email_via = config.credit.notify.email_via
    amounts: list[tuple[Path_, Decimal]] = [
        (("credit", "unsynced_debt_floor"), config.credit.unsynced_debt_floor)
    ]
    for prefix, rules in [(("credit", "defaults"), config.credit.defaults)] + [
        (("accounts", i, "credit"), a.credit)
        for i, a in enumerate(config.accounts)
        if a.credit is not None
    ]:
        if rules.max_balance is not None:
            amounts.append(((*prefix, "max_balance"), rules.max_balance))
        if rules.emergency is not None:
            amounts.append(((*prefix, "emergency", "amount"), rules.emergency.amount))
        if rules.warnings is not None:
            for j, level in enumerate(rules.warnings.remaining_below):
                amounts.append(((*prefix, "warnings", "remaining_below", j), level))
    for path, amount in amounts:
        if int(amount.as_tuple().exponent) < -digits:
            yield Problem(
                path,
                f"{config.site.currency} has {digits} decimal places",
                amount,
                True,
            )
    if email_via is not None and contact_problem(email_via, None) is not None:
        yield Problem(
            ("credit", "notify", "email_via"),
            "is not an apprise mailto:// or mailtos:// URL",
        )
    for i, a in enumerate(config.accounts):
        for j, contact in enumerate(contacts_of(a.contact)):
            problem = contact_problem(contact, email_via)
            if problem is not None:
                yield Problem(("accounts", i, "contact", j), f"contact {problem}")


def _prepaid_rule_problems(config: Config) -> Iterable[Problem]:
    """Check the budget and laundry sections' references to accounts and units."""
    from gateway.config import budgets, laundry

    for module in (budgets, laundry):
        for path, message, value in module.problems(config):
            yield Problem(path, message, value, True)


def _format(file: Path, index: dict[Path_, int], p: Problem) -> str:
    line = _nearest_line(index, p.path)
    where = f"{file}:{line}" if line else str(file)
    value = f" = {p.value!r}" if p.has_value and not isinstance(p.value, dict) else ""
    return f"{where}: {dotted(p.path)}{value}: {p.message}"


def load_config(file: Path | str) -> Config:
    """Load and validate a configuration file, or raise ConfigError."""
    file = Path(file)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(file, [f"{file}: cannot read: {err.strerror}"]) from None
    return parse_config(text, file)


def parse_config(text: str, file: Path) -> Config:
    """Validate YAML text; `file` is only used in messages."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data: Any = yaml.safe_load(text)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(
            file, [f"{file}{line}: not valid YAML: {err.problem}"]
        ) from None
    if not isinstance(data, dict) or node is None:
        raise ConfigError(file, [f"{file}: expected a mapping with site:, buses:, ..."])
    index = _line_index(node)
    duplicates = list(_duplicate_keys(node))

    try:
        config = Config.model_validate(data)
    except ValidationError as err:
        problems = duplicates + list(_pydantic_problems(err))
        raise ConfigError(file, [_format(file, index, p) for p in problems]) from None

    problems = duplicates + list(_cross_problems(config))
    if problems:
        raise ConfigError(file, [_format(file, index, p) for p in problems])
    if not config.state_dir.is_absolute():
        config = config.model_copy(
            update={"state_dir": (file.parent / config.state_dir).resolve()}
        )
    return config
