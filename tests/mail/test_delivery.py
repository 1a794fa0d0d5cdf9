"""Mail delivery: the outbox in development, real SMTP (tested against a local aiosmtpd server)."""

import socket
from dataclasses import replace
from email import policy
from email.parser import BytesParser

import pytest
from sqlalchemy import select

from idp.extensions import db
from idp.mail.delivery import OutboxBackend, SmtpBackend, backend_from_url
from idp.models import ResetLink


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request_link(browser, slug, email, provider="identity"):
    return browser.submit(f"/t/{slug}/forgot-password?provider={provider}", {"email": email, "provider": provider})


def test_mail_url_chooses_the_backend(tmp_path):
    assert backend_from_url("outbox", tmp_path) == OutboxBackend(tmp_path)
    assert backend_from_url("smtp://user:p%40ss@mail.example.org:587", tmp_path) == SmtpBackend(
        "mail.example.org", 587, "user", "p@ss", False)
    assert backend_from_url("smtps://mail.example.org", tmp_path) == SmtpBackend(
        "mail.example.org", 465, None, None, True)
    with pytest.raises(ValueError):
        backend_from_url("http://mail.example.org", tmp_path)


def test_outbox_mail_has_text_and_html_parts_naming_the_school(browser, world, outbox, frozen_clock):
    request_link(browser, "oakwood", "sam.jones@example.org", provider="sso")
    message = outbox.last()
    assert message["From"].addresses[0].addr_spec == "notifications@cpoms.net"
    assert message["To"].addresses[0].addr_spec == "sam.jones@example.org"
    assert message["Subject"] == "Reset your CPOMS password for Oakwood Primary School"
    text, html = outbox.text(message), outbox.html(message)
    link = "http://127.0.0.1:5000" + outbox.last_link()
    for part in (text, html):
        assert "Oakwood Primary School" in part and "CPOMS" in part and "CPOMS SSO" in part
        assert link in part
        assert "at midnight tonight (00:00 on Tuesday 3 March, UK time)" in part
        assert "If you did not ask for this" in part


class TestSmtp:
    def test_reset_mail_arrives_at_a_real_smtp_server(self, app, world, browser, smtp_server, outbox):
        controller, handler = smtp_server
        settings = app.config["SETTINGS"]
        app.config["SETTINGS"] = replace(settings, mail_url=f"smtp://{controller.hostname}:{controller.port}",
                                         issuer="https://id.cpoms.example")
        response = request_link(browser, "beech", "pat.lee@example.org")
        assert "Check your email" in response.get_data(as_text=True)
        (envelope,) = handler.envelopes
        assert envelope.mail_from == "notifications@cpoms.net"
        assert envelope.rcpt_tos == ["pat.lee@example.org"]
        message = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert message["Subject"] == "Reset your CPOMS password for Beech Academy"
        assert message["From"].addresses[0].addr_spec == "notifications@cpoms.net"
        assert message["Message-ID"] and message["Date"]
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert message.is_multipart() and message.get_content_type() == "multipart/alternative"
        for part in (text, html):
            assert "Beech Academy" in part
            assert "https://id.cpoms.example/reset/" in part
        token = text.split("https://id.cpoms.example/reset/", 1)[1].split()[0]
        assert browser.get(f"/reset/{token}").status_code == 200
        assert outbox.messages() == []
        link = db.session.scalars(select(ResetLink)).one()
        db.session.refresh(link)
        assert link.sent_at is not None

    def test_in_production_a_server_without_starttls_gets_nothing(self, app, world, browser, smtp_server, outbox):
        # A mail server that offers no TLS would see the reset link (and our SMTP password) in the clear.
        controller, handler = smtp_server
        app.config["SETTINGS"] = replace(app.config["SETTINGS"], env="production",
                                         mail_url=f"smtp://mailer:secret@{controller.hostname}:{controller.port}")
        response = request_link(browser, "beech", "pat.lee@example.org")
        assert response.status_code == 503
        assert handler.envelopes == []
        link = db.session.scalars(select(ResetLink)).one()
        db.session.refresh(link)
        assert not link.is_usable

    def test_in_development_a_server_without_starttls_is_still_used(self, app, world, browser, smtp_server):
        controller, handler = smtp_server
        app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_url=f"smtp://{controller.hostname}:{controller.port}")
        assert "Check your email" in request_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
        assert len(handler.envelopes) == 1

    def test_smtp_server_refusing_the_connection_is_a_temporary_error(self, app, world, browser, outbox):
        app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_url=f"smtp://127.0.0.1:{free_port()}")
        response = request_link(browser, "beech", "pat.lee@example.org")
        assert response.status_code == 503
        assert "Please try again in a few minutes" in response.get_data(as_text=True)
        link = db.session.scalars(select(ResetLink)).one()
        db.session.refresh(link)
        assert not link.is_usable


