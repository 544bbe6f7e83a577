"""The built-in detectors of personal data: a pattern per kind, a validator of each match, and the
canonical form in which two values are the same value (one placeholder)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass

# --- validators ----------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of a string of digits (payment card numbers)."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# ISO 13616 lengths per country; a country not listed is accepted at any length from 15 to 34.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "CH": 21, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TR": 26, "UA": 29,
}


def iban_ok(iban: str) -> bool:
    """ISO 13616: the country's length, and the mod-97 check over the rearranged number."""
    iban = iban.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34 or _IBAN_LENGTHS.get(iban[:2], len(iban)) != len(iban):
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _ipv6_ok(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


_DATE_SHAPE = re.compile(r"\d{1,4}([./-])\d{1,2}\1\d{1,4}")


def _phone_ok(text: str) -> bool:
    digits = sum(ch.isdigit() for ch in text)
    if not 7 <= digits <= 15 or _DATE_SHAPE.fullmatch(text):
        return False
    # national numbers without a country code: at least 9 digits (shorter ones are too often not phones)
    return digits >= 9 or text.startswith(("+", "("))


# --- detectors -----------------------------------------------------------------------------------
#
# Speed: Python's regex engine scans fast only for a pattern that starts with a literal or a
# character class, so each pattern begins with one and checks what precedes it with a lookbehind
# placed after that first character (`\d(?<![\w.]\d)` = a digit not preceded by a word char or dot).
# Kinds with a rare marker (`@`, `sk-`, `eyJ`, `::`) are skipped outright for texts without it.

@dataclass(frozen=True)
class Detector:
    """One kind of personal data: a compiled pattern, an optional validator of the match, and which
    group is the value (0: the whole match; 1: e.g. the token after `Bearer `)."""

    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] | None = None
    group: int = 0
    # lowercase markers: the detector runs only on texts that contain one of them (speed)
    needs: tuple[str, ...] = ()
    # or a cheap pattern the text must match for the detector to run
    gate: re.Pattern[str] | None = None
    shrink: bool = False  # on a failed validation, retry the prefixes that end at a separator
    left: re.Pattern[str] | None = None  # extends the match leftwards (an e-mail's local part)
    # the value is dropped when the text just before it matches (`version ` before an IPv4)
    not_after: re.Pattern[str] | None = None


_SECRET = re.compile(r"""
    eyJ(?<![\w-]eyJ)[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}   # a JWT
  | sk-(?<![\w-]sk-)(?:ant-)?[A-Za-z0-9_-]{16,}                              # OpenAI, Anthropic
  | g(?<![\w]g)(?:h[poust]_[A-Za-z0-9]{30,}|ithub_pat_[A-Za-z0-9_]{30,})     # GitHub
  | A(?<!\wA)[KS]IA[0-9A-Z]{16}\b                                            # AWS access key id
  | x(?<!\wx)ox[abposr]-[A-Za-z0-9-]{10,}                                    # Slack
  | A(?<!\wA)Iza[0-9A-Za-z_-]{35}                                            # Google
  | [srp](?<!\w[srp])k_(?:live|test)_[A-Za-z0-9]{16,}                        # Stripe
""", re.VERBOSE)
_SECRET_MARKERS = ("eyj", "sk-", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "akia", "asia",
                   "xox", "aiza", "_live_", "_test_")
# a token has a digit or is long: "the bearer instrument" is prose, not a credential
_BEARER = re.compile(r"[Bb](?<!\w[Bb])(?i:earer)\s+((?=[A-Za-z\-._~+/]*\d|[A-Za-z0-9\-._~+/]{20})"
                     r"[A-Za-z0-9\-._~+/]{8,}=*)")
_KEY_VALUE = re.compile(
    r"[AaSsPp](?<!\w[AaSsPp])(?i:pi[_-]?key|ecret(?:[_-]?key)?|assword|asswd|ccess[_-]?token|uth[_-]?token)"
    r"[\"']?\s*[:=]\s*[\"']?([^\s\"',;]{8,})")
