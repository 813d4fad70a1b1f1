"""Opt-in Jinja filters that spell out Russian numbers, money, dates and phones for TTS.

A TTS engine reads ``1500.50 ₽`` or ``05.12.2026`` unpredictably (and usually in the
nominative case), and reads ``89123456789`` as one huge number. These filters turn
such values into the words a person would say, in the grammatical form the phrase needs.

Numbers are spelled by ``num2words`` (the only maintained library here with Russian
cases and genders); noun agreement (рубль/рубля/рублей) and genitive month names come
from ``pytils``. Nothing here declines a numeral by hand. See ``docs/filters.md``.

Every filter raises ``ValueError`` naming itself and the offending value, because the
renderer turns any exception into that record's failure reason: a phrase is either
right or not synthesized at all.

Register with ``env.filters.update(FILTERS)``.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from num2words import num2words
from pytils.dt import ru_strftime
from pytils.numeral import choose_plural

__all__ = ["FILTERS", "date_ru", "phone", "rubles", "words"]

# Public names of the filter arguments mapped to num2words' Russian codes. Only the
# Latin codes are used: num2words 0.5.14 maps its Cyrillic gender aliases ('ж', 'с')
# to the masculine column, so passing them through would silently give wrong forms.
_CASES = {"nom": "n", "gen": "g", "dat": "d", "acc": "a", "ins": "i", "prep": "p"}
_GENDERS = {"m": "m", "f": "f", "n": "n"}

_RUBLE_FORMS = ("рубль", "рубля", "рублей")
_KOPECK_FORMS = ("копейка", "копейки", "копеек")

# Optional sign, digits, optional fraction after '.' or ',' (the Russian decimal comma).
_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}(?:[T ].*)?")
_RU_DATE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
# What people put around phone digits; anything else (letters, "доб.") is refused.
_PHONE_CHARS = re.compile(r"[\d\s()+\-.]+")


def _fail(filter_name: str, value: Any, reason: str) -> ValueError:
    # One message shape for every filter: the renderer shows it as the record's error.
    return ValueError(f"{filter_name}: {reason}: {value!r}")


def _to_decimal(value: Any, filter_name: str) -> Decimal:
    """Convert a filter input to a finite Decimal without float arithmetic.

    Args:
        value: int, Decimal, float or a numeric string such as ``"15 000"`` or ``"1 500,50"``.
        filter_name: Name of the calling filter, for the error message.

    Returns:
        The exact decimal value.

    Raises:
        ValueError: For bools, None, non-numeric strings, NaN and infinities.
    """
    # bool is an int subclass; True spoken as "один" would be a silent template bug.
    if isinstance(value, bool) or value is None:
        raise _fail(filter_name, value, "not a number")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        # JSON/JSONL registries are parsed with floats. str() gives the shortest repr
        # that round-trips, i.e. the digits that were written in the file (1500.5, not
        # 1500.4999999999999...), and from there on everything is Decimal.
        result = Decimal(str(value))
    elif isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        # Registries store "15 000" with spaces, NBSP or narrow NBSP as group separators;
        # str.split() without arguments drops every Unicode space.
        text = "".join(value.split())
        if not _NUMBER.fullmatch(text):
            raise _fail(filter_name, value, "not a number")
        result = Decimal(text.replace(",", "."))
    else:
        raise _fail(filter_name, value, f"unsupported type {type(value).__name__}")
    if not result.is_finite():
        raise _fail(filter_name, value, "not a finite number")
    return result


def _fraction_digits(value: Any) -> int:
    """Count the digits written after the decimal separator of a numeric string (0 if none)."""
    if not isinstance(value, str):
        return 0
    text = "".join(value.split()).replace(",", ".")
    return len(text.partition(".")[2])


def _spell(n: int, case: str, gender: str, animate: bool) -> str:
    """Spell an integer with num2words, working around its Russian gender/animacy bugs.

    num2words 0.5.14 applies the requested gender and animacy to every 3-digit group,
    so it says "одна миллион одна" (f) and, in the animate accusative, "двух тысячи".
    But "миллион"/"миллиард" are masculine inanimate nouns and "тысяча" is feminine
    inanimate whatever is being counted; only the last group agrees with the counted
    noun. So the part above the last group is spelled as masculine inanimate (num2words
    itself forces the thousands group to feminine) and the last group as requested.
    Case still applies to every group, as Russian requires ("одного миллиона одной").

    Args:
        n: Non-negative integer.
        case: num2words case code.
        gender: num2words gender code.
        animate: Animate accusative for the last group.

    Returns:
        The number in words.
    """
    high, low = n - n % 1000, n % 1000
    parts = []
    if high:
        parts.append(num2words(high, lang="ru", case=case, gender="m", animate=False))
    if low or not high:
        parts.append(num2words(low, lang="ru", case=case, gender=gender, animate=animate))
    return " ".join(parts)


def words(value: Any, gender: str = "m", case: str = "nom", animate: bool = False) -> str:
    """Spell an integer in Russian words in the given gender and grammatical case.

    Examples: ``21|words("f")`` → "двадцать одна"; ``21|words("f", "gen")`` →
    "двадцати одной"; ``1000001|words`` → "один миллион один".

    Args:
        value: int, integral Decimal/float, or a numeric string ("15 000", "15000",
            "15000.00"). Spaces, NBSP and narrow NBSP are ignored.
        gender: Gender of the counted noun: "m", "f" or "n".
        case: "nom", "gen", "dat", "acc", "ins" or "prep".
        animate: Only matters in the accusative: False (default) gives "один/два"
            as for things ("на два дня"); True gives "одного/двух" as for people.

    Returns:
        The number in words; negatives start with "минус".

    Raises:
        ValueError: For non-numbers, fractions, unknown gender/case, or numbers too
            large for num2words.
    """
    if gender not in _GENDERS:
        raise _fail("words", gender, f"gender must be one of {', '.join(_GENDERS)}")
    if case not in _CASES:
        raise _fail("words", case, f"case must be one of {', '.join(_CASES)}")
    number = _to_decimal(value, "words")
    # "1,000" or "1.000" may be a thousands separator or a decimal one; reading it
    # as 1 would be a wrong phrase, so only an all-zero cents-style tail is accepted.
    if number != number.to_integral_value() or _fraction_digits(value) > 2:
        raise _fail("words", value, "not a whole number")
    n = int(number)
    try:
        spelled = _spell(abs(n), _CASES[case], _GENDERS[gender], animate)
    except (KeyError, IndexError, OverflowError):
        # num2words has no names past its largest power of a thousand.
        raise _fail("words", value, "number too large to spell") from None
    return f"минус {spelled}" if n < 0 else spelled


def rubles(value: Any) -> str:
    """Spell an amount of money in roubles and kopecks.

    Whole amounts have no kopeck part ("пятнадцать тысяч рублей"); amounts under one
    rouble keep the zero ("ноль рублей пятьдесят копеек") so the phrase always names
    roubles. Integers are roubles, never kopecks: ``150|rubles`` → "сто пятьдесят рублей".

    Args:
        value: int, Decimal, float (converted via ``str()``, never float arithmetic) or a
            string like "1500.50", "1 500,50", "15000".

    Returns:
        E.g. "одна тысяча пятьсот рублей пятьдесят копеек".

    Raises:
        ValueError: For non-numbers, negatives, or more than two fractional digits
            (no silent rounding of money; "1,500" is refused as ambiguous).
    """
    amount = _to_decimal(value, "rubles")
    if amount < 0:
        raise _fail("rubles", value, "negative amount")
    cents = amount * 100
    if cents != cents.to_integral_value() or _fraction_digits(value) > 2:
        raise _fail("rubles", value, "more than two digits of kopecks")
    whole, kopecks = divmod(int(cents), 100)
    try:
        # Rouble is masculine, kopeck feminine: "одна копейка", "две копейки".
        parts = [_spell(whole, "n", "m", False), choose_plural(whole, _RUBLE_FORMS)]
        if kopecks:
            parts += [_spell(kopecks, "n", "f", False), choose_plural(kopecks, _KOPECK_FORMS)]
    except (KeyError, IndexError, OverflowError):
        raise _fail("rubles", value, "amount too large to spell") from None
    return " ".join(parts)


def _to_date(value: Any) -> _dt.date:
    """Parse a date, datetime, ISO string or Russian DD.MM.YYYY string into a date."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    if not isinstance(value, str):
        raise _fail("date_ru", value, "not a date")
    text = value.strip()
    try:
        if m := _RU_DATE.fullmatch(text):
            day, month, year = (int(g) for g in m.groups())
            return _dt.date(year, month, day)
        if _ISO_DATE.fullmatch(text):
            # XLSX registries store dates as isoformat(), which may carry a time part.
            return _dt.datetime.fromisoformat(text).date()
    except ValueError:
        raise _fail("date_ru", value, "no such date") from None
    raise _fail("date_ru", value, "expected YYYY-MM-DD or DD.MM.YYYY")


