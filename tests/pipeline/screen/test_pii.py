"""PII: what is masked, what only looks like PII and is left alone, and the placeholders."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.screen.pii import (
    CARD,
    EMAIL,
    IBAN,
    IP,
    PHONE,
    PLACEHOLDERS,
    card_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    mask_pii,
)


def kinds(text):
    return [(s.kind, text[s.start:s.end]) for s in find_pii(text)]


@pytest.mark.parametrize("number", [
    "(415) 555-2671", "415-555-2671", "415.555.2671", "1-800-555-0199", "+1 415 555 2671",
    "+44 20 7946 0958", "020 7946 0958", "+49 30 12345678", "030 12345678", "030/1234567",
    "+49 (0)30 1234567", "0049 30 1234567", "06 12 34 56 78", "06.12.34.56.78",
    "+33 6 12 34 56 78", "020-123 4567", "+39 06 1234 5678", "03-1234-5678", "+81 3-1234-5678",
    "+86 138 0013 8000", "138 0013 8000", "+91 98765 43210", "+55 11 91234-5678",
    "(02) 9876 5432", "+4930123456",
])
def test_phone_formats(number):
    assert kinds(f"Reach us on {number} any day.") == [(PHONE, number)]


def test_phone_after_a_phone_word_needs_no_national_format():
    assert kinds("Tel: 912 345 678") == [(PHONE, "912 345 678")]
    assert kinds("Teléfono 912 345 678, fax 912 345 679") == [
        (PHONE, "912 345 678"), (PHONE, "912 345 679")]
    assert kinds("912 345 678 people") == []  # the same digits without the word: a count


@pytest.mark.parametrize("kind,text,found", [
    (EMAIL, "Write to john.doe+news@example.co.uk today", "john.doe+news@example.co.uk"),
    (EMAIL, "Kontakt: maria_garcia@correo.es.", "maria_garcia@correo.es"),
    (EMAIL, "<translation-team-cs@lists.sourceforge.net>",
     "translation-team-cs@lists.sourceforge.net"),
    (EMAIL, "请联系john@example.com谢谢", "john@example.com"),
    (EMAIL, "@bob said: mail a.b@example.org", "a.b@example.org"),
    (IP, "server 8.8.8.8 is down", "8.8.8.8"),
    (IP, "from 93.184.216.34.", "93.184.216.34"),
    (IP, "resolver 2606:4700:4700::1111 answered", "2606:4700:4700::1111"),
    (IP, "[2a00:1450:4001:82a::200e]:443", "2a00:1450:4001:82a::200e"),
    (CARD, "card 4111 1111 1111 1111 exp 12/25", "4111 1111 1111 1111"),
    (CARD, "4111-1111-1111-1111", "4111-1111-1111-1111"),
    (CARD, "amex 378282246310005", "378282246310005"),
    (CARD, "amex 3782 822463 10005", "3782 822463 10005"),
    (CARD, "mc 5500 0055 5555 5559, cvv 123", "5500 0055 5555 5559"),
    (CARD, "cc=4111111111111111&exp=1225", "4111111111111111"),
    (IBAN, "IBAN DE89 3704 0044 0532 0130 00 please", "DE89 3704 0044 0532 0130 00"),
    (IBAN, "GB82WEST12345698765432", "GB82WEST12345698765432"),
    (IBAN, "FR14 2004 1010 0505 0001 3M02 606.", "FR14 2004 1010 0505 0001 3M02 606"),
    (IBAN, "NL91ABNA0417164300", "NL91ABNA0417164300"),
])
def test_finds(kind, text, found):
    assert kinds(text) == [(kind, found)]


@pytest.mark.parametrize("text", [
    # versions, sections, object identifiers
    "version 1.2.3.4", "v1.2.3.4", "Linux 2.4.9.2 and Linux 5.15.0-91-generic",
    "see section 4.2.1.3", "OID 1.3.6.1.4.1.311",
    # dates and times
    "on 2024-01-15 at 12:30:45", "15.01.2024", "01/15/2024", "02.03.2024 10.30",
    "1990-2000", "2019-2020-2021", "Tel 15.01.2024", "call at 12:30",
    # prices, counts and other numbers
    "costs $1,299.99", "€ 1.299,00", "1 299 000 €", "population 8,336,817",
    "timestamp 1705312345", "order 4412345678", "123 456 789", "pi 3.14159265358979",
    "0.1234 0.5678 0.91", "ratio 0,123456789", "1. 2. 3. 4. 5. 6. 7.", "1.000.000 Einwohner",
    "pages 123-456", "SSN 123-45-6789", "range -2147483648 to +2147483647",
    # book and article numbers, postal codes, procurement clauses
    "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2", "Boston, MA 02110-1301, USA",
    "DFARS 252.227-7013",
    # private, reserved and documentation addresses, networks, masks, prefixes
    "192.168.1.1", "10.0.0.5", "127.0.0.1", "172.16.0.1", "203.0.113.5", "100.64.0.1",
    "224.0.0.1", "255.255.255.0", "route add -net 192.56.76.0", "8.8.8.0/24",
    "2001:db8::1", "fe80::1", "::1", "2602::/24",
    # code, hardware and hex dumps
    "std::vector<int>", "a::b", "mac 00:1A:2B:3C:4D:5E", "CDB: 00 20 00 00 00 00",
    "0x2260 = 0010 0010 0110 0000", "00400000-00452000 r-xp",
    # almost cards and IBANs
    "4111 1111 1111 1112", "1234 5678 9012 3456", "DE89 3704 0044 0532 0130 01",
    # files that look like addresses
    "logo@2x.png", "user@1001.service", "user@localhost",
])
def test_look_alikes_are_not_pii(text):
    assert kinds(text) == []


def test_mask_replaces_spans_and_counts_by_kind():
    text = ("Mail anna@example.org or call +44 20 7946 0958 / 020 7946 0958; "
            "host 8.8.8.8, card 4111 1111 1111 1111, IBAN GB82 WEST 1234 5698 7654 32.")
    masked, counts = mask_pii(text)
    assert masked == ("Mail |||EMAIL_ADDRESS||| or call |||PHONE_NUMBER||| / |||PHONE_NUMBER|||; "
                      "host |||IP_ADDRESS|||, card |||CREDIT_CARD|||, IBAN |||IBAN|||.")
    assert counts == {EMAIL: 1, PHONE: 2, IP: 1, CARD: 1, IBAN: 1}
    assert mask_pii("nothing to see") == ("nothing to see", {})
    assert mask_pii("") == ("", {})


def test_overlaps_go_to_the_more_specific_kind():
    # The digits of an e-mail address and of an IBAN are not phones or cards as well.
    assert kinds("0301234567@example.com") == [(EMAIL, "0301234567@example.com")]
    assert [k for k, _ in kinds("DE89370400440532013000")] == [IBAN]


def test_checksums():
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert card_valid("4111111111111111") and not card_valid("9111111111111116")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # one character short for Germany


def test_placeholders_are_stable():
    assert PLACEHOLDERS == {EMAIL: "|||EMAIL_ADDRESS|||", IBAN: "|||IBAN|||",
                            CARD: "|||CREDIT_CARD|||", IP: "|||IP_ADDRESS|||",
                            PHONE: "|||PHONE_NUMBER|||"}


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("0123456789 .-+()/:@aZ\n"), max_size=80))
def test_masking_never_loses_text_outside_findings(text):
    masked, counts = mask_pii(text)
    spans = find_pii(text)
    assert sum(counts.values()) == len(spans)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    rebuilt, pos = [], 0
    for s in spans:
        rebuilt += [text[pos:s.start], PLACEHOLDERS[s.kind]]
        pos = s.end
    assert masked == "".join(rebuilt) + text[pos:]