_KEY_MARKERS = ("key", "secret", "passw", "token")
# found from its `@` (a fast literal search), then extended left over the local part
_EMAIL = re.compile(r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b")
_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+-]{1,64}\Z")
_IBAN = re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"""
    \d(?<![\d.,#+-]\d)(?<![A-Z]{2}\d\d[ ]\d)               # not a phone's digits, not inside an IBAN
    (?: \d{12,18}                                          # contiguous
      | \d{3}([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?     # 4-4-4-4(-3), spaces or dashes
      | (?<=3)[47]\d{2}([ -])\d{6}\2\d{5}                  # Amex 4-6-5
    )
    (?![\d]|[.,]\d)
""", re.VERBOSE)
_IPV6 = re.compile(r"[0-9A-Fa-f:](?<![\w:.][0-9A-Fa-f:])(?:(?<=:)|[0-9A-Fa-f]{0,3}:)"  # first group
                   r"(?:[0-9A-Fa-f]{0,4}:){1,6}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{0,4})"
                   r"(?!\w|:[\w:]|\.\w)")
_IPV6_GATE = re.compile(r"::|:[0-9A-Fa-f]{1,4}:")
_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)")
_PHONE = re.compile(r"""
    [+(\d](?<![\w+#/.,-][+(\d])(?<!\d[ -][+(\d])           # not the tail of a longer number
    (?: (?<=\+)\d{1,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}   # +49 30 1234567, +1 (555) 123-4567
      | (?<=0)0\d{1,3}(?:[ .-]\d{1,5}){2,6}                # 0049 30 1234567
      | (?<=\()\d{2,5}\)[ .-]?\d{2,5}(?:[ .-]?\d{2,5}){0,3}  # (555) 123-4567, (030) 123 4567
      | (?<=0)\d{1,4}(?:[ /.-]\d{2,8}){1,4}                # 030 1234567, 06 12 34 56 78
      | (?<=\d)\d{2}([ .-])\d{3}\1\d{4}                    # 555-123-4567
    )
    (?![\w-]|[.,]\d)
""", re.VERBOSE)

# --- the kinds found next to a keyword, and addresses and names -----------------------------------

def _keywords(first: str, pattern: str) -> re.Pattern[str]:
    """`pattern`, a choice of keywords that each begin a word with one of the letters `first`: tried
    only where such a word begins, which is several times faster than trying every position."""
    return re.compile(rf"\b(?=[{first}{first.upper()}])(?:{pattern})")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# "version 1.2.3.4", "build 10.0.0.1", "foo==1.2.3.4": a version, not an address
_VERSION_BEFORE = re.compile(
    r"(?:\b(?i:version|vers|ver|v|release|rel|build|rev|revision|patch|firmware|fw|update)\.?"
    r"(?:[ ](?i:no\.?|nr\.?|number|\#))?[ \t]*[:=#]?[ \t]*|[=~<>!]=[ \t]*)\Z")

# an AWS secret access key: 40 base64 characters after a keyword (the key itself has no marker)
_AWS_SECRET = _keywords("as",
    r"(?i:(?:aws[ _-]?)?secret[ _-]?(?:access[ _-]?)?key|aws[ _-]?secret)"
    r"[^\n]{0,40}?(?<![A-Za-z0-9/+])([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])")

# US social security numbers: 3-2-4 with dashes or spaces anywhere, nine bare digits after a keyword
_SSN = re.compile(r"\d(?<![\w.,+/-]\d)(?<!\d[ -]\d)\d{2}([- ])\d{2}\1\d{4}(?!\w|[ .,/-]\d)")
_SSN_KEYWORD = _keywords("s",
    r"(?i:\b(?:ssn|ss\#|soc(?:ial|\.)?[ -]?sec(?:urity|\.)?(?:[ -]?(?:number|no\.?|nr\.?|\#))?))"
    r"(?:[^\w\n]{0,4}(?:is|was|number|no)\b){0,2}[^\w\n]{0,4}"
    r"(\d{9}|\d{3}-\d{2}-\d{4}|\d{3} \d{2} \d{4})(?!\w|[.,/-]\d)")

