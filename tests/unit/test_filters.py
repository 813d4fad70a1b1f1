"""Russian TTS Jinja filters of precache.filters: numbers, money, dates, phones."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pytils import numeral

from precache.filters import FILTERS, date_ru, phone, rubles, words
from precache.rendering import make_environment

NBSP = "\u00a0"
NNBSP = "\u202f"


# --- words -------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (0, "ноль"),
    (1, "один"),
    (11, "одиннадцать"),
    (12, "двенадцать"),
    (13, "тринадцать"),
    (14, "четырнадцать"),
    (21, "двадцать один"),
    (22, "двадцать два"),
    (111, "сто одиннадцать"),
    (1000, "одна тысяча"),
    (21000, "двадцать одна тысяча"),
    (1000001, "один миллион один"),
    (2000000, "два миллиона"),
    (-5, "минус пять"),
])
def test_words_nominative_masculine(value, expected):
    assert words(value) == expected


@pytest.mark.parametrize(("value", "gender", "expected"), [
    (1, "f", "одна"),
    (1, "n", "одно"),
    (2, "f", "две"),
    (21, "f", "двадцать одна"),
    (21, "n", "двадцать одно"),
    (22, "f", "двадцать две"),
    (11, "f", "одиннадцать"),
    # num2words alone says "одна миллион одна": millions stay masculine.
    (1000001, "f", "один миллион одна"),
    (1000001, "n", "один миллион одно"),
    (2000002, "f", "два миллиона две"),
    (1001000, "f", "один миллион одна тысяча"),
])
def test_words_gender(value, gender, expected):
    assert words(value, gender) == expected


@pytest.mark.parametrize(("value", "gender", "case", "expected"), [
    (21, "f", "gen", "двадцати одной"),
    (21, "f", "dat", "двадцати одной"),
    (21, "m", "gen", "двадцати одного"),
    (21, "m", "dat", "двадцати одному"),
    (21, "f", "acc", "двадцать одну"),
    (21, "f", "ins", "двадцатью одной"),
    (21, "m", "prep", "двадцати одном"),
    (1, "n", "dat", "одному"),
    (2, "f", "gen", "двух"),
    (12, "m", "gen", "двенадцати"),
    (14, "m", "ins", "четырнадцатью"),
    (0, "m", "gen", "ноля"),
    (5000, "m", "dat", "пяти тысячам"),
    (15000, "m", "gen", "пятнадцати тысяч"),
    (1000001, "m", "gen", "одного миллиона одного"),
    (1000001, "f", "gen", "одного миллиона одной"),
    (1000001, "f", "acc", "один миллион одну"),
    (1000001, "m", "prep", "одном миллионе одном"),
])
def test_words_case(value, gender, case, expected):
    assert words(value, gender, case) == expected


def test_words_accusative_is_inanimate_unless_asked():
    assert words(2, "m", "acc") == "два"          # "на два дня"
    assert words(1, "m", "acc") == "один"
    assert words(2, "m", "acc", animate=True) == "двух"    # "двух операторов"
    assert words(21, "m", "acc", animate=True) == "двадцать одного"
    # num2words alone says "двух тысячи": only the last group is animate.
    assert words(2000, "m", "acc", animate=True) == "две тысячи"


@pytest.mark.parametrize("value", [
    "15000", "15 000", f"15{NBSP}000", f"15{NNBSP}000", " 15 000 ", "15000.00", "15000,0",
    Decimal("15000"), Decimal("15000.00"), 15000.0,
])
def test_words_accepts_registry_strings_and_decimals(value):
    assert words(value) == "пятнадцать тысяч"


def test_words_matches_pytils_in_nominative():
    # Independent oracle: pytils spells the nominative with its own tables.
    genders = {"m": numeral.MALE, "f": numeral.FEMALE, "n": numeral.NEUTER}
    values = [*range(0, 2100), 10_001, 21_021, 999_999, 1_000_001, 2_002_002, 5_021_022,
              1_001_001_001, 123_456_789]
    for g, pg in genders.items():
        for v in values:
            assert words(v, g) == numeral.in_words(v, pg), (v, g)


@pytest.mark.parametrize(("value", "args", "message"), [
    ("abc", (), "words: not a number: 'abc'"),
    ("", (), "words: not a number: ''"),
    (None, (), "words: not a number: None"),
    (True, (), "words: not a number: True"),
    ([1], (), "words: unsupported type list"),
    (1.5, (), "words: not a whole number: 1.5"),
    ("1,000", (), "words: not a whole number: '1,000'"),   # thousands or decimal comma?
    ("1.000", (), "words: not a whole number: '1.000'"),
    (Decimal("NaN"), (), "words: not a finite number"),
    (float("inf"), (), "words: not a finite number"),
    (10**40, (), "words: number too large to spell"),
    (5, ("x",), "words: gender must be one of m, f, n: 'x'"),
    (5, ("ж",), "words: gender must be one of m, f, n: 'ж'"),
    (5, ("m", "g"), "words: case must be one of nom, gen, dat, acc, ins, prep: 'g'"),
])
def test_words_errors(value, args, message):
    with pytest.raises(ValueError) as exc:
        words(value, *args)
    assert message in str(exc.value)


# --- rubles ------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("0.50", "ноль рублей пятьдесят копеек"),
    (Decimal("0.50"), "ноль рублей пятьдесят копеек"),
    ("0,5", "ноль рублей пятьдесят копеек"),
    (Decimal("0.01"), "ноль рублей одна копейка"),
    ("1.01", "один рубль одна копейка"),
    ("1.02", "один рубль две копейки"),
    ("1.11", "один рубль одиннадцать копеек"),
    ("1.21", "один рубль двадцать одна копейка"),
    ("1.22", "один рубль двадцать две копейки"),
    (1, "один рубль"),
    (2, "два рубля"),
    (5, "пять рублей"),
    (11, "одиннадцать рублей"),
    (12, "двенадцать рублей"),
    (14, "четырнадцать рублей"),
    (21, "двадцать один рубль"),
    (22, "двадцать два рубля"),
    (111, "сто одиннадцать рублей"),
    (0, "ноль рублей"),
    ("1500.50", "одна тысяча пятьсот рублей пятьдесят копеек"),
    ("1 500,50", "одна тысяча пятьсот рублей пятьдесят копеек"),
    (f"1{NBSP}500,50", "одна тысяча пятьсот рублей пятьдесят копеек"),
    (1500.5, "одна тысяча пятьсот рублей пятьдесят копеек"),
    ("15000", "пятнадцать тысяч рублей"),
    ("15 000.00", "пятнадцать тысяч рублей"),
    (Decimal("2.00"), "два рубля"),
    (Decimal("1E+3"), "одна тысяча рублей"),
    (1_000_001, "один миллион один рубль"),
])
def test_rubles(value, expected):
    assert rubles(value) == expected


def test_rubles_int_is_never_kopecks():
    # num2words' own to_currency reads the int 150 as 1 rouble 50 kopecks.
    assert rubles(150) == "сто пятьдесят рублей"
    assert rubles(100) == "сто рублей"


def test_rubles_matches_pytils():
    # Independent oracle for the number words (pytils spells them itself).
    for whole in [*range(0, 1200), 2021, 15_000, 1_000_001, 2_222_222]:
        for kop in (0, 1, 2, 5, 11, 21, 22, 50, 99):
            amount = Decimal(whole) + Decimal(kop) / 100
            assert rubles(amount) == numeral.rubles(amount), amount


@pytest.mark.parametrize(("value", "message"), [
    (-1, "rubles: negative amount: -1"),
    ("-0.50", "rubles: negative amount: '-0.50'"),
    ("1,500", "rubles: more than two digits of kopecks: '1,500'"),
    ("1.505", "rubles: more than two digits of kopecks"),
    (0.1 + 0.2, "rubles: more than two digits of kopecks: 0.30000000000000004"),
    ("150 руб.", "rubles: not a number"),
    ("", "rubles: not a number"),
    (None, "rubles: not a number: None"),
    (False, "rubles: not a number: False"),
    (Decimal("Infinity"), "rubles: not a finite number"),
    (10**40, "rubles: amount too large to spell"),
])
def test_rubles_errors(value, message):
    with pytest.raises(ValueError) as exc:
        rubles(value)
    assert message in str(exc.value)


# --- date_ru -----------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    ("05.12.2026", "5 декабря 2026 года"),
    ("5.12.2026", "5 декабря 2026 года"),
    ("2026-03-01", "1 марта 2026 года"),
    ("2026-12-05T00:00:00", "5 декабря 2026 года"),
    (" 2026-05-09 ", "9 мая 2026 года"),
    (datetime.date(2026, 1, 31), "31 января 2026 года"),
    (datetime.datetime(2026, 2, 28, 23, 59), "28 февраля 2026 года"),
    ("29.02.2028", "29 февраля 2028 года"),
])
def test_date_ru(value, expected):
    assert date_ru(value) == expected


def test_date_ru_all_months_genitive():
    got = [date_ru(datetime.date(2026, m, 1)).split()[1] for m in range(1, 13)]
    assert got == ["января", "февраля", "марта", "апреля", "мая", "июня", "июля",
                   "августа", "сентября", "октября", "ноября", "декабря"]


@pytest.mark.parametrize(("value", "expected"), [
    ("05.12.2026", "пятое декабря две тысячи двадцать шестого года"),
    ("2026-03-01", "первое марта две тысячи двадцать шестого года"),
    ("23.02.2026", "двадцать третье февраля две тысячи двадцать шестого года"),
    ("31.01.2030", "тридцать первое января две тысячи тридцатого года"),
    ("11.11.2011", "одиннадцатое ноября две тысячи одиннадцатого года"),
    ("01.01.2000", "первое января двухтысячного года"),
    ("09.05.1945", "девятое мая тысяча девятьсот сорок пятого года"),
])
def test_date_ru_words(value, expected):
    assert date_ru(value, words=True) == expected


def test_date_ru_words_every_day():
    days = [date_ru(datetime.date(2026, 1, d), words=True).removesuffix(
        " января две тысячи двадцать шестого года") for d in range(1, 32)]
    assert days == [
        "первое", "второе", "третье", "четвёртое", "пятое", "шестое", "седьмое", "восьмое",
        "девятое", "десятое", "одиннадцатое", "двенадцатое", "тринадцатое", "четырнадцатое",
        "пятнадцатое", "шестнадцатое", "семнадцатое", "восемнадцатое", "девятнадцатое",
        "двадцатое", "двадцать первое", "двадцать второе", "двадцать третье",
        "двадцать четвёртое", "двадцать пятое", "двадцать шестое", "двадцать седьмое",
        "двадцать восьмое", "двадцать девятое", "тридцатое", "тридцать первое",
    ]


@pytest.mark.parametrize(("value", "message"), [
    ("31.02.2026", "date_ru: no such date: '31.02.2026'"),
    ("2026-13-01", "date_ru: no such date: '2026-13-01'"),
    ("12/05/2026", "date_ru: expected YYYY-MM-DD or DD.MM.YYYY: '12/05/2026'"),
    ("05.12.26", "date_ru: expected YYYY-MM-DD or DD.MM.YYYY"),
    ("", "date_ru: expected YYYY-MM-DD or DD.MM.YYYY: ''"),
    (20261205, "date_ru: not a date: 20261205"),
    (None, "date_ru: not a date: None"),
])
def test_date_ru_errors(value, message):
    with pytest.raises(ValueError) as exc:
        date_ru(value)
    assert message in str(exc.value)


# --- phone -------------------------------------------------------------------------------

@pytest.mark.parametrize("value", [
    "+7 (912) 345-67-89", "89123456789", "79123456789", "+79123456789", "9123456789",
    "8 912 345 67 89", "8-912-345-67-89", "+7 912 345 67 89", " +7(912)3456789 ",
    "8.912.345.67.89", 89123456789,
])
def test_phone_groups(value):
    assert phone(value) == "+7 912 345 67 89"


def test_phone_words():
    assert phone("+7 (912) 345-67-89", words=True) == (
        "плюс семь, девятьсот двенадцать, триста сорок пять, шестьдесят семь, восемьдесят девять"
    )


def test_phone_words_leading_zeros_are_said_one_by_one():
    assert phone("8 (800) 100-00-05") == "+7 800 100 00 05"
    assert phone("8 (800) 100-00-05", words=True) == "плюс семь, восемьсот, сто, ноль ноль, ноль пять"
    assert phone("+7 (495) 012-10-70", words=True) == (
        "плюс семь, четыреста девяносто пять, ноль двенадцать, десять, семьдесят"
    )


@pytest.mark.parametrize("value", [
    "+1 212 555 0100",      # not a +7 number
    "+8 912 345 67 89",     # "+" then 8 is not the trunk prefix
    "69123456789",          # 11 digits must start with 7 or 8
    "12345",
    "+7 912 345 67 8",      # one digit short
    "+7 912 345 67 890",    # one digit too many
    "+7 912 345 67 89 доб. 12",
    "+7 +912 345 67 89",
    "",
    None,
    True,
    9.123456789e9,
])
def test_phone_errors(value):
    with pytest.raises(ValueError) as exc:
        phone(value)
    assert str(exc.value).startswith("phone: ")
    assert repr(value) in str(exc.value)


# --- through Jinja -----------------------------------------------------------------------

def test_filters_dict():
    assert FILTERS == {"words": words, "rubles": rubles, "date_ru": date_ru, "phone": phone}


def test_renders_through_immutable_sandbox():
    env = ImmutableSandboxedEnvironment()
    env.filters.update(FILTERS)
    assert env.from_string("{{ sum | rubles }}").render(sum="15000") == "пятнадцать тысяч рублей"
    t = env.from_string(
        "Ваша задолженность {{ sum | rubles }} на {{ date | date_ru }}. "
        "Оплатите в течение {{ days | words('m', 'gen') }} дня, это {{ n | words('f') }} попытка. "
        "Звоните {{ tel | phone }}. Срок {{ date | date_ru(words=True) }}."
    )
    assert t.render(sum="1 500,50", date="05.12.2026", days=21, n=21, tel="89123456789") == (
        "Ваша задолженность одна тысяча пятьсот рублей пятьдесят копеек на 5 декабря 2026 года. "
        "Оплатите в течение двадцати одного дня, это двадцать одна попытка. "
        "Звоните +7 912 345 67 89. Срок пятое декабря две тысячи двадцать шестого года."
    )


def test_renders_through_project_environment_and_raises_value_error():
    # The project's environment (StrictUndefined, finalize); the Renderer turns this
    # ValueError into the record's failure reason.
    env = make_environment()
    env.filters.update(FILTERS)
    t = env.from_string("{{ sum | rubles }}")
    assert t.render(sum=Decimal("21")) == "двадцать один рубль"
    with pytest.raises(ValueError, match=r"rubles: not a number: '15 000 руб'"):
        t.render(sum="15 000 руб")
