"""The one bytes → text helper (dashboard/text.py)."""

from dashboard.text import as_str


def test_bytes_are_utf8_text_and_the_rest_goes_through_str() -> None:
    assert as_str(b"lq:incidents") == "lq:incidents"
    assert as_str("联勤".encode()) == "联勤"
    assert as_str("1-0") == "1-0"
    assert as_str(7) == "7"


def test_invalid_bytes_raise_unless_told_how_to_replace_them() -> None:
    try:
        as_str(b"\xff")
    except UnicodeDecodeError:
        pass
    else:
        raise AssertionError("strict by default")
    assert as_str(b"a\xff", "replace") == "a\ufffd"
    assert as_str(b"a\xff", "backslashreplace") == "a\\xff"