_MONTH = (r"(?:jan(?:uary|uar)?|feb(?:ruary|ruar)?|m(?:ar(?:ch)?|ärz|aerz)|apr(?:il)?|ma[iy]|jun[ei]?"
          r"|jul[iy]?|aug(?:ust)?|sep(?:t(?:ember)?)?|o[ck]t(?:ober)?|nov(?:ember)?|de[cz](?:ember)?)")
_DATE = (rf"\d{{1,2}}[./-]\d{{1,2}}[./-](?:\d{{4}}|\d{{2}})"             # 03/04/1985, 04.03.85
         rf"|\d{{4}}[./-]\d{{1,2}}[./-]\d{{1,2}}"                         # 1985-03-04
         rf"|(?i:{_MONTH})\.?[ ]\d{{1,2}}(?:st|nd|rd|th)?,?[ ]\d{{4}}"    # March 3, 1985
         rf"|\d{{1,2}}(?:st|nd|rd|th|\.)?[ ](?:of[ ])?(?i:{_MONTH})\.?,?[ ]\d{{4}}")  # 3 March 1985
_DATE_OF_BIRTH = _keywords("dbgnf",
    r"(?i:\b(?:d\.?o\.?b\b\.?|date[ ]of[ ]birth|birth[ -]?date|birthday|born(?:[ ]on)?|geboren(?:[ ]am)?"
    r"|geburtsdatum|geburtstag|geb\.|date[ ]de[ ]naissance|née?[ ]le|fecha[ ]de[ ]nacimiento))"
    r"(?:[^\w\n]{0,4}(?i:is|was|am|on|le)\b){0,2}[^\w\n]{0,4}"
    rf"({_DATE})(?!\w|[./-]\d)")
_DOB_MARKERS = ("dob", "d.o.b", "birth", "born", "geb", "naissance", "né", "nacimiento")

_PASSPORT = _keywords("prn",
    r"(?i:\b(?:passport|reisepass|passeport|pasaporte|passnummer|pass-?nr\.?)"
    r"(?:[ _-]?(?:no\.?|nr\.?|num(?:ber|ero|mer)?|\#|id))?)"
    r"(?:[^\w\n]{0,4}(?i:is|was|number|no|nr|lautet)\b){0,2}[^\w\n]{0,4}"
    r"(?:[A-Z]{2,3}[ ])?"                                             # a country code: "GB 509834112"
    r"(?<![\w-])([A-Z0-9]{6,9})(?![\w-])")
_PASSPORT_MARKERS = ("passport", "reisepass", "passeport", "pasaporte", "passnummer", "pass-nr", "passnr")

# e-mail addresses spelled out: "jane dot doe at gmail dot com", "john [at] example [dot] com";
# found from the "at", then extended left over the local part like a plain e-mail's
_SPELLED_AT = (r"(?:[ \t]*[\[({<][ \t]*(?i:at)[ \t]*[\])}>][ \t]*|[ \t]+(?i:at)[ \t]+"
               r"|[ \t]+@[ \t]*|(?<=\w)@[ \t]+)")
_SPELLED_DOT = r"(?:[ \t]*[\[({<][ \t]*(?i:dot)[ \t]*[\])}>][ \t]*|[ \t]+(?i:dot)[ \t]+|\.)"
_EMAIL_SPELLED = re.compile(
    rf"(?=[ \t\[({{<@]){_SPELLED_AT}"
    rf"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?{_SPELLED_DOT})+[A-Za-z]{{2,24}}(?![\w-]|\.\w)")
