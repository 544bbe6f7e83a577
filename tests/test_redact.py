"""Redaction: every kind found (and its near-misses left alone), pseudonyms consistent within a
request, and — end to end, at a real server on loopback that records every body it receives —
none of a customer's personal data leaves the machine, while the audit and the report count it."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from flows.nightly import nightly
from replaybench import runs
from replaybench.config import Candidate, Settings, load_settings
from replaybench.errors import ConfigError, ReplaybenchError
from replaybench.redact import Redactor, describe, iban_ok, luhn_ok, ner
from replaybench.redact.requests import Redaction, redact_run
from replaybench.replay import replay_candidate
from replaybench.sample import draw_sample
from replaybench.warehouse import open_warehouse

from .conftest import write_config
from .redaction_corpus import NEGATIVES, POSITIVES, score
from .servers import RecordingFleet

RUN_DATE = date(2026, 11, 28)


def only(text: str, redactor: Redactor | None = None) -> tuple[str, dict[str, int]]:
    return (redactor or Redactor()).redact_text(text)


def redact_messages(messages: list) -> tuple[list, dict[str, int]]:
    return Redactor().redact_messages(messages)


@pytest.fixture(autouse=True)
def no_spacy_model(monkeypatch):
    """Every Redactor here uses the built-in detectors, even on a machine with the `ner` extra and a
    spaCy model installed: the counts asserted below are theirs."""
    monkeypatch.setattr(ner, "NER_MODELS", ())


# --- each kind, in its realistic variants ----------------------------------------------------------

FOUND = {
    "EMAIL": ["jane.doe+billing@mail.support.example.co.uk", "j.smith@sub.example.org",
              "ALICE_99@Example.COM", "bob-k@eu.mail.example.net", "x@y.io"],
    "PHONE": ["+1 (555) 123-4567", "+44 20 7946 0958", "+49 (0)30 1234567", "+33 1 23 45 67 89",
              "+4915112345678", "0044 20 7946 0958", "030 1234 5678", "0171-1234567",
              "(555) 987-6543", "555-123-4567", "555.123.4567", "06 12 34 56 78"],
    "CARD": ["4111 1111 1111 1111", "5500-0055-5555-5559", "4012888888881881", "3782 822463 10005",
             "378282246310005", "6011 1111 1111 1117"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
             "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "CH93 0076 2011 6238 5295 7"],
    "IPV4": ["192.168.1.10", "10.0.0.254", "203.0.113.7", "8.8.8.8"],
    "IPV6": ["2001:db8::8a2e:370:7334", "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "fe80::1",
             "::1", "::ffff:192.0.2.1", "2606:4700:4700::1111"],
    "SECRET": ["sk-proj-Ab12Cd34Ef56Gh78Ij90Kl", "sk-ant-api03-Zy98Xw76Vu54Ts32Rq10Po",
               "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "github_pat_11ABCDEFG0123456789_abcdefghijklmn",
               "AKIAIOSFODNN7EXAMPLE", "xoxb-2048-abcdefghijkl", "xoxp-1234567890-0987654321",
               "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
               "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
               "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
}
CASES = [(kind, value) for kind, values in FOUND.items() for value in values]


@pytest.mark.parametrize(("kind", "value"), CASES, ids=[f"{k}:{v[:24]}" for k, v in CASES])
def test_each_kind_is_found_in_running_text(kind, value):
    text = f"Hi, it's about this: {value}. Thanks!"
    out, counts = only(text)
    assert out == f"Hi, it's about this: <{kind}_1>. Thanks!"
    assert counts == {kind: 1}


@pytest.mark.parametrize("text", [
    "Authorization: Bearer tok_9f8e7d6c5b4a3210",
    "curl -H 'authorization: bearer 0123456789abcdef'",
    'config = {"api_key": "Zq81mLp0Rt5vWx2c"}',
    "password=Hunter2Hunter2",
])
def test_bearer_tokens_and_key_values_lose_the_secret_not_the_label(text):
    out, counts = only(text)
    assert counts == {"SECRET": 1}
    assert "<SECRET_1>" in out and out.split("<SECRET_1>")[0] in text
    assert any(word in out.lower() for word in ("bearer", "api_key", "password"))


def test_a_card_followed_by_its_expiry_is_still_found():
    assert only("card 4111 1111 1111 1111 12/27 cvc 123")[0] == "card <CARD_1> 12/27 cvc 123"


def test_an_ipv6_with_a_zone_or_in_brackets_and_an_ipv4_with_a_port():
    out, counts = only("ssh fe80::1%eth0, http://[2001:db8::1]:8080/ and 10.1.2.3:5432")
    assert out == "ssh <IPV6_1>%eth0, http://[<IPV6_2>]:8080/ and <IPV4_1>:5432"


# --- near-misses are left alone --------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "order 1234567812345678 shipped",              # 16 digits, fails Luhn: an order number
    "ref 4111 1111 1111 1112",                     # a card's shape, fails Luhn
    "IBAN DE89 3704 0044 0532 0130 01",            # fails mod-97
    "GB82WEST12345698765433",
    "running version 1.2.3.4.5 of the agent",
    "your order #4829301 is on its way",
    "delivered on 2026-11-20, or 01.02.2024, or 11/20/2026 at 14:03:11",
    "it costs $1,299.00 (or € 49,99, 1 299,00 zł)",
    "MAC 00:1A:2B:3C:4D:5E and std::vector<int>",
    "the bearer instrument is void; see RFC 6750",
    "ISBN 978-3-16-148410-0, 100 kg, 3.14159, 42 %",
    "set max_tokens=4096 and token: abc",
])
def test_near_misses_are_not_redacted(text):
    assert only(text) == (text, {})


# --- the kinds found by their context (issue 12): keyword, shape, validation ---------------------

IN_CONTEXT = [
    ("My SSN is 123-45-6789, thanks", "SSN", "123-45-6789"),
    ("SSN 123456789 on file", "SSN", "123456789"),
    ("social security number: 219 09 9999", "SSN", "219 09 9999"),
    ("creds aws_secret_access_key=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("my AWS secret key is je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY ok?", "AWS_SECRET",
     "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY"),
    ("DOB: 03/04/1985", "DATE_OF_BIRTH", "03/04/1985"),
    ("date of birth March 3, 1985.", "DATE_OF_BIRTH", "March 3, 1985"),
    ("I was born on 1985-03-04.", "DATE_OF_BIRTH", "1985-03-04"),
    ("geboren am 4. März 1985", "DATE_OF_BIRTH", "4. März 1985"),
    ("Passport number: 533380006.", "PASSPORT", "533380006"),
    ("Reisepass-Nr. C01X00T47", "PASSPORT", "C01X00T47"),
    ("write to jane dot doe at gmail dot com", "EMAIL", "jane dot doe at gmail dot com"),
    ("write to john [at] example [dot] com", "EMAIL", "john [at] example [dot] com"),
    ("write to mary (at) example.com", "EMAIL", "mary (at) example.com"),
    ("Ship to 742 Evergreen Terrace, Springfield, IL 62704 today", "ADDRESS",
     "742 Evergreen Terrace, Springfield, IL 62704"),
    ("Lieferadresse: Hauptstraße 5, 10115 Berlin", "ADDRESS", "Hauptstraße 5, 10115 Berlin"),
    ("Hi, my name is Jane Doe.", "PERSON", "Jane Doe"),
    ("Dr. Emily Chen will call.", "PERSON", "Emily Chen"),
    ("Name: John Smith", "PERSON", "John Smith"),
]


@pytest.mark.parametrize(("text", "kind", "value"), IN_CONTEXT,
                         ids=[f"{k}:{v[:20]}" for _, k, v in IN_CONTEXT])
def test_the_kinds_found_by_their_context(text, kind, value):
    assert only(text) == (text.replace(value, f"<{kind}_1>"), {kind: 1})


@pytest.mark.parametrize("text", [
    "Please upgrade to version 1.2.3.4 first",     # a version, not an IPv4 address
    "Build 10.0.0.1 fixed it; release 4.3.2.1 is out; ver 3.1.0.22",
    "pip install foo==1.2.3.4",
    "curl http://127.0.0.1:8000/ and bind 0.0.0.0, netmask 255.255.255.0",
    "SSN 000-12-3456, 666-12-3456, 912-12-3456, 123-00-4567, 123-45-0000",  # no such SSNs
    "order number 123456789 is delayed",           # nine digits without a keyword
    "The contract started on March 3, 1985.",      # a date, not a birth
    "Passport photo requirements: 35x45 mm",
    "Look at github.com, or at config dot json",
    "Dear Customer,\nyour order has shipped.\n\nBest regards,\nThe Support Team",
    "Product name: Wireless Mouse M185",
    "In 2024 Main Street businesses grew 3 %.",
    "aws_secret_access_key = ${AWS_SECRET_ACCESS_KEY}; const secret = process.env.SECRET;",
    "git clone git@github.com:acme/replaybench.git",
])
def test_near_misses_of_the_context_kinds_are_not_redacted(text):
    assert only(text) == (text, {})


def test_a_value_written_two_ways_gets_one_placeholder():
    out, counts = only("jane.doe@gmail.com, i.e. jane dot doe at Gmail dot com; "
                       "SSN 123-45-6789, typed once as SSN 123456789")
    assert out == "<EMAIL_1>, i.e. <EMAIL_1>; SSN <SSN_1>, typed once as SSN <SSN_1>"
    assert counts == {"EMAIL": 2, "SSN": 2}


def test_the_validators():
    assert luhn_ok("4111111111111111") and not luhn_ok("4111111111111112")
    assert luhn_ok("378282246310005") and not luhn_ok("1234567812345678")
    assert iban_ok("DE89 3704 0044 0532 0130 00") and not iban_ok("DE89 3704 0044 0532 0130 01")
    assert iban_ok("GB82WEST12345698765432") and not iban_ok("DE8937040044053201300000")  # length


# --- the labelled corpus: recall per kind and false positives --------------------------------------

# Floors for the built-in detectors, measured 2026-11-29 on tests/redaction_corpus.py (203 values in
# 178 strings, 103 negatives): every structured kind 1.000, ADDRESS 1.000 (30 values), PERSON 0.903
# (28 of 31; the misses have no cue: "Hi, I'm Sarah Connor", "a reply to Priya Sharma", "my manager,
# Kevin Park"); 2 of 103 negatives changed, 1.9 % ("Dr. Pepper", the subnet 10.0.0.0/8); no span in
# a positive off its labelled values. `pytest -s tests/test_redact.py -k corpus` prints the table.
RECALL_FLOOR = 0.95                                  # e-mail, SSN, AWS key, date of birth, passport...
RECALL_FLOORS = {"ADDRESS": 0.90, "PERSON": 0.80}    # rules, without the `ner` extra
FALSE_POSITIVE_RATE = 0.02                           # share of negative strings changed at all
SPURIOUS_SPAN_RATE = 0.02                            # share of spans in positives on no labelled value


def test_the_corpus_is_labelled_and_large_enough():
    assert len(POSITIVES) + len(NEGATIVES) >= 200 and len(NEGATIVES) >= 80
    for text, labels in POSITIVES:
        assert labels and all(value in text for _, value in labels), text
    assert len(set(NEGATIVES)) == len(NEGATIVES) and len({t for t, _ in POSITIVES}) == len(POSITIVES)
    kinds = {kind for _, labels in POSITIVES for kind, _ in labels}
    assert kinds >= {"SSN", "AWS_SECRET", "DATE_OF_BIRTH", "PASSPORT", "ADDRESS", "PERSON", "EMAIL"}


def test_corpus_recall_per_kind_and_false_positives_hold_their_floors():
    result = score(Redactor(ner=False))
    print("\n" + result.table())
    for kind in result.kinds:
        floor = RECALL_FLOORS.get(kind, RECALL_FLOOR)
        assert result.recall(kind) >= floor, f"{kind}: {result.recall(kind):.3f} < {floor}\n{result.table()}"
    assert len(result.changed) / len(NEGATIVES) <= FALSE_POSITIVE_RATE, result.table()
    assert len(result.spurious) / result.spans <= SPURIOUS_SPAN_RATE, result.table()


# --- names and places through Presidio: the optional `ner` extra ------------------------------------

def test_without_a_spacy_model_the_built_in_rules_run_and_insisting_says_what_to_install():
    assert Redactor().ner_model is None and Redactor(ner=False).ner_model is None
    assert only("Name: Jane Doe, ask Priya Sharma") == ("Name: <PERSON_1>, ask Priya Sharma", {"PERSON": 1})
    with pytest.raises(ValueError, match=r"pip install 'replaybench\[ner\]'"):
        Redactor(ner=True)
    with pytest.raises(ValueError, match="'no_such_model' for redaction is not installed"):
        Redactor(ner="no_such_model")


def test_with_the_extra_presidio_finds_names_and_places_anywhere(tmp_path):
    """Runs where the `ner` extra is installed: a spaCy pipeline made here (an entity ruler, no
    downloaded weights) stands in for a trained model."""
    spacy = pytest.importorskip("spacy")
    pytest.importorskip("presidio_analyzer")
    nlp = spacy.blank("en")
    nlp.add_pipe("entity_ruler").add_patterns([
        {"label": "PERSON", "pattern": [{"TEXT": "Priya"}, {"TEXT": "Sharma"}]},
        {"label": "GPE", "pattern": "Leeds"}])
    nlp.to_disk(tmp_path / "model")
    r = Redactor(ner=str(tmp_path / "model"))
    assert r.ner_model == str(tmp_path / "model")
    out, counts = r.redact_text("Reply to Priya Sharma (born 7 Sept 1964 in Leeds), Name: Priya Sharma")
    # the built-in rules claim first; the same name gets the same placeholder from either
    assert out == "Reply to <PERSON_1> (born <DATE_OF_BIRTH_1> in <LOCATION_1>), Name: <PERSON_1>"
    assert counts == {"DATE_OF_BIRTH": 1, "LOCATION": 1, "PERSON": 2}


# --- pseudonyms -----------------------------------------------------------------------------------

def test_pseudonyms_are_consistent_within_a_request_and_independent_across_requests():
    messages = [
        {"role": "system", "content": "Escalate to help@acme.example.com."},
        {"role": "user", "content": "I'm ann@example.org (not bob@example.org). Mail ann@example.org!"},
        {"role": "assistant", "content": "Noted, ann@example.org; cc help@acme.example.com."},
    ]
    original = json.loads(json.dumps(messages))
    out, counts = redact_messages(messages)
    assert messages == original  # the input is not changed
    assert [m["content"] for m in out] == [
        "Escalate to <EMAIL_1>.",
        "I'm <EMAIL_2> (not <EMAIL_3>). Mail <EMAIL_2>!",
        "Noted, <EMAIL_2>; cc <EMAIL_1>.",
    ]
    assert counts == {"EMAIL": 6}
    # another request: numbering starts afresh, bob is not remembered as EMAIL_3
    again, _ = redact_messages([{"role": "user", "content": "bob@example.org"}])
    assert again[0]["content"] == "<EMAIL_1>"


def test_kinds_are_numbered_separately():
    out, counts = only("a@b.io, 10.0.0.1, c@d.io, 10.0.0.2, a@b.io")
    assert out == "<EMAIL_1>, <IPV4_1>, <EMAIL_2>, <IPV4_2>, <EMAIL_1>"
    assert counts == {"EMAIL": 3, "IPV4": 2}


# --- content-part lists, tool calls -----------------------------------------------------------------

def test_content_part_lists_tool_calls_and_tool_results():
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,c2stYWJj+QHgb@x.io"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Refund card 4111111111111111"},
                                     image,
                                     {"type": "text", "text": "and mail me at ann@example.org"}]},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "refund", "arguments": json.dumps(
                {"card": "4111111111111111", "email": "ann@example.org\n", "amount": 12.5})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": [
            {"type": "tool_result", "content": [{"type": "text", "text": "ok from 10.0.0.7"}]}]},
    ]
    out, counts = redact_messages(messages)
    assert out[0]["content"][0]["text"] == "Refund card <CARD_1>"
    assert out[0]["content"][1] == image  # image data is not text a customer wrote
    assert out[0]["content"][2]["text"] == "and mail me at <EMAIL_1>"
    args = json.loads(out[1]["tool_calls"][0]["function"]["arguments"])
    assert args == {"card": "<CARD_1>", "email": "<EMAIL_1>\n", "amount": 12.5}
    assert out[1]["tool_calls"][0]["function"]["name"] == "refund"
    assert out[2]["content"][0]["content"][0]["text"] == "ok from <IPV4_1>"
    assert counts == {"CARD": 2, "EMAIL": 2, "IPV4": 1}


# --- configured patterns -----------------------------------------------------------------------------

def test_configured_patterns_are_redacted_and_never_split_a_built_in_kind():
    r = Redactor({"customer_id": r"CUST-\d{6}", "digits": r"\d{4,}"})
    out, counts = r.redact_text("CUST-123456 paid with 4111 1111 1111 1111, ticket 98765")
    assert out == "<CUSTOMER_ID_1> paid with <CARD_1>, ticket <DIGITS_1>"
    assert counts == {"CARD": 1, "CUSTOMER_ID": 1, "DIGITS": 1}


def test_the_config_section_and_a_bad_regex_named(tmp_path):
    good = load_settings(write_config(tmp_path, redact={
        "enabled": "always", "patterns": [{"name": "customer_id", "regex": r"CUST-\d{6}"}]}))
    assert good.redact.enabled == "always" and good.redact.patterns[0].name == "customer_id"
    with pytest.raises(ConfigError, match=r"'ticket'.*not a valid regex"):
        load_settings(write_config(tmp_path, redact={"patterns": [
            {"name": "customer_id", "regex": r"CUST-\d{6}"}, {"name": "ticket", "regex": "T-(\\d+"}]}))
    with pytest.raises(ConfigError, match="redact.enabled"):
        load_settings(write_config(tmp_path, redact={"enabled": "yes"}))
    with pytest.raises(ConfigError, match="unknown key 'redact.pattern'"):
        load_settings(write_config(tmp_path, redact={"pattern": []}))


def test_auto_redacts_for_every_endpoint_not_marked_trusted(tmp_path):
    remote = Candidate(name="glm", base_url="https://api.z.ai/api/paas/v4", model="glm-5.2")
    local = Candidate(name="sim", base_url="http://127.0.0.1:8400/v1", model="glm-5.2")
    trusted = Candidate(name="sim", base_url="http://127.0.0.1:8400/v1", model="glm-5.2", trusted=True)
    for mode, expected in [("auto", (True, True, False)), ("always", (True, True, True)),
                           ("never", (False, False, False))]:
        s = load_settings(write_config(tmp_path, redact={"enabled": mode}))
        assert (s.needs_redaction(remote), s.needs_redaction(local), s.needs_redaction(trusted)) == expected
    assert load_settings(write_config(tmp_path)).redact.enabled == "auto"


def test_describe():
    assert describe({"PHONE": 1, "EMAIL": 12, "CUSTOMER_ID": 2}) == \
        "12 e-mail addresses, 1 phone number, 2 customer_id"


def test_one_account_of_a_redaction_for_the_nights_log_and_the_report():
    assert Redaction("never", []).summary() == \
        "off (redact.enabled: never) — requests were sent as logged"
    assert Redaction("auto", []).summary() == "off — every endpoint is on this machine"
    assert Redaction("always", ["glm-5.2"], 3).summary() == \
        "on, nothing found to redact in 3 requests (sent redacted to: glm-5.2)"
    assert Redaction("auto", ["glm-5.2", "m3"], 1_200, Counter(PHONE=1, EMAIL=2)).summary() == \
        "redacted before replay: 2 e-mail addresses, 1 phone number in 1,200 requests " \
        "(sent redacted to: glm-5.2, m3)"


# --- end to end: at a real server, none of it arrives ------------------------------------------------

N = 6
PII = {
    "EMAIL": ["jane.doe+billing@mail.support.example.co.uk", "j.smith@sub.example.org",
              "ALICE_99@example.com", "bob-k@eu.mail.example.net", "x@y.io", "sales+q3@corp.example.de"],
    "PHONE": ["+1 (555) 123-4567", "+44 20 7946 0958", "+49 (0)30 1234567", "030 1234 5678",
              "(555) 987-6543", "+33 1 23 45 67 89"],
    "CARD": ["4111 1111 1111 1111", "5500-0055-5555-5559", "4012888888881881", "3782 822463 10005",
             "6011 1111 1111 1117", "5105105105105100"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432",
             "FR14 2004 1010 0505 0001 3M02 606", "NL91ABNA0417164300", "CH93 0076 2011 6238 5295 7",
             "ES91 2100 0418 4502 0005 1332"],
    "IPV4": ["192.168.1.10", "10.0.0.254", "203.0.113.7", "172.16.31.2", "8.8.8.8", "198.51.100.23"],
    "IPV6": ["2001:db8::8a2e:370:7334", "fe80::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
             "::ffff:192.0.2.1", "2606:4700:4700::1111", "2001:db8:1::ab9:C0A8:102"],
    "SECRET": ["sk-proj-Ab12Cd34Ef56Gh78Ij90Kl", "sk-ant-api03-Zy98Xw76Vu54Ts32Rq10Po",
               "ghp_abcdefghijklmnopqrstuvwxyz0123456789", "AKIAIOSFODNN7EXAMPLE",
               "xoxb-2048-abcdefghijkl",
               "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
               "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
}
SUPPORT = "help@acme-support.example.com"   # in every system prompt: one more e-mail per request
BEARER = "tok_9f8e7d6c5b4a3210"              # in every request: one more secret
NEAR_MISSES = ["1234567812345678", "#4829301", "1.2.3.4.5", "2026-11-20", "$1,299.00",
               "DE89 3704 0044 0532 0130 01"]
EXPECTED = {"EMAIL": 3 * N, "PHONE": N, "CARD": N, "IBAN": N, "IPV4": N, "IPV6": N,
            "SECRET": 2 * N, "CUSTOMER_ID": N}
FORBIDDEN = [v for values in PII.values() for v in values] + [SUPPORT, BEARER] + \
            [f"CUST-{700100 + i}" for i in range(N)]


def log_rows() -> list[dict]:
    """N production log rows, full of one customer's personal data each."""
    rows = []
    for i in range(N):
        p = {kind: values[i] for kind, values in PII.items()}
        # the `ticket` differs: requests identical once redacted would be asked only once
        user = (f"Hi, I'm {p['EMAIL']} (customer CUST-{700100 + i}, ticket {i}), phone {p['PHONE']}. "
                f"Please refund card {p['CARD']} to IBAN {p['IBAN']}. I logged in from {p['IPV4']} "
                f"and {p['IPV6']}. Our integration uses key {p['SECRET']}. "
                f"Order 1234567812345678 / #4829301, app 1.2.3.4.5, bought 2026-11-20 for $1,299.00; "
                f"old IBAN DE89 3704 0044 0532 0130 01. Reply to {p['EMAIL']}.")
        messages = [
            {"role": "system", "content": f"You are support. Escalations: {SUPPORT}."},
            {"role": "user", "content": [
                {"type": "text", "text": user},
                {"type": "text", "text": f"Header: Authorization: Bearer {BEARER}"}]}]
        rows.append({
            "request_id": f"req_pii_{i:02d}", "ts": datetime(2026, 11, 27, 10 + i, tzinfo=UTC),
            "endpoint": "/support/refund", "model_id": "openai/gpt-5-mini",
            "prompt_version": "refund@v1", "messages": json.dumps(messages),
            "params": json.dumps({"temperature": 0, "max_tokens": 64}), "output_text": "ok",
            "input_tokens": 300, "output_tokens": 1, "latency_ms": 700.0, "status": "ok",
            "source_format": "openai"})
    return rows


