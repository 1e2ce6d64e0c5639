"""Personal data in text: find it, mask it with stable placeholders, count it by kind.

Five kinds, each found by a regular expression for the shape and then confirmed by what the
shape alone cannot tell (a checksum, an address range, the formats people write numbers in):

* e-mail addresses (not ``logo@2x.png``);
* phone numbers: international (``+``/``00``), North American, national numbers with a trunk
  ``0``, Chinese mobiles, and any number after a word such as "Tel." or "phone";
* public IP addresses, v4 and v6 (private, loopback, documentation and other reserved ranges,
  per ``ipaddress``, are not about a person; nor is ``1.2.3.4`` after "version");
* payment-card numbers: 13-19 digits in the groupings cards are printed in, a known issuer
  prefix and the Luhn checksum;
* IBANs: the country's length and the mod-97 checksum.

Precision comes first: a phone rule that fired on dates, prices, versions and ISBNs would
reject good documents under the ``pii:too_many`` rule and hide real text from the corpus. The
look-alikes are in tests/test_pii.py and in the labelled set of bench/pii.py.

Placeholders follow Dolma's (``|||EMAIL_ADDRESS|||``...): fixed strings, so masked text stays
deterministic and the tokenizer sees one recurring token sequence instead of many rare ones.
"""
from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

EMAIL = "EMAIL_ADDRESS"
PHONE = "PHONE_NUMBER"
IP = "IP_ADDRESS"
CARD = "CREDIT_CARD"
IBAN = "IBAN"
# Priority when two findings overlap: the more specific shape wins (an e-mail address holds
# digits a phone rule might like; an IBAN holds a card-length run of digits).
KINDS = (EMAIL, IBAN, CARD, IP, PHONE)
PLACEHOLDERS = {kind: f"|||{kind}|||" for kind in KINDS}


class Span(NamedTuple):
    kind: str
    start: int
    end: int


# ---------------------------------------------------------------------------------------------
# E-mail addresses

# Matched outwards from each "@" (rare in text) rather than by scanning every character. The
# local part is ASCII, so an address written straight after CJK text starts where it should.
_LOCAL_PART = re.compile(r"[A-Za-z0-9._%+-]{1,64}$")
_DOMAIN = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+([a-z]{2,24})(?![a-z0-9_-]|\.[a-z0-9])",
    re.IGNORECASE,
)
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-")
# Retina image names, other files and systemd template units ("user@1001.service") have the
# shape of an address.
_FILE_SUFFIXES = frozenset(
    "png jpg jpeg gif svg webp bmp ico tif tiff pdf js css html htm json xml txt md zip gz "
    "service socket target timer mount slice scope device swap".split()
)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    at = text.find("@")
    while at >= 0:
        local = _LOCAL_PART.search(text, max(0, at - 64), at)
        domain = _DOMAIN.match(text, at + 1) if local else None
        # A local part longer than 64 characters is not an address: its start must be free.
        if domain and domain.group(1).lower() not in _FILE_SUFFIXES and (
                local.start() == 0 or text[local.start() - 1] not in _LOCAL_CHARS):
            yield local.start(), domain.end()
        at = text.find("@", at + 1)


# ---------------------------------------------------------------------------------------------
# IBAN

# Length of the IBAN of each country using it (SWIFT IBAN registry).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23,
    "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24,
    "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
# Each pattern below starts with what it matches and checks the character before it only after
# that: Python's regex engine skips quickly to a leading character class but tries a leading
# lookbehind at every position (2-4x slower on long documents).
_IBAN = re.compile(r"([A-Z]{2})\d\d(?<![A-Za-z0-9][A-Z]{2}\d\d)(?: ?[A-Z0-9]){11,31}")


def iban_valid(compact: str) -> bool:
    """ISO 13616: country length, then the number read with letters as 10..35 is 1 mod 97."""
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while m := _IBAN.search(text, pos):
        pos = m.start() + 1
        length = _IBAN_LENGTHS.get(m.group(1))
        if length is None:
            continue
        # The pattern runs on over the words after the IBAN; cut it at the country's length.
        raw = m.group()
        taken, end = 0, 0
        for end, ch in enumerate(raw, 1):
            taken += ch != " "
            if taken == length:
                break
        if taken < length:
            continue
        stop = m.start() + end
        if stop < len(text) and text[stop].isalnum():
            continue
        groups = raw[:end].split(" ")
        # Printed either unbroken or in groups of four (the last one shorter).
        if len(groups) > 1 and any(len(g) != 4 for g in groups[:-1]):
            continue
        if iban_valid(raw[:end].replace(" ", "")):
            yield m.start(), stop
            pos = stop


# ---------------------------------------------------------------------------------------------
# Payment cards