_EMAIL_SPELLED_LOCAL = re.compile(rf"(?<![\w.%+-])[A-Za-z0-9_%+-]+(?:{_SPELLED_DOT}[A-Za-z0-9_%+-]+)*\Z")
_SPELLED_AT_RE = re.compile(_SPELLED_AT)
_SPELLED_DOT_WORD = re.compile(r"[ \t]*[\[({<][ \t]*(?i:dot)[ \t]*[\])}>][ \t]*|[ \t]+(?i:dot)[ \t]+")
# "bob at yahoo.com" is an address, "look at github.com" is not: a plain " at " before a domain
# written with real dots counts only for the big mail providers
_MAIL_PROVIDERS = frozenset({
    "gmail", "googlemail", "yahoo", "ymail", "hotmail", "outlook", "live", "msn", "aol", "icloud",
    "me", "mac", "gmx", "web", "proton", "protonmail", "pm", "t-online", "freenet", "posteo",
    "mailbox", "yandex", "mail", "zoho", "fastmail", "hey", "tutanota", "orange", "free", "laposte",
    "libero", "qq", "163", "naver"})
# a spelled-out dot must end in a real top-level domain: "config dot json" is a file
_COMMON_TLDS = _words(
    "com net org edu gov mil int io co uk de at ch fr nl be lu es it pt ie eu se no dk fi is pl cz sk "
    "hu ro bg gr hr si ru ua tr il in cn jp kr tw hk sg au nz ca us mx br ar cl za me info biz name app "
    "dev ai email online")


def _email_ok(value: str) -> bool:
    # `git@github.com:acme/app.git` is a repository's address, the same for everyone
    return not value.startswith("git@")


def _email_spelled_ok(value: str) -> bool:
    at = _SPELLED_AT_RE.search(value)
    if at is None:
        return False
    domain = value[at.end():]
    labels = re.split(_SPELLED_DOT, domain)
    if _SPELLED_DOT_WORD.search(domain):
        return labels[-1].lower() in _COMMON_TLDS
    if "@" in at.group() or any(ch in at.group() for ch in "[({<"):
        return True
    # gmail.com, yahoo.co.uk; not mail.google.com
    registrable = len(labels) == 2 or (len(labels) == 3 and labels[1].lower() in ("co", "com"))
    return registrable and labels[0].lower() in _MAIL_PROVIDERS


def _canonical_email(value: str) -> str:
    """`jane dot doe at Gmail dot com` -> `jane.doe@gmail.com`: the local part as written."""
    if "@" not in value or " " in value:
        at = _SPELLED_AT_RE.search(value)
        if at is not None:
            local, domain = value[:at.start()], value[at.end():]
            value = re.sub(_SPELLED_DOT, ".", local) + "@" + re.sub(_SPELLED_DOT, ".", domain)
    local, _, domain = value.rpartition("@")
    return f"{local}@{domain.lower()}"


# Street addresses. House number first (US, UK): "221B Baker Street", "55 W 42nd St", then a unit
# and, when a ZIP or postcode follows, the city: ", Springfield, IL 62704", ", London NW1 6XE".
_CAP = r"[A-ZÀ-ÖØ-Þ](?:['’][A-ZÀ-ÖØ-Þ])?(?:[a-zß-öø-ÿ]+[A-ZÀ-ÖØ-Þ])?[a-zß-öø-ÿ]+(?:-[A-ZÀ-ÖØ-Þ][a-zß-öø-ÿ]+)*"
_STREET_SUFFIX = (r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr|Court|Ct|Place|Pl"
                  r"|Terrace|Ter|Way|Circle|Cir|Parkway|Pkwy|Highway|Hwy|Square|Sq|Loop|Trail|Trl"
                  r"|Crescent|Close|Row|Alley|Walk|Plaza|Pike|Gardens|Mews)\b\.?")
