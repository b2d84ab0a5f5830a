import pytest

from canonical import normalizers as n


@pytest.mark.parametrize("raw, expected", [
    ("Person@Example.com ", "person@example.com"),
    ("  a.b+tag@Sub.Example.ORG", "a.b+tag@sub.example.org"),
    ("", None),
    (None, None),
])
def test_email(raw, expected):
    assert n.normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["not-an-email", "a@", "a b@example.com", 42, "a@example.com\x00"])
def test_email_rejected(raw):
    with pytest.raises(n.NormalizationError):
        n.normalize_email(raw)


@pytest.mark.parametrize("raw, region, expected, warns", [
    ("0049 151 234567", "DE", "+49151234567", True),  # the seed's sample: possible, not valid
    ("+49 (0)151 234567", "DE", "+49151234567", True),
    ("0151 234567", "DE", "+49151234567", True),
    ("0151 234567", "de", "+49151234567", True),  # region upper-cased
    ("+49 151 23456789", "AT", "+4915123456789", False),  # international form ignores the region
    ("0151 23456789", "DE", "+4915123456789", False),
    ("0664 1234567", "AT", "+436641234567", False),  # the same national string, other region
    ("", "DE", None, False),
])
def test_phone(raw, region, expected, warns):
    number, warning = n.normalize_phone(raw, region=region)
    assert number == expected
    assert bool(warning) is warns


@pytest.mark.parametrize("raw", ["12", "abc", "+49 30 123456789012345", 4915123456789])
def test_phone_rejected(raw):
    with pytest.raises(n.NormalizationError):
        n.normalize_phone(raw, region="DE")


@pytest.mark.parametrize("raw, expected", [
    ("DE", "DE"), ("de", "DE"), ("DEU", "DE"), ("Germany", "DE"), ("germany", "DE"),
    ("Deutschland", "DE"), ("United States", "US"), ("AUT", "AT"), ("Bolivia", "BO"), (None, None),
])
def test_country(raw, expected):
    assert n.normalize_country(raw) == expected


@pytest.mark.parametrize("raw", ["Narnia", "XK", "ZZ", 49])
def test_country_rejected(raw):
    with pytest.raises(n.NormalizationError):
        n.normalize_country(raw)


@pytest.mark.parametrize("raw, expected", [
    ("de_DE", "de-DE"), ("DE-de", "de-DE"), ("en", "en"), ("EN_us", "en-US"),
    ("zh-hant-tw", "zh-Hant-TW"), ("es-419", "es-419"), (" fr_CH ", "fr-CH"),
])
def test_locale(raw, expected):
    assert n.normalize_locale(raw) == expected


@pytest.mark.parametrize("raw", ["xx", "de_XX", "garbage!", "de-DE-foo-bar", "d", 7])
def test_locale_rejected(raw):
    with pytest.raises(n.NormalizationError):
        n.normalize_locale(raw)


def test_name():
    assert n.normalize_name("  Max \t  Peter ") == "Max Peter"
    assert n.normalize_name("   ") is None
    with pytest.raises(n.NormalizationError, match="longer than 200"):
        n.normalize_name("x" * 201)
    with pytest.raises(n.NormalizationError, match="control"):
        n.normalize_name("Max\x00")


def test_address():
    assert n.normalize_address({"type": "billing", "line1": " Hauptstr.  1 ", "postal_code": 10115,
                                "city": "Berlin", "country": "Germany"}) == {
        "type": "billing", "line1": "Hauptstr. 1", "line2": None, "postal_code": "10115", "city": "Berlin",
        "country": "DE"}
    with pytest.raises(n.NormalizationError, match="billing or shipping"):
        n.normalize_address({"type": "home"})
    with pytest.raises(n.NormalizationError, match="country"):
        n.normalize_address({"type": "billing", "country": "Narnia"})


def test_external_id():
    assert n.normalize_external_id(9981) == "9981"
    assert n.normalize_external_id(" C-17 ") == "C-17"
    for bad in (True, None, "", 1.5, {"x": 1}):
        with pytest.raises(n.NormalizationError):
            n.normalize_external_id(bad)