def date_ru(value: Any, words: bool = False) -> str:
    """Spell a date with the month in the genitive, as Russians say it.

    Args:
        value: date, datetime (the time is ignored), an ISO string "2026-12-05"
            (optionally with a time part) or a Russian "05.12.2026" / "5.12.2026".
        words: Also spell day and year as ordinals: "пятое декабря две тысячи
            двадцать шестого года".

    Returns:
        E.g. "5 декабря 2026 года" (no leading zero on the day).

    Raises:
        ValueError: For unparseable strings, impossible dates, other types.
    """
    date = _to_date(value)
    # pytils' genitive ("inflected") month names: "декабря", "марта".
    month = ru_strftime("%B", date, inflected=True)
    if not words:
        return f"{date.day} {month} {date.year} года"
    # "пятое" agrees with the implied neuter "число"; the year is genitive ("...года").
    day = num2words(date.day, lang="ru", to="ordinal", gender="n")
    year = num2words(date.year, lang="ru", to="ordinal", case="g")
    return f"{day} {month} {year} года"


def _say_group(group: str) -> str:
    # Leading zeros are said one by one ("05" → "ноль пять", "00" → "ноль ноль"),
    # as people dictate numbers; the rest of the group as one number.
    stripped = group.lstrip("0")
    zeros = ["ноль"] * (len(group) - len(stripped))
    return " ".join(zeros + ([num2words(int(stripped), lang="ru")] if stripped else []))