def test_dev_outbox_lists_messages_with_clickable_links(browser, world, outbox):
    request_link(browser, "beech", "pat.lee@example.org")
    html = browser.get("/dev/outbox").get_data(as_text=True)
    link = "http://127.0.0.1:5000" + outbox.last_link()
    assert f'<a href="{link}">' in html
    assert "Reset your CPOMS password for Beech Academy" in html
    (name,) = [p.name for p in outbox.folder.glob("*.eml")]
    detail = browser.get(f"/dev/outbox/{name}").get_data(as_text=True)
    assert f'<a href="{link}">' in detail
    assert browser.get("/dev/outbox/..%2Fsecret_key").status_code == 404


def test_dev_outbox_does_not_exist_in_production(app, browser, world):
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], env="production")
    assert browser.get("/dev/outbox").status_code == 404


def _self_signed_certificate(folder):
    """A certificate for 127.0.0.1 that the test then trusts through SSL_CERT_FILE."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 30))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TestSmtpWithTls:
    @pytest.fixture
    def tls(self, tmp_path, monkeypatch):
        import ssl

        cert_path, key_path = _self_signed_certificate(tmp_path)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert_path))
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_context.load_cert_chain(cert_path, key_path)
        return server_context

    @staticmethod
    def collecting_handler():
        from aiosmtpd.handlers import Sink

        class Collect(Sink):
            def __init__(self):
                self.envelopes, self.tls = [], []

            async def handle_DATA(self, server, session, envelope):
                self.envelopes.append(envelope)
                self.tls.append(server.transport.get_extra_info("ssl_object") is not None)
                return "250 OK"

        return Collect()

    def test_starttls_is_used_when_offered_and_credentials_are_sent(self, app, world, browser, tls):
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        logins = []

        def authenticator(server, session, envelope, mechanism, auth_data):
            logins.append((auth_data.login, auth_data.password, session.ssl is not None))
            return AuthResult(success=auth_data.password == b"s3cret/pass")

        handler = self.collecting_handler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=tls,
                                authenticator=authenticator, auth_require_tls=True)
        controller.start()
        try:
            app.config["SETTINGS"] = replace(
                app.config["SETTINGS"], mail_url=f"smtp://mailer:s3cret%2Fpass@127.0.0.1:{controller.port}")
            assert "Check your email" in request_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
        finally:
            controller.stop()
        assert logins == [(b"mailer", b"s3cret/pass", True)]
        assert handler.tls == [True]
        assert len(handler.envelopes) == 1

    def test_smtps_connects_with_tls_from_the_start(self, app, world, browser, tls):
        from aiosmtpd.controller import Controller

        handler = self.collecting_handler()
        controller = Controller(handler, hostname="127.0.0.1", port=free_port(), ssl_context=tls)
        controller.start()
        try:
            app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_url=f"smtps://127.0.0.1:{controller.port}")
            assert "Check your email" in request_link(browser, "beech", "pat.lee@example.org").get_data(as_text=True)
        finally:
            controller.stop()
        assert handler.tls == [True]


def test_sender_may_carry_a_display_name(app, browser, world, outbox):
    app.config["SETTINGS"] = replace(app.config["SETTINGS"], mail_from="CPOMS Notifications <notifications@cpoms.net>")
    request_link(browser, "beech", "pat.lee@example.org")
    sender = outbox.last()["From"].addresses[0]
    assert sender.addr_spec == "notifications@cpoms.net" and sender.display_name == "CPOMS Notifications"