_DIRECTION = r"(?:[NSEW]|N[EW]|S[EW]|North|South|East|West)\b\.?"
_UK_POSTCODE = r"[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}\b"
_ADDRESS_US = re.compile(
    r"[1-9](?<![\w.,/#$€£-][1-9])(?<!\d[ ][1-9])"
    r"(?<![Ii]n[ ](?=(?:19|20)\d\d\b)[1-9])"              # "in 2024 Main Street businesses": a year
    r"\d{0,5}[A-Za-z]?"
    rf"(?:[ ]+(?:{_DIRECTION}|{_CAP}|\d{{1,3}}(?:st|nd|rd|th))){{1,4}}[ ]+{_STREET_SUFFIX}"
    rf"(?:[ ]+{_DIRECTION})?"
    r"(?:,?[ ]+(?:Apt|Apartment|Suite|Ste|Unit|Flat|Floor|Fl|\#)\.?[ ]?\#?[A-Za-z0-9-]{1,6}\b)?"
    rf"(?:,[ ]*{_CAP}(?:[ ]{_CAP}){{0,2}},?[ ]+"
    rf"(?:[A-Z]{{2}}[ ]+\d{{5}}(?:-\d{{4}})?\b|{_UK_POSTCODE}|\d{{5}}\b))?")
# Street name first (German, Dutch...): "Hauptstraße 5", "Musterstr. 12a", "Berliner Straße 12",
# "Kaiser-Wilhelm-Ring 14", then ", 10115 Berlin"
_DE_SUFFIX = r"(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|ufer|chaussee|steig|pfad|markt|straat|laan)"
_DE_WORD = r"(?:Straße|Strasse|Str\.|Weg|Allee|Platz|Gasse|Ring|Damm|Ufer|Chaussee|Markt)"
_DE_TOWN = r"\d{5}[ ]+[A-ZÄÖÜ][a-zäöüß]+(?:[ -][A-ZÄÖÜ][a-zäöüß]+)?"
_ADDRESS_DE = re.compile(
    r"[A-ZÄÖÜ](?<![\w-][A-ZÄÖÜ])"
    rf"(?:[a-zäöüß]+(?:-[A-ZÄÖÜ][a-zäöüß]+)*(?:{_DE_SUFFIX}|-{_DE_WORD})"   # Hauptstraße, Kaiser-Wilhelm-Ring
    rf"|[a-zäöüß]+er[ ]{_DE_WORD})"                                          # Berliner Straße
    r"[ ]?[1-9]\d{0,3}(?:[ ]?[a-z]\b)?(?![\w.,]\d)"
    rf"(?:,?[ ]+{_DE_TOWN})?")
_ADDRESS_DE_MARKERS = ("str", "weg", "allee", "platz", "gasse", "ring", "damm", "ufer", "chaussee", "steig",
                       "pfad", "markt", "laan")
# "Am Markt 3", "An der Alster 5": only with the postcode and town ("Im Jahr 2024" is no address)
_ADDRESS_DE_PREFIXED = re.compile(
    r"[AIZU](?<![\w-][AIZU])(?:[mn]|uf|um|ur|nter)[ ](?:de[mnr][ ])?[A-ZÄÖÜ][a-zäöüß]+"
    rf"[ ][1-9]\d{{0,3}}[a-z]?,?[ ]+{_DE_TOWN}")
# French: "12 rue de la Paix, 75002 Paris"
_ADDRESS_FR = re.compile(
    r"[1-9](?<![\w.,-][1-9])\d{0,3}(?:[ ]?(?:bis|ter))?,?[ ]+"
    r"(?i:rue|avenue|av\.|boulevard|bd|place|chemin|allée|impasse|quai|route|cours)[ ]+"
    r"(?:(?:de|du|des|la|le|l'|d')[ ]*)*[A-ZÀ-Ý][\w'-]+(?:[ ][A-ZÀ-Ý][\w'-]+){0,3}"
    r"(?:,?[ ]+\d{5}[ ]+[A-ZÀ-Ý][\w-]+)?")
