"""Normalizers: one function per kind of value, pure, no database.

Each returns the normalized value or raises `NormalizationError` naming the
problem; a value that is stored but doubtful (a phone number that is possible
but not valid for its region) comes back with a warning text.
"""

import re
from datetime import datetime, timezone as dt_timezone

import phonenumbers
import pycountry
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.dateparse import parse_datetime

from .fields import ADDRESS_TYPES

NAME_MAX_LENGTH = 200
ADDRESS_LINE_MAX_LENGTH = 200
EMAIL_MAX_LENGTH = 254
ADDRESS_PARTS = ("line1", "line2", "postal_code", "city", "country")

_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_email_validator = EmailValidator()

# Names pycountry does not know but senders use; keys are casefolded.
COUNTRY_ALIASES = {
    "deutschland": "DE", "österreich": "AT", "oesterreich": "AT", "schweiz": "CH", "suisse": "CH",
    "svizzera": "CH", "uk": "GB", "great britain": "GB", "england": "GB", "usa": "US", "russia": "RU",
    "frankreich": "FR", "niederlande": "NL", "italien": "IT", "spanien": "ES", "polen": "PL",
}


class NormalizationError(ValueError):
    """The value cannot be normalized; the message says why (without repeating the value)."""


def _text(value, *, what: str) -> str | None:
    """A string trimmed and with inner whitespace collapsed; "" and None mean "no value"."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise NormalizationError(f"{what} must be a string, not {type(value).__name__}")
    if _CONTROL.search(value):
        raise NormalizationError(f"{what} contains control characters")
    text = _WHITESPACE.sub(" ", value).strip()
    return text or None


def normalize_email(value) -> str | None:
    """Trim, lower-case, check the syntax: `" Person@Example.com "` -> `person@example.com`."""
    text = _text(value, what="email")
    if text is None:
        return None
    text = text.lower()
    if len(text) > EMAIL_MAX_LENGTH:
        raise NormalizationError(f"email is longer than {EMAIL_MAX_LENGTH} characters")
    try:
        _email_validator(text)
    except ValidationError:
        raise NormalizationError("not a valid email address") from None
    return text


def normalize_phone(value, *, region: str) -> tuple[str | None, str | None]:
    """E.164 with the source's default region; returns (number, warning or None).

    Impossible numbers are rejected; possible but not valid ones (the seed's
    `0049 151 234567`) are kept with a warning (see PITFALLS.md).
    """
    text = _text(value, what="phone")
    if text is None:
        return None, None
    region = (region or "").upper() or None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        if region is None and not text.startswith(("+", "00")):
            raise NormalizationError("not a phone number (no default region to read a national number)") from None
        raise NormalizationError("not a phone number") from None
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise NormalizationError("not a possible phone number (wrong length)")
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if not phonenumbers.is_valid_number(number):
        where = phonenumbers.region_code_for_number(number) or "its country code"
        return e164, f"possible but not a valid number for {where}; stored as is"
    return e164, None


def normalize_country(value) -> str | None:
    """ISO 3166-1 alpha-2 from alpha-2, alpha-3, numeric, English name or a common alias."""
    text = _text(value, what="country")
    if text is None:
        return None
    alias = COUNTRY_ALIASES.get(text.casefold())
    if alias:
        return alias
    try:
        return pycountry.countries.lookup(text).alpha_2
    except LookupError:
        raise NormalizationError("unknown country (expected ISO 3166-1 code or English name)") from None


def normalize_locale(value) -> str | None:
    """BCP 47 language[-Script][-REGION]: `de_DE` -> `de-DE`, `DE-de` -> `de-DE`, `en` -> `en`."""
    text = _text(value, what="locale")
    if text is None:
        return None
    parts = re.split(r"[-_]", text)
    language, rest = parts[0].lower(), parts[1:]
    if not re.fullmatch(r"[a-z]{2,3}", language) or not (
        pycountry.languages.get(alpha_2=language) or pycountry.languages.get(alpha_3=language)
    ):
        raise NormalizationError("unknown language in locale (expected e.g. de-DE)")
    result = [language]
    if rest and re.fullmatch(r"[A-Za-z]{4}", rest[0]):
        result.append(rest.pop(0).title())
    if rest and re.fullmatch(r"[A-Za-z]{2}|\d{3}", rest[0]):
        region = rest.pop(0).upper()
        if region.isalpha() and not pycountry.countries.get(alpha_2=region):
            raise NormalizationError("unknown region in locale (expected e.g. de-DE)")
        result.append(region)
    if rest:
        raise NormalizationError("locale has unexpected parts (expected language[-Script][-REGION])")
    return "-".join(result)


def normalize_name(value, *, max_length: int = NAME_MAX_LENGTH) -> str | None:
    """Trim and collapse whitespace; at most `max_length` characters."""
    text = _text(value, what="name")
    if text is not None and len(text) > max_length:
        raise NormalizationError(f"longer than {max_length} characters")
    return text


def normalize_address(value) -> dict:
    """`{type, line1, line2, postal_code, city, country}` with every key present (None when empty)."""
    if not isinstance(value, dict):
        raise NormalizationError(f"an address must be an object, not {type(value).__name__}")
    address_type = value.get("type")
    if address_type not in ADDRESS_TYPES:
        raise NormalizationError(f"address type must be {' or '.join(ADDRESS_TYPES)}")
    unknown = set(value) - {"type", *ADDRESS_PARTS}
    if unknown:
        raise NormalizationError(f"unknown address keys: {', '.join(sorted(unknown))}")
    result = {"type": address_type}
    for part in ("line1", "line2", "postal_code", "city"):
        raw = value.get(part)
        if part == "postal_code" and isinstance(raw, int) and not isinstance(raw, bool):
            raw = str(raw)
        try:
            result[part] = normalize_name(raw, max_length=ADDRESS_LINE_MAX_LENGTH)
        except NormalizationError as error:
            raise NormalizationError(f"{part}: {str(error).replace('name', part)}") from None
    try:
        result["country"] = normalize_country(value.get("country"))
    except NormalizationError as error:
        raise NormalizationError(f"country: {error}") from None
    return result


def normalize_bool(value) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise NormalizationError(f"must be true, false or null, not {type(value).__name__}")


def normalize_datetime(value) -> tuple[datetime | None, str | None]:
    """An ISO 8601 timestamp; a naive one is read as UTC with a warning."""
    if value is None:
        return None, None
    if not isinstance(value, str):
        raise NormalizationError(f"must be an ISO 8601 timestamp string, not {type(value).__name__}")
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise NormalizationError("not an ISO 8601 timestamp")
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=dt_timezone.utc), "timestamp without time zone; read as UTC"
    return parsed.astimezone(dt_timezone.utc), None


def normalize_external_id(value) -> str:
    """An id in a source system, as a string: numbers and strings accepted."""
    if isinstance(value, bool) or value is None:
        raise NormalizationError("an external id must be a string or an integer")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if not isinstance(value, str):
        raise NormalizationError(f"an external id must be a string or an integer, not {type(value).__name__}")
    text = value.strip()
    if not text or len(text) > 200 or _CONTROL.search(text):
        raise NormalizationError("an external id must be 1 to 200 printable characters")
    return text