# (lowest prefix, highest prefix, lengths): issuer identification ranges of the networks
# whose cards are common, from their published IIN tables.
_CARD_RANGES = (
    ("4", "4", (13, 16, 19)),                       # Visa
    ("51", "55", (16,)), ("2221", "2720", (16,)),     # Mastercard
    ("34", "34", (15,)), ("37", "37", (15,)),        # American Express
    ("6011", "6011", (16, 17, 18, 19)), ("644", "649", (16, 17, 18, 19)),
    ("65", "65", (16, 17, 18, 19)),                 # Discover
    ("3528", "3589", (16, 17, 18, 19)),             # JCB
    ("300", "305", (14, 15, 16, 17, 18, 19)), ("36", "36", (14, 15, 16, 17, 18, 19)),
    ("38", "39", (14, 15, 16, 17, 18, 19)),         # Diners Club
    ("62", "62", (16, 17, 18, 19)),                 # UnionPay
    ("50", "50", (13, 16, 17, 18, 19)), ("56", "58", (13, 16, 17, 18, 19)),
    ("67", "67", (13, 16, 17, 18, 19)),             # Maestro
    ("2200", "2204", (16,)),                        # Mir
)
# How card numbers are printed when they are grouped.
_CARD_GROUPINGS = frozenset({
    (4, 4, 4, 4), (4, 4, 4, 4, 3), (4, 4, 4, 4, 2), (4, 4, 4, 4, 1), (4, 4, 4, 3), (4, 4, 4, 2),
    (4, 4, 4, 1), (4, 4, 5), (4, 6, 5), (4, 6, 4), (4, 4, 4, 4, 4),
})
_CARD = re.compile(r"\d(?<![\w.,+/#@-]\d)(?:[ -]?\d){12,18}(?![\w/]|[.,-]\d)")
# The digits after an IBAN's country and check digits ("PT50 0002 0123 ...").
_IBAN_HEAD = re.compile(r"[A-Z]{2}\d\d $")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def card_valid(digits: str) -> bool:
    """A known issuer's prefix and length, and the Luhn checksum."""
    for lo, hi, lengths in _CARD_RANGES:
        if len(digits) in lengths and lo <= digits[:len(lo)] <= hi:
            return luhn_valid(digits)
    return False


def _cards(text: str) -> Iterator[tuple[int, int]]:
    for m in _CARD.finditer(text):
        if _IBAN_HEAD.search(text, max(0, m.start() - 5), m.start()):
            continue
        raw = m.group()
        seps = set(raw) - set("0123456789")
        if not seps:
            if card_valid(raw):
                yield m.span()
            continue
        if len(seps) > 1:
            continue
        sep = seps.pop()
        groups = raw.split(sep)
        # The pattern may have run into a number printed after the card: try shorter prefixes.
        for n in range(len(groups), 2, -1):
            if tuple(map(len, groups[:n])) in _CARD_GROUPINGS and card_valid("".join(groups[:n])):
                yield m.start(), m.start() + len(sep.join(groups[:n]))
                break


# ---------------------------------------------------------------------------------------------
# IP addresses