_ADDRESS_FR_MARKERS = ("rue ", "avenue", "av.", "boulevard", "bd ", "place", "chemin", "allée", "impasse",
                       "quai", "route", "cours")
_PO_BOX = re.compile(r"[PpB](?<!\w[PpB])(?:\.?[ ]?[Oo]\.?[ ]?Box|OX|ox|ostfach)[ ]+\d{1,6}\b")

# People's names without the `ner` extra: only where the text says it is one.
_TITLES = r"(?:Mr|Mrs|Ms|Mx|Dr|Prof|Herr|Frau|Mme|Mlle)"
_NAME_PARTICLE = r"(?:van|von|de|der|den|da|di|du|del|della|le|la|bin|al|ter)"
_NAME = (rf"(?:{_CAP}|[A-Z]{{2,}}(?:['-][A-Z]+)*)"
         rf"(?:(?:[ ][A-Z]\.)?[ ](?:{_NAME_PARTICLE}[ ])?(?:{_CAP}|[A-Z]{{2,}}(?:['-][A-Z]+)*)){{0,3}}")
_PERSON = _keywords("mijflcpsrgeayndhtb",
    r"(?:"
    r"(?i:\b(?:my[ ]name[ ]is|my[ ]name's|mein[ ]name[ ]ist|ich[ ]heiße|je[ ]m'appelle|me[ ]llamo)[ ]+)"
    r"|(?<![\w])(?<![\w][ ])"                              # "Name:", not "Product name:"
    r"(?i:(?:(?:full|first|last|customer|contact|patient|client|legal|sender|recipient|cardholder"
    r"|card[ ]holder|passenger|guest|employee|applicant|your|my)[ _]?)?name"
    r"|account[ _]holder|(?:contact[ ])?person|signed(?:[ ]by)?|attn\.?|passenger|applicant)"
    r"[\"']?[ \t]*[:=][ \t]*[\"']?"
    rf"|\b{_TITLES}\.?[ ]+"
    rf"|\b(?:Dear|Liebe[rs]?|Sehr[ ]geehrte[rs]?)[ ]+(?!{_TITLES}\b)"
    r"|(?i:\b(?:regards|sincerely|yours[ ]truly|grüßen?|gruß|grüsse|cordialement)),?[ \t]*\n?[ \t]*"
    r"|(?i:\b(?:thanks|thank[ ]you|cheers|best|best[ ]wishes)),?[ \t]*\n[ \t]*"
    rf")({_NAME})(?![\w'’-])")
_PERSON_MARKERS = ("name", "person", "mr", "ms", "mx", "dr", "prof", "herr", "frau", "mme", "mlle",
                   "dear", "liebe", "geehrte", "regards", "sincerely", "truly", "grü", "gruß", "cordialement",
                   "thank", "cheers", "best", "holder", "signed", "attn", "passenger", "applicant", "heiße",
                   "appelle", "llamo")
# words that follow "Dear" or a sign-off but name no one
_NOT_NAMES = _words(
    "the a an all everyone team support customer customers client clients user users sir madam madame "
    "friend friends colleague colleagues member members valued service services department hello hi "
    "there mr mrs ms mx dr prof herr frau admin administrator manager sales billing kunde kundin kunden "
    "damen herren world assistant bot inc ltd llc gmbh company staff hr it ai gpt chatgpt claude "
    "customer-service your our my regards thanks best sincerely management office shop store")


def _person_ok(name: str) -> bool:
    return not any(w.lower().rstrip(".") in _NOT_NAMES for w in name.split())


def _ssn_ok(text: str) -> bool:
    digits = text.replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _aws_secret_ok(text: str) -> bool:
    # random base64 has both cases and a digit or symbol; a hex digest or a word run has not
    return (any(c.isupper() for c in text) and any(c.islower() for c in text)
            and any(c.isdigit() or c in "/+" for c in text))


def _passport_ok(text: str) -> bool:
    return sum(c.isdigit() for c in text) >= 3


