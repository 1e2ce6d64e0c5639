"""PII detection: precision and recall per kind on a labelled set built here, and throughput.

    python -m bench.pii [--docs 3000] [--seed 20240520]

The labelled set is generated, deterministically, by this file: sentences in several
languages around real-looking personal data (names and mail providers of many countries;
phone numbers in the formats each country prints them in; public IPv4 and IPv6 addresses of
real allocations; card numbers with real issuer prefixes and Luhn digits; IBANs of 14
countries with valid check digits), and around look-alikes that must not be masked (versions,
dates, times, prices, ISBNs with valid check digits, postal codes, counts, private and
documentation addresses, cards and IBANs with a wrong check digit). Some positives are written
in ways our rules deliberately do not catch (a US number as ten bare digits, an e-mail address
spelled out with "at" and "dot"), so recall is measured, not assumed.

A finding counts as right when it overlaps a labelled span of the same kind. Baseline: the
e-mail and IP rules of datatrove's PIIFormatter (FineWeb's PII step) on the same text.
Throughput: ``mask_pii`` on the man pages of ../shared/data (real technical text dense with
addresses and numbers), CPU seconds of this process, against the baseline on the same text.
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import random
import sys
import time
from pathlib import Path

from pipeline.screen.pii import CARD, EMAIL, IP, KINDS, PHONE, find_pii

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DATA", REPO.parent / "shared" / "data"))
MANPAGES = SHARED / "multilingual" / "manpages_l10n.jsonl"
RESULTS = REPO / "bench" / "results" / "pii.json"
PRECISION_TARGET, RECALL_TARGET, LOOKALIKE_TARGET = 0.95, 0.90, 0.01

FIRST = ("anna jan maria jose li wei yuki hans pierre sofia olga ahmed fatima raj priya "
         "lucas emma noah mia chen hiroshi kwame amara lars ingrid mateo valentina tomasz "
         "zofia nguyen linh ali elif").split()
LAST = ("smith muller garcia rossi dubois kowalski ivanova tanaka chen kim nguyen patel "
        "silva jensen andersson novak horvat popescu yilmaz okafor mensah schmidt "
        "fernandez lopez martin bernard wagner becker").split()
MAIL_DOMAINS = ("gmail.com yahoo.com outlook.com hotmail.co.uk web.de gmx.net orange.fr "
                "libero.it yandex.ru mail.ru qq.com 163.com naver.com yahoo.co.jp "
                "uol.com.br wp.pl seznam.cz t-online.de icloud.com protonmail.ch "
                "cs.stanford.edu uni-heidelberg.de ox.ac.uk lists.debian.org "
                "mairie-lyon.fr acme-corp.io").split()

# Phone formats: "+" and "9" stand for digits ("9" never 0 or 1, for NANP area/exchange).
PHONE_FORMATS = [
    "(N##) N##-####", "N##-N##-####", "N##.N##.####", "+1 N## N## ####", "1-800-N##-####",
    "+1 (N##) N##-####",                                       # US / Canada
    "+44 20 #### ####", "020 #### ####", "+44 7### ######", "07### ######",  # UK
    "+49 30 ########", "030 ########", "0N## #######", "0N##/#######", "+49 (0)89 #######",
    "0049 89 #######", "+49 15# ########",                     # Germany
    "0N ## ## ## ##", "+33 N ## ## ## ##", "0N.##.##.##.##",   # France
    "+39 06 #### ####", "06 #### ####", "+39 3## ### ####",    # Italy
    "+34 9## ### ###", "+34 6## ## ## ##",                     # Spain
    "020-### ####", "+31 20 ### ####", "06-########",           # Netherlands
    "03-####-####", "+81 3-####-####", "090-####-####",        # Japan
    "+86 13# #### ####", "13# #### ####", "+86 10 #### ####",  # China
    "+91 9#### #####", "+55 11 9####-####", "(0N) #### ####", "+61 4## ### ###",
    "+7 495 ###-##-##", "+48 ## ### ## ##", "+46 8 ### ### ##", "+27 21 ### ####",
]
# Written in ways a careful rule set still misses (bare digit runs, spelled-out separators).
PHONE_HARD = ["N##N######", "13#########"]
PHONE_SENTENCES = [
    "Call me on {} after six.", "Ruf mich unter {} an.", "Mon numéro est le {}.",
    "Per informazioni: {}", "Llámenos al {} de lunes a viernes.", "Bel ons op {}.",
    "お問い合わせは {} まで。", "联系电话 {}。", "Office: {}, ask for Maria.",
    "If the line is busy try {} instead.", "The hotline {} is open 24/7.",
]
EMAIL_SENTENCES = [
    "Send the form to {} by Friday.", "Kontakt: {}", "Écrivez-nous à {}.",
    "Reported-by: Jane <{}>", "Questions? {} answers within a day.", "邮箱：{}",
    "Mail {}, cc the list.",
]
IP_SENTENCES = [
    "Failed password for root from {} port 22 ssh2", "The crawler came from {}.",
    "Login von IP {} erkannt.", "client {} requested /index.html", "Ping {} to test.",
]
CARD_SENTENCES = [
    "Card number: {} exp 09/27", "Bitte belasten Sie die Karte {}.", "Paid with {} yesterday.",
    "Carte bancaire {} refusée.", "cc={} cvv=123",
]
IBAN_SENTENCES = [
    "Please transfer to IBAN {} by the 5th.", "Bankverbindung: {}", "IBAN : {}",
    "Pay {} (reference 2024-17).",
]

# (country, BBAN pattern): "9" a digit, "A" an upper-case letter, "X" either.
IBAN_FORMATS = [("DE", "999999999999999999"), ("GB", "AAAA99999999999999"),
                ("FR", "9999999999XXXXXXXXXXX99"), ("NL", "AAAA9999999999"),
                ("ES", "99999999999999999999"), ("IT", "A9999999999XXXXXXXXXXXX"),
                ("CH", "99999XXXXXXXXXXXX"), ("AT", "9999999999999999"),
                ("BE", "999999999999"), ("PL", "999999999999999999999999"),
                ("SE", "99999999999999999999"), ("NO", "99999999999"),
                ("PT", "999999999999999999999"), ("IE", "AAAA99999999999999")]
CARD_PREFIXES = [("4", 16), ("4", 13), ("51", 16), ("55", 16), ("2221", 16), ("34", 15),
                 ("37", 15), ("6011", 16), ("65", 16), ("3530", 16), ("36", 14), ("62", 16)]
IPV6_NETS = ["2001:4860::/32", "2a00:1450::/32", "2606:4700::/32", "2a03:2880::/32",
             "2400:cb00::/32", "2c0f:fb50::/32"]

LOOKALIKES = ("version kernel date datetime time price price_eu isbn13 isbn10 count "
              "count_spaced big_number decimal zip4 range coordinates private_ip private_ipv6 "
              "netmask oid section bad_card bad_iban mac cpp retina ssn_like hexdump").split()


def lookalike(r: random.Random, kind: str) -> str:
    """A sentence holding something that looks like PII and is not."""
    n, pick = r.randint, r.choice
    y, m, d = n(1950, 2030), n(1, 12), n(1, 28)
    sentences = {
        "version": lambda: f"Upgrade to version {n(1, 12)}.{n(0, 20)}.{n(0, 99)}.{n(1, 250)}.",
        "kernel": lambda: f"Linux {n(2, 6)}.{n(0, 19)}.{n(0, 200)}-{n(1, 99)}-generic",
        "date": lambda: pick([f"{y}-{m:02d}-{d:02d}", f"{d:02d}.{m:02d}.{y}", f"{d}.{m}.{y}",
                              f"{m:02d}/{d:02d}/{y}", f"{y}/{m:02d}/{d:02d}",
                              f"{d:02d}-{m:02d}-{y}"]) + " was a Tuesday.",
        "datetime": lambda: f"Logged {y}-{m:02d}-{d:02d} {n(0, 23):02d}:{n(0, 59):02d}:"
                            f"{n(0, 59):02d} UTC",
        "time": lambda: f"The train leaves at {n(0, 23):02d}:{n(0, 59):02d} and arrives at "
                        f"{n(0, 23)}.{n(0, 59):02d}.",
        "price": lambda: pick(["${:,}.{:02d}", "€ {:,}.{:02d}", "{:,}.{:02d} EUR",
                               "£{:,}.{:02d}"]).format(n(1, 9_999_999), n(0, 99)) + " incl. VAT",
        "price_eu": lambda: f"Preis: {n(1, 999)}.{n(0, 999):03d}.{n(0, 999):03d},{n(0, 99):02d} €",
        "isbn13": lambda: f"ISBN {isbn13(r)}",
        "isbn10": lambda: f"ISBN {isbn10(r)}",
        "count": lambda: f"The city has {n(1_000_000, 99_999_999):,} inhabitants.",
        "count_spaced": lambda: f"Auflage: {n(100_000_000, 999_999_999):,} Exemplare".replace(
            ",", " "),
        "big_number": lambda: f"Order {n(10**9, 10**10 - 1)} shipped at "
                              f"{n(1_600_000_000, 1_800_000_000)} (unix time).",
        "decimal": lambda: f"x = {r.random():.10f}, y = {r.random() * 1000:.6f}",
        "zip4": lambda: f"Boston, MA {n(1000, 99999):05d}-{n(0, 9999):04d}, USA",
        "range": lambda: f"pages {n(1, 500)}-{n(501, 999)}, years {n(1900, 1999)}-{n(2000, 2030)}",
        "coordinates": lambda: f"located at {r.uniform(-90, 90):.4f}, {r.uniform(-180, 180):.4f}",
        "private_ip": lambda: pick([f"10.{n(0, 255)}.{n(0, 255)}.{n(1, 254)}",
                                    f"192.168.{n(0, 255)}.{n(1, 254)}",
                                    f"172.{n(16, 31)}.{n(0, 255)}.{n(1, 254)}",
                                    f"127.0.0.{n(1, 254)}", f"203.0.113.{n(1, 254)}",
                                    f"198.51.100.{n(1, 254)}"]) + " is the gateway",
        "private_ipv6": lambda: pick(["fe80::1ff:fe23:4567:890a", "2001:db8::ff00:42:8329",
                                      "::1", "fd12:3456:789a:1::1"]) + " on eth0",
        "netmask": lambda: f"netmask 255.255.{pick([0, 128, 192, 224, 240, 248, 252])}.0",
        "oid": lambda: f"OID 1.3.6.1.4.1.{n(1, 60000)}.{n(1, 9)}",
        "section": lambda: f"see section {n(1, 9)}.{n(1, 9)}.{n(1, 9)}.{n(1, 9)}",
        "bad_card": lambda: f"Card {group4(bad_luhn(r))} was declined.",
        "bad_iban": lambda: f"IBAN {group4(bad_iban(r))} (typo)",
        "mac": lambda: "MAC " + ":".join(f"{n(0, 255):02X}" for _ in range(6)),
        "cpp": lambda: "use std::vector<int> and boost::asio::ip::tcp",
        "retina": lambda: f"<img src='logo@{n(2, 3)}x.png'>",
        "ssn_like": lambda: f"case no. {n(100, 899)}-{n(10, 99)}-{n(1000, 9999)}",
        "hexdump": lambda: "bytes: " + " ".join(pick(["00", "00", "20", "FF", "7F", "05"])
                                                for _ in range(8)),
    }
    return sentences[kind]()


def digits(r, pattern: str) -> str:
    return "".join(str(r.randint(0, 9)) if c == "#" else str(r.randint(2, 9)) if c == "N"
                   else c for c in pattern)


def luhn_digit(partial: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(partial)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def card_number(r) -> str:
    prefix, length = r.choice(CARD_PREFIXES)
    body = prefix + "".join(str(r.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return body + luhn_digit(body)


def bad_luhn(r) -> str:
    good = card_number(r)
    return good[:-1] + str((int(good[-1]) + r.randint(1, 9)) % 10)


def iban(r) -> str:
    country, pattern = r.choice(IBAN_FORMATS)
    bban = "".join(str(r.randint(0, 9)) if c == "9"
                   else chr(65 + r.randint(0, 25)) if c == "A"
                   else r.choice("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ") for c in pattern)
    numeric = int("".join(str(int(c, 36)) for c in bban + country + "00"))
    return f"{country}{98 - numeric % 97:02d}{bban}"


def bad_iban(r) -> str:
    good = iban(r)
    check = r.choice([c for c in range(2, 97) if c != int(good[2:4])])
    return f"{good[:2]}{check:02d}{good[4:]}"


def group4(s: str) -> str:
    return " ".join(s[i:i + 4] for i in range(0, len(s), 4))


def isbn13(r) -> str:
    body = "978" + "".join(str(r.randint(0, 9)) for _ in range(9))
    check = (10 - sum(int(c) * (1 if i % 2 == 0 else 3) for i, c in enumerate(body)) % 10) % 10
    return f"{body[:3]}-{body[3]}-{body[4:8]}-{body[8:]}-{check}"


def isbn10(r) -> str:
    body = "".join(str(r.randint(0, 9)) for _ in range(9))
    check = (11 - sum((10 - i) * int(c) for i, c in enumerate(body)) % 11) % 11
    return f"{body[0]}-{body[1:4]}-{body[4:]}-{'X' if check == 10 else check}"


def email(r) -> str:
    first, last = r.choice(FIRST), r.choice(LAST)
    local = r.choice([f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{r.randint(1, 99)}",
                      f"{first}+{r.choice(['news', 'shop', 'git'])}", f"{first}-{last}",
                      f"{last}{r.randint(1950, 2010)}"])
    if r.random() < 0.3:
        local = local.capitalize()
    return f"{local}@{r.choice(MAIL_DOMAINS)}"


def public_ipv4(r) -> str:
    while True:
        address = ipaddress.IPv4Address(r.randint(1 << 24, (224 << 24) - 1))
        if address.is_global and not str(address).endswith(".0"):
            return str(address)


def public_ipv6(r) -> str:
    net = ipaddress.IPv6Network(r.choice(IPV6_NETS))
    host = r.randint(1, 2 ** 32) if r.random() < 0.5 else r.randint(1, 2 ** 96 - 1)
    return (net[host]).compressed


def card_text(r) -> str:
    number = card_number(r)
    style = r.random()
    if len(number) == 15 and style < 0.5:
        return f"{number[:4]} {number[4:10]} {number[10:]}"
    if style < 0.4:
        return group4(number)
    if style < 0.7:
        return group4(number).replace(" ", "-")
    return number


def build(seed: int, docs: int) -> list[dict]:
    """Labelled documents: ``text`` and ``spans`` [(kind, start, end)], look-alikes marked."""
    r = random.Random(seed)
    out = []
    for i in range(docs):
        parts, spans, lookalikes = [], [], 0
        for _ in range(r.randint(1, 3)):
            choice = r.random()
            if choice < 0.45:
                parts.append(lookalike(r, r.choice(LOOKALIKES)))
                lookalikes += 1
                continue
            kind = r.choice(KINDS)
            if kind == EMAIL:
                value = email(r) if r.random() > 0.03 else None
                template = r.choice(EMAIL_SENTENCES)
                if value is None:  # spelled out: a miss we accept
                    first, last = r.choice(FIRST), r.choice(LAST)
                    value = f"{first}.{last} at example dot com"
            elif kind == PHONE:
                hard = r.random() < 0.04
                value = digits(r, r.choice(PHONE_HARD if hard else PHONE_FORMATS))
                template = r.choice(PHONE_SENTENCES)
            elif kind == IP:
                value = public_ipv4(r) if r.random() < 0.7 else public_ipv6(r)
                template = r.choice(IP_SENTENCES)
            elif kind == CARD:
                value = card_text(r)
                template = r.choice(CARD_SENTENCES)
            else:
                code = iban(r)
                value = group4(code) if r.random() < 0.6 else code
                template = r.choice(IBAN_SENTENCES)
            before, after = template.split("{}")
            offset = sum(len(p) + 1 for p in parts) + len(before)
            spans.append((kind, offset, offset + len(value)))
            parts.append(before + value + after)
        out.append({"id": f"pii-{i:05d}", "text": " ".join(parts), "spans": spans,
                    "lookalikes": lookalikes})
    return out


def datatrove_spans(text: str, replacers) -> list[tuple[str, int, int]]:
    found = []
    for kind, rep in replacers:
        for m in rep.regex.finditer(text):
            if rep.validator is None or rep.validator(m.group(0)):
                found.append((kind, m.start(), m.end()))
    return found


def score(docs, finder) -> dict[str, dict[str, float]]:
    """Per kind: precision, recall, and masks inside look-alike-only documents."""
    stats = {k: {"tp_pred": 0, "pred": 0, "tp_gold": 0, "gold": 0} for k in KINDS}
    lookalike_docs = lookalike_hits = 0
    for doc in docs:
        pred = finder(doc["text"])
        gold = doc["spans"]
        for kind, s, e in pred:
            stats[kind]["pred"] += 1
            stats[kind]["tp_pred"] += any(k == kind and s < ge and gs < e for k, gs, ge in gold)
        for kind, s, e in gold:
            stats[kind]["gold"] += 1
            stats[kind]["tp_gold"] += any(k == kind and ps < e and s < pe for k, ps, pe in pred)
        if not gold:
            lookalike_docs += 1
            lookalike_hits += bool(pred)
    out = {k: {"precision": v["tp_pred"] / v["pred"] if v["pred"] else None,
               "recall": v["tp_gold"] / v["gold"] if v["gold"] else None,
               "found": v["pred"], "labelled": v["gold"]} for k, v in stats.items()}
    out["_lookalike_docs"] = {"docs": lookalike_docs, "masked": lookalike_hits}
    return out


def cpu_seconds(fn, texts, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        for t in texts:
            fn(t)
        best = min(best, time.process_time() - t0)
    return best


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--docs", type=int, default=3000)
    p.add_argument("--seed", type=int, default=20240520)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--write-set", metavar="FILE", help="also save the labelled set as JSONL")
    args = p.parse_args(argv)

    docs = build(args.seed, args.docs)
    if args.write_set:
        with open(args.write_set, "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    ours = score(docs, lambda t: [tuple(s) for s in find_pii(t)])
    try:
        from datatrove.pipeline.formatters.pii import PIIFormatter

        dt = PIIFormatter()
        replacers = [(EMAIL, dt.emails_replacer), (IP, dt.ip_replacer)]
        base = score(docs, lambda t: datatrove_spans(t, replacers))
        base_fn = dt.format
    except ImportError:  # the bench extra is not installed
        base, base_fn = None, None

    rows = []
    for kind in KINDS:
        for measure, target in (("precision", PRECISION_TARGET), ("recall", RECALL_TARGET)):
            fig = ours[kind][measure]
            b = base[kind][measure] if base and kind in (EMAIL, IP) else None
            rows.append({"name": f"pii {measure} {kind} ({ours[kind]['labelled']} labelled)",
                         "figure": round(fig, 4), "unit": "fraction",
                         "baseline": None if b is None else round(b, 4),
                         "ratio": None if not b else round(fig / b, 3),
                         "target": target, "met": fig >= target})
    la = ours["_lookalike_docs"]
    share = la["masked"] / la["docs"]
    b_share = base["_lookalike_docs"]["masked"] / la["docs"] if base else None
    rows.append({"name": f"pii look-alike-only docs with any mask ({la['docs']} docs)",
                 "figure": round(share, 4), "unit": "fraction",
                 "baseline": None if b_share is None else round(b_share, 4), "ratio": None,
                 "target": LOOKALIKE_TARGET, "met": share <= LOOKALIKE_TARGET})

    if MANPAGES.is_file():
        with open(MANPAGES, encoding="utf-8") as f:
            texts = [json.loads(line)["text"] for line in f]
        chars = sum(map(len, texts))
        t_ours = cpu_seconds(find_pii, texts, args.repeats)
        t_base = cpu_seconds(base_fn, texts, args.repeats) if base_fn else None
        rows.append({"name": "pii find_pii on man pages, 5 kinds (baseline: datatrove, 2 kinds)",
                     "figure": round(chars / t_ours / 1e6, 2), "unit": "Mchars/s/core",
                     "baseline": None if t_base is None else round(chars / t_base / 1e6, 2),
                     "ratio": None if t_base is None else round(t_base / t_ours, 3),
                     "target": None, "met": True})

    print(f"{'name':62s} {'figure':>8s} {'baseline':>9s} {'ratio':>6s} {'target':>7s}  met")
    for r in rows:
        print(f"{r['name']:62s} {r['figure']!s:>8s} {r['baseline']!s:>9s} {r['ratio']!s:>6s} "
              f"{r['target']!s:>7s}  {'yes' if r['met'] else 'NO'}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"bench": "pii", "seed": args.seed, "docs": len(docs),
                                   "ours": ours, "datatrove": base, "rows": rows},
                                  indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
