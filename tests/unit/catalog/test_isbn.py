import pytest

from bookvault.catalog.isbn import InvalidISBN, isbn13_check_digit, normalize_isbn


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("9780306406157", "9780306406157"),
        ("978-0-306-40615-7", "9780306406157"),
        ("978 0 306 40615 7", "9780306406157"),
        ("0306406152", "9780306406157"),  # the ISBN-10 of the same book is the same book
        ("0-8044-2957-x", "9780804429573"),  # X check digit, any case
        ("9791034308736", "9791034308736"),
    ],
)
def test_valid_isbns_are_stored_as_13_digits(raw: str, stored: str) -> None:
    assert normalize_isbn(raw) == stored


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("9780306406158", "ISBN-13 check digit"),
        ("0306406153", "ISBN-10 check digit"),
        ("1234567890123", "starting 978 or 979"),  # 13 digits but not a Bookland prefix
        ("97803064061", "10 digits"),
        ("X306406152", "10 digits"),  # X only as the last character
        ("".join(chr(0xFF10 + int(d)) for d in "9780306406157"), "10 digits"),  # full-width digits
        ("", "10 digits"),
    ],
)
def test_invalid_isbns_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidISBN, match=reason):
        normalize_isbn(raw)


def test_check_digit_completes_twelve_digits() -> None:
    assert isbn13_check_digit("978030640615") == "7"
    assert isbn13_check_digit("979103430873") == "6"