# `secret = process.env.SECRET`, `password: ${DB_PASSWORD}`: a reference to a secret, not one
_SECRET_REFERENCE = re.compile(r"\$\{?\w+\}?|(?:process\.env|os\.environ|import\.meta\.env|ENV|env)[.\[]")


def _key_value_ok(text: str) -> bool:
    return _SECRET_REFERENCE.match(text) is None


def _ipv4_ok(text: str) -> bool:
    parts = text.split(".")
    if not all(int(p) <= 255 and (len(p) == 1 or p[0] != "0") for p in parts):
        return False
    # 0.0.0.0, 127.0.0.1 and 255.255.255.0 in code and configs locate no one
    return parts[0] not in ("0", "127", "255")


def _card_ok(text: str) -> bool:
    digits = text.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


BUILTIN_DETECTORS: tuple[Detector, ...] = (
    Detector("SECRET", _SECRET, needs=_SECRET_MARKERS),
    Detector("SECRET", _BEARER, group=1, needs=("bearer",)),
    Detector("AWS_SECRET", _AWS_SECRET, _aws_secret_ok, group=1, needs=("secret",)),
    Detector("SECRET", _KEY_VALUE, _key_value_ok, group=1, needs=_KEY_MARKERS),
    Detector("EMAIL", _EMAIL, _email_ok, needs=("@",), left=_EMAIL_LOCAL),
    Detector("EMAIL", _EMAIL_SPELLED, _email_spelled_ok, needs=("at", "@"), left=_EMAIL_SPELLED_LOCAL),
    Detector("IBAN", _IBAN, iban_ok, shrink=True),
    Detector("CARD", _CARD, _card_ok, shrink=True),
    Detector("SSN", _SSN_KEYWORD, _ssn_ok, group=1, needs=("ssn", "ss#", "soc")),
    Detector("SSN", _SSN, _ssn_ok),
    Detector("DATE_OF_BIRTH", _DATE_OF_BIRTH, group=1, needs=_DOB_MARKERS),
    Detector("PASSPORT", _PASSPORT, _passport_ok, group=1, needs=_PASSPORT_MARKERS),
    Detector("IPV6", _IPV6, _ipv6_ok, gate=_IPV6_GATE),
    Detector("IPV4", _IPV4, _ipv4_ok, needs=(".",), not_after=_VERSION_BEFORE),
    Detector("ADDRESS", _ADDRESS_US, needs=(" ",)),
    Detector("ADDRESS", _ADDRESS_DE, needs=_ADDRESS_DE_MARKERS),
    Detector("ADDRESS", _ADDRESS_DE_PREFIXED, gate=re.compile(r"\d{5}[ ]+[A-ZÄÖÜ]")),
    Detector("ADDRESS", _ADDRESS_FR, needs=_ADDRESS_FR_MARKERS),
    Detector("ADDRESS", _PO_BOX, needs=("box", "postfach")),
    Detector("PHONE", _PHONE, _phone_ok),
    Detector("PERSON", _PERSON, _person_ok, group=1, needs=_PERSON_MARKERS),
)

# The form in which two values are the same value (same placeholder); other kinds: as written.
CANONICAL: dict[str, Callable[[str], str]] = {
    "EMAIL": _canonical_email,
    "SSN": lambda v: v.replace("-", "").replace(" ", ""),
    "CARD": lambda v: v.replace("-", "").replace(" ", ""),
    "IBAN": lambda v: v.replace(" ", "").upper(),
    "PASSPORT": str.upper,
}


def pattern_kind(name: str) -> str:
    """The placeholder kind of a configured pattern: its name in upper case, `[A-Z0-9_]` only."""
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


def separator_prefixes(text: str) -> list[tuple[int, str]]:
    """The prefixes of a separated number that end just before a separator, longest first."""
    ends = [i for i, ch in enumerate(text) if ch in " -"]
    return [(e, text[:e]) for e in reversed(ends)]
