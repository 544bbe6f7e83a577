"""Redaction: take a customer's personal data out of a request before it leaves the machine.

`Redactor(extra_patterns).redact_messages(messages)` returns the messages with every personal value
found replaced by a placeholder such as `<EMAIL_1>`, and the number of replacements by kind:

- built in, regular expressions with validation, no dependencies: e-mail addresses (also spelled out:
  "jane dot doe at gmail dot com", "name [at] domain [dot] com"), phone numbers, payment card numbers
  (Luhn-checked), IBANs (ISO 13616 mod-97), IPv4 (not version numbers such as "version 1.2.3.4", nor
  0.x, loopback or netmasks) and IPv6 addresses, API keys and bearer tokens, AWS secret access keys
  (40 characters after an `aws_secret_access_key` / "secret key" keyword), US social security numbers
  (123-45-6789, 123 45 6789; nine bare digits only after "SSN" / "social security"; invalid areas
  000, 666, 9xx, group 00 and serial 0000 are not SSNs), dates of birth (a date after "DOB", "date
  of birth", "born", "geboren", ...), passport numbers (after "passport", "Reisepass", ...), street
  addresses (US/UK "221B Baker Street", German "Hauptstraße 5", French "12 rue de la Paix", PO boxes,
  with a following ZIP/postcode and city when there is one), and people's names, conservatively:
  only after "my name is", "Name:", a title ("Mr.", "Dr.", "Frau"), "Dear" or a sign-off;
- with the optional `ner` extra: people's names and places (PERSON, LOCATION) anywhere, from the
  spaCy recognizer of Microsoft Presidio. `pip install 'replaybench[ner]'` installs
  `presidio-analyzer` and spaCy, not a model: spaCy's English models (`en_core_web_lg`, `_md`, `_sm`)
  are not published on PyPI by spaCy's authors (what is there under such names are third-party
  copies), so install the model package yourself from spaCy's own releases
  (github.com/explosion/spacy-models, a wheel matching the installed spaCy 3.8) after checking where
  it comes from. When presidio-analyzer, spaCy and one of `NER_MODELS` are importable the redactor
  uses them; otherwise it falls back to the built-in detectors without a word (`Redactor(ner=True)`
  or a model name/path insists instead, and says what to install). `Redactor.ner_model` names the
  model in use (None: none).

Pseudonyms are consistent within one call: the same value becomes the same placeholder wherever it
appears in that request's messages, so an answer that repeats it stays checkable; separate calls
(requests) are independent. Placeholders are numbered by first appearance. Values are compared in
a canonical form where one exists: "jane dot doe at gmail dot com" and "jane.doe@gmail.com" are the
same `<EMAIL_n>`, 123-45-6789 and 123456789 the same `<SSN_n>`.

How a text is scanned: each detector, in priority order, finds its candidates in the original text;
a candidate that fails its validator (a 16-digit order number that fails Luhn) or overlaps a span
already claimed by an earlier detector is dropped; then all claimed spans are replaced in one pass.
The order is: built-in detectors, then the NER recognizer (if any), then configured patterns.
Scanning the original text (not text with placeholders in it) means a configured pattern like
`\\d+` can never eat the digits of `<CARD_1>`.

The package: `detectors` (what counts as personal data, and how a match is validated), `ner`
(names and places through Presidio, optional), `redactor` (the `Redactor`, which walks a request
and replaces what the detectors claim), `requests` (the redact step: a run's sampled request
bodies, redacted whole and stored) and `audit` (the one account of a run's redaction).
"""

from replaybench.redact.audit import KIND_LABELS, describe
from replaybench.redact.detectors import BUILTIN_DETECTORS, Detector, iban_ok, luhn_ok, pattern_kind
from replaybench.redact.ner import NER_MODELS, find_ner_model
from replaybench.redact.redactor import MAX_DEPTH, Redactor

__all__ = ["BUILTIN_DETECTORS", "KIND_LABELS", "MAX_DEPTH", "NER_MODELS", "Detector", "Redactor",
           "describe", "find_ner_model", "iban_ok", "luhn_ok", "pattern_kind"]