# Octets over 255 and leading zeros are refused by ipaddress.
_IPV4 = re.compile(r"\d(?<![\w.]\d)(?<!\d:\d)\d{0,2}(?:\.\d{1,3}){3}(?![\w-]|\.\d|/\d)")
# From the first colon on; the group before it is taken by walking back (a literal first
# character is what lets the engine skip fast).
_IPV6_FROM_COLON = re.compile(r":[0-9A-Fa-f:]*")
_HEX = frozenset("0123456789abcdefABCDEF")
# Dotted numbers that follow these words are versions, sections or object identifiers.
_NOT_AN_ADDRESS = re.compile(
    r"(?:\b(?:version|ver|v|release|build|firmware|linux|kernel|rev|revision|section|chapter|"
    r"oid|update)|§)\s*[.:=]?\s*$",
    re.IGNORECASE,
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    # Outside 2000::/3 nothing is assigned to hosts, but ipaddress calls most of it global.
    return address.version == 4 or address in _GLOBAL_UNICAST


def _ips(text: str) -> Iterator[tuple[int, int]]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if _NOT_AN_ADDRESS.search(text, max(0, m.start() - 24), m.start()):
                continue
            # A trailing 0 names a network ("route add -net 192.56.76.0"), not a host.
            if m.group().endswith(".0"):
                continue
            try:
                address = ipaddress.IPv4Address(m.group())
            except ValueError:
                continue
            if _public(address):
                yield m.span()
    if "::" in text or text.count(":") >= 7:
        yield from _ipv6s(text)


def _ipv6s(text: str) -> Iterator[tuple[int, int]]:
    n = len(text)
    for m in _IPV6_FROM_COLON.finditer(text):
        if m.group().count(":") < 2:
            continue
        start, end = m.start(), m.end()
        while start > m.start() - 4 and start and text[start - 1] in _HEX:
            start -= 1
        if start and (text[start - 1].isalnum() or text[start - 1] in ":._"):
            continue  # inside a word: "std::vector", "Foo::Bar"
        if end < n and (text[end].isalnum() or text[end] == "_" or (
                text[end] in "./" and end + 1 < n and text[end + 1].isdigit())):
            continue  # a prefix ("2602::/24") or more of a longer token
        try:
            address = ipaddress.IPv6Address(text[start:end])
        except ValueError:
            continue
        if _public(address):
            yield start, end


# ---------------------------------------------------------------------------------------------
# Phone numbers

_SEP = r"[ \u00a0./-]"
_UNIT = r"(?:\(\d{1,5}\)|\d)"
_PHONE = re.compile(
    # First "+", "(" or a digit, not glued to a word, a path, a sign or another number.
    r"(?:\+(?<![\w@/+=$€£¥#&]\+)(?<!\d[.,:/-]\+) ?" + _UNIT
    + r"|\((?<![\w@/+=$€£¥#&]\()(?<!\d[.,:/-]\()\d{1,5}\)"
    + r"|\d(?<![\w@/+=$€£¥#&]\d)(?<!\d[.,:/-]\d))"
    + rf"(?:{_SEP}{{0,3}}{_UNIT}){{6,22}}(?![\w@]|[.:/-]\d)"
)
# North American numbering plan: area code and exchange do not start with 0 or 1, and one
# separator is used throughout ("252.227-7013" is a procurement clause).
_NANP = re.compile(
    r"(?:1[ .-]?)?(?:\([2-9]\d\d\) ?[2-9]\d\d[ .-]|[2-9]\d\d([ .-])[2-9]\d\d\1)\d{4}"
)
# A US ZIP+4 code ("Boston, MA 02110-1301", in every GPL notice) has a trunk-0 phone's shape.
_ZIP4 = re.compile(r"\d{5}-\d{4}")
_CN_MOBILE = re.compile(r"1[3-9]\d[ -]\d{4}[ -]\d{4}")
# A date at the start, not followed by more groups: "02.03.2024 10.30" is a date and a time,
# "06.12.34.56.78" a French phone number.
_STARTS_WITH_DATE = re.compile(
    r"(?:\d{1,2}([./-])\d{1,2}\1(?:\d{4}|\d{2})|\d{4}([./-])\d{1,2}\2\d{1,2})(?![./-]?\d)"
)
_ASKS_FOR_PHONE = re.compile(
    r"(?:\b(?:tel|tele?phone|phone|ph|fon|fax|mobile?|mob|cell|call|sms|whatsapp|telefon|"
    r"telefone|telefono|teléfono|téléphone|tél|tlf|tfn|handy|natel|hotline)\b|"
    r"电话|電話|手机|携帯)[^\n\d]{0,14}$",
    re.IGNORECASE,
)
_NOT_A_PHONE = re.compile(
    r"(?:\b(?:isbn(?:-1[03])?|issn|doi|arxiv|version|ver|v|rev|build|section|chapter|"
    r"patent|pmid|oclc)\b|[§$€£¥₹])[\s:#.=]*$",
    re.IGNORECASE,
)
# The upper end of a numeric range: "-2147483648 to +2147483647".
_RANGE_BEFORE = re.compile(r"-\d[\d,.]*\s*\S{0,3}\s*$")
# Hex dumps and binary: "00 20 00 00 00 00", "0010 0010 0110 0000".
_ZERO_GROUPS = re.compile(r"(?:^|\D)00\D00(?:\D|$)")
# Amounts written before their currency ("1 299 000 €"); "$" and "£" come first, and a phone
# number may well be followed by a price.
_CURRENCY_AFTER = re.compile(r"\s?(?:€|%|(?:eur|usd|gbp|chf|jpy|sek|nok|dkk)\b)", re.IGNORECASE)
# Bytes of a hex dump next to a run of two-digit groups: "7F 00 20 05 05 FF".
# Upper case only: "de", "be", "fa" are words.
_HEX_BYTE_BEFORE = re.compile(r"(?:^|\s)[0-9A-F]{2} $")
_HEX_BYTE_AFTER = re.compile(r" [0-9A-F]{2}(?:\s|$)")
# A full date at the end: "exp 09/27 22.11.1986" is an expiry and a date.
_ENDS_WITH_DATE = re.compile(
    r"(?:^|\s)(?:\d{1,2}([./-])\d{1,2}\1\d{4}|\d{4}([./-])\d{1,2}\2\d{1,2})$"
)


def _phone_ok(number: str, text: str, start: int, end: int) -> bool:
    digits = sum(c.isdigit() for c in number)
    if digits < 7 or digits > 17 or number.count("(") != number.count(")"):
        return False
    if "  " in number or re.search(r"[./-]{2}", number) or number.count("/") > 1:
        return False
    groups = re.findall(r"\d+", number)
    if len(groups) >= 4 and all(len(g) == 2 for g in groups):
        # Only French numbers are printed in pairs, five of them: "06 12 34 56 78".
        if len(groups) != 5 or groups[0][0] != "0" or groups[0] == "00":
            return False
        if _HEX_BYTE_BEFORE.search(text, max(0, start - 4), start) or \
                _HEX_BYTE_AFTER.match(text, end):
            return False
    before = text[max(0, start - 24):start]
    if _NOT_A_PHONE.search(before) or _CURRENCY_AFTER.match(text, end):
        return False
    if _STARTS_WITH_DATE.match(number) or _ENDS_WITH_DATE.search(number) or \
            _ZERO_GROUPS.search(number) or _IBAN_HEAD.search(before):
        return False
    if set(number) <= set("01 ./-()"):
        return False
    if number[0] == "+":
        return 8 <= digits <= 15 and not _RANGE_BEFORE.search(before)
    has_sep = any(not c.isdigit() for c in number)
    if number.startswith("00"):
        # International prefix, then a country code of 1-3 digits: "0049 30 1234567".
        first = re.match(r"\d+", number).group()
        return has_sep and 10 <= digits <= 17 and number[2] != "0" and len(first) <= 5
    if _ASKS_FOR_PHONE.search(before):
        return True
    if _NANP.fullmatch(number) or _CN_MOBILE.fullmatch(number):
        return True
    if _ZIP4.fullmatch(number):
        return False
    if number[0] == "0" or number.startswith("(0"):
        # National number with a trunk 0: "030 1234567", "06 12 34 56 78", "(02) 9876 5432".
        first = re.match(r"\(?(\d+)", number).group(1)
        return has_sep and 9 <= digits <= 12 and 2 <= len(first) <= 5
    return False


_LIST_SEP = re.compile(r" [/-] |\s{2,}")


def _phones(text: str) -> Iterator[tuple[int, int]]:
    pos = 0
    while m := _PHONE.search(text, pos):
        start, end = m.span()
        pos = end
        if _phone_ok(m.group(), text, start, end):
            yield start, end
            continue
        # Numbers side by side are read as one: "+44 20 7946 0958 / 020 7946 0958", or
        # "+55 11 99259-7903. 26.03.1962". Take the first number of a list, else the longest
        # prefix ending a sentence. Columns of a table ("064 52 34 4 164 116") are not cut.
        cuts = [g.start() for g in _LIST_SEP.finditer(text, start, end)][:1]
        cuts += [i for i in range(end - 1, start, -1) if text[i - 1:i + 1] == ". "]
        for cut in cuts:
            stop = cut
            while text[stop - 1] in "./- \u00a0":
                stop -= 1
            if _phone_ok(text[start:stop], text, start, stop):
                yield start, stop
                pos = stop
                break


# ---------------------------------------------------------------------------------------------

_DIGIT = re.compile(r"\d")
_DETECTORS: tuple[tuple[str, Callable[[str], Iterator[tuple[int, int]]], bool], ...] = (
    # kind, finder, needs a digit
    (EMAIL, _emails, False),
    (IBAN, _ibans, True),
    (CARD, _cards, True),
    (IP, _ips, True),
    (PHONE, _phones, True),
)


def find_pii(text: str) -> list[Span]:
    """Non-overlapping findings in text order; on overlap the kind earlier in KINDS wins."""
    if not text:
        return []
    has_digit = _DIGIT.search(text) is not None
    starts: list[int] = []
    spans: list[Span] = []
    for kind, finder, needs_digit in _DETECTORS:
        if needs_digit and not has_digit:
            continue
        for start, end in finder(text):
            i = bisect.bisect_left(starts, start)
            if (i and spans[i - 1].end > start) or (i < len(spans) and spans[i].start < end):
                continue
            starts.insert(i, start)
            spans.insert(i, Span(kind, start, end))
    return spans


def mask_pii(text: str) -> tuple[str, dict[str, int]]:
    """``text`` with each finding replaced by its kind's placeholder, and counts by kind.

    The counts hold only the kinds found; ``sum(counts.values())`` is the document's
    ``pii_count``.
    """
    spans = find_pii(text)
    if not spans:
        return text, {}
    parts, counts, pos = [], {}, 0
    for kind, start, end in spans:
        parts.append(text[pos:start])
        parts.append(PLACEHOLDERS[kind])
        counts[kind] = counts.get(kind, 0) + 1
        pos = end
    parts.append(text[pos:])
    return "".join(parts), counts