def store_logs(settings: Settings) -> None:
    """The rows straight into `logs` (ingest has tests of its own)."""
    with open_warehouse(settings.warehouse) as wh:
        wh.insert("logs", pl.DataFrame(log_rows()))


def candidates(url: str, trusted: bool = False) -> list[dict]:
    return [{"name": n, "base_url": url, "model": n, "max_concurrency": 4, "timeout_s": 10,
             "trusted": trusted} for n in ("glm-5.2", "minimax-m3")]


def sent_texts(bodies: list[bytes]) -> list[str]:
    """Every text of every message the server received, one string per request."""
    texts = []
    for body in bodies:
        messages = json.loads(body)["messages"]
        parts = []
        for m in messages:
            content = m["content"]
            parts += [content] if isinstance(content, str) else [c["text"] for c in content]
        texts.append("\n".join(parts))
    return texts


def test_with_redaction_on_none_of_it_reaches_the_server(tmp_path, prefect_harness):
    with RecordingFleet() as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet.base_url),
                              redact={"enabled": "always",
                                      "patterns": [{"name": "customer_id", "regex": r"CUST-\d{6}"}]})
        settings = load_settings(config)
        store_logs(settings)
        result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
        bodies = list(fleet.bodies)

    assert result["status"] == "completed"
    assert len(bodies) == 2 * N  # every request reached the server, redacted
    for raw in bodies:
        for secret in FORBIDDEN:
            assert secret.encode() not in raw, secret
    texts = sent_texts(bodies)
    for text in texts:
        for secret in FORBIDDEN:
            assert secret not in text, secret
        for near in NEAR_MISSES:  # what only looks like personal data arrives as it was
            assert near in text
        # consistent: the system prompt's address is EMAIL_1, the customer's EMAIL_2, twice
        assert "Escalations: <EMAIL_1>." in text and text.count("<EMAIL_2>") == 2
        for placeholder in ("<PHONE_1>", "<CARD_1>", "<IBAN_1>", "<IPV4_1>", "<IPV6_1>",
                            "<SECRET_1>", "<SECRET_2>", "<CUSTOMER_ID_1>"):
            assert placeholder in text
        assert "Authorization: Bearer <SECRET_2>" in text

    with open_warehouse(settings.warehouse) as wh:
        audit = {k: (n, req) for k, n, req in wh.query("redaction_audit", run_id=result["run_id"]).fetchall()}
        stored = wh.execute("SELECT count(*) FROM redacted_requests WHERE run_id = $r",
                            {"r": result["run_id"]}).fetchone()[0]
    assert {k: n for k, (n, _) in audit.items()} == EXPECTED
    assert all(req == N for _, req in audit.values()) and stored == N

    html = Path(result["report"]).read_text(encoding="utf-8")
    assert f"redacted before replay: {describe(EXPECTED)} in {N} requests" in html
    assert "(sent redacted to: glm-5.2, minimax-m3)" in html
    assert "18 e-mail addresses, 6 phone numbers" in html