def phone(value: Any, words: bool = False) -> str:
    """Group a Russian phone number so that TTS reads it in short groups.

    "+7 (912) 345-67-89", "89123456789", "79123456789" and the 10-digit "9123456789"
    all give "+7 912 345 67 89". A leading 8 is the domestic trunk prefix of +7.

    Args:
        value: The number as a string (or int); only digits, spaces, "+", "(", ")",
            "-" and "." are allowed.
        words: Spell each group: "плюс семь, девятьсот двенадцать, триста сорок пять,
            шестьдесят семь, восемьдесят девять" (commas give TTS a pause per group).

    Returns:
        The grouped number.

    Raises:
        ValueError: For other characters, or digits that are not a +7 number.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _fail("phone", value, "not a phone number")
    text = str(value).strip()
    if not _PHONE_CHARS.fullmatch(text) or text.count("+") > int(text.startswith("+")):
        raise _fail("phone", value, "not a phone number")
    digits = re.sub(r"\D", "", text)
    if text.startswith("+"):
        # After "+" the first digit is the country code: "+8..." is not Russian.
        ok = len(digits) == 11 and digits[0] == "7"
    elif len(digits) == 11:
        ok = digits[0] in "78"
    else:
        ok = len(digits) == 10
    if not ok:
        raise _fail("phone", value, "expected a +7 number with 10 digits after the country code")
    national = digits[-10:]
    groups = [national[:3], national[3:6], national[6:8], national[8:]]
    if not words:
        return "+7 " + " ".join(groups)
    return ", ".join(["плюс семь"] + [_say_group(g) for g in groups])


FILTERS: dict[str, Callable[..., str]] = {
    "words": words,
    "rubles": rubles,
    "date_ru": date_ru,
    "phone": phone,
}
