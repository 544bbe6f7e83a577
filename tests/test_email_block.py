"""E-mail credentials from a Prefect `EmailServerCredentials` block (the `email` extra): the block is
saved on Prefect's test server and loaded by name, the message reaches a real SMTP server on
loopback, and the block's password is registered as a secret."""

import socket
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from replaybench.errors import ConfigError, scrub
from replaybench.report.email import _block_server

from .servers import Keep


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_saved_block_sends_through_its_server(prefect_harness):
    from prefect_email import EmailServerCredentials, SMTPType

    handler = Keep()
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    # a relay on this machine that takes a login without TLS (as plaintext_on_loopback allows)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            authenticator=authenticator, auth_require_tls=False)
    controller.start()
    try:
        EmailServerCredentials(smtp_server="127.0.0.1", smtp_port=controller.port,
                               smtp_type=SMTPType.INSECURE, username="night-mailer",
                               password="block-password-123").save("night-mail", overwrite=True)
        msg = EmailMessage()
        msg["Subject"], msg["From"], msg["To"] = "night", "rb@example.com", "team@example.com"
        msg.set_content("hello")
        with _block_server("night-mail") as server:
            server.send_message(msg)
    finally:
        controller.stop()
    assert [e.rcpt_tos for e in handler.envelopes] == [["team@example.com"]]
    assert logins == [("night-mailer", "block-password-123")]
    assert "block-password-123" not in scrub("login failed for block-password-123")


def test_a_block_that_would_log_in_without_tls_to_another_host_is_refused(prefect_harness):
    from prefect_email import EmailServerCredentials, SMTPType

    EmailServerCredentials(smtp_server="mail.example.com", smtp_port=25, smtp_type=SMTPType.INSECURE,
                           username="night-mailer", password="block-password-456").save(
        "clear-mail", overwrite=True)
    with pytest.raises(ConfigError, match="without TLS to mail.example.com: set its smtp_type"):
        _block_server("clear-mail")  # refused before any connection is tried