def test_with_auto_and_trusted_endpoints_nothing_is_redacted(tmp_path, prefect_harness):
    with RecordingFleet() as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet.base_url, trusted=True))
        settings = load_settings(config)
        store_logs(settings)
        result = asyncio.run(nightly(run_date=RUN_DATE, config=str(config)))
        bodies = list(fleet.bodies)

    assert result["status"] == "completed" and len(bodies) == 2 * N
    texts = sent_texts(bodies)
    assert not any("<EMAIL_" in t or "<CARD_" in t for t in texts)  # sent as logged
    assert sum(PII["CARD"][i] in t and PII["EMAIL"][i] in t for t in texts for i in range(N)) == 2 * N
    with open_warehouse(settings.warehouse) as wh:
        assert wh.execute("SELECT count(*) FROM redacted_requests").fetchone()[0] == 0
        assert wh.execute("SELECT mode, candidates FROM redaction_runs").fetchall() == [("auto", "[]")]
    html = Path(result["report"]).read_text(encoding="utf-8")
    assert "<th>redaction</th><td>off — every endpoint is on this machine</td>" in html


def test_a_candidate_that_needs_redaction_is_never_sent_an_unredacted_request(tmp_path):
    """Without the redact step the replay refuses to start, rather than send the raw messages;
    after it, everything is sent; and redacting again redacts nothing twice."""
    with RecordingFleet() as fleet:
        config = write_config(tmp_path, fleet.base_url, candidates=candidates(fleet.base_url)[:1],
                              redact={"enabled": "always"})
        settings = load_settings(config)
        store_logs(settings)
        with open_warehouse(settings.warehouse) as wh:
            run = runs.begin(wh, settings, RUN_DATE, "nightly")
            draw_sample(wh, settings, run)
        with pytest.raises(ReplaybenchError, match="run the redact step first"):
            asyncio.run(replay_candidate(settings, run, settings.candidates[0]))
        assert fleet.bodies == []
        with open_warehouse(settings.warehouse) as wh:
            first = redact_run(wh, settings, run)
            again = redact_run(wh, settings, run)
            # a copy from before parameters were redacted is replaced, not stored twice
            wh.execute("UPDATE redacted_requests SET params = NULL WHERE request_id = "
                       "(SELECT min(request_id) FROM redacted_requests)")
            legacy = redact_run(wh, settings, run)
            copies = wh.execute("SELECT count(*), count(DISTINCT request_id), count(params) "
                                "FROM redacted_requests WHERE run_id = $r",
                                {"r": run.run_id}).fetchone()
        assert (first.requests, again.requests, legacy.requests) == (N, 0, 1)
        assert copies == (N, N, N)
        assert first.counts["EMAIL"] == 3 * N and first.counts["CARD"] == N
        outcome = asyncio.run(replay_candidate(settings, run, settings.candidates[0]))
        assert outcome.ok == N and len(fleet.bodies) == N
        assert not any(v.encode() in b for b in fleet.bodies for v in FORBIDDEN if "CUST" not in v)
