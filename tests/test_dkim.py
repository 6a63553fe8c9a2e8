"""DKIM signing in OpenSSL, checked by dkimpy's verifier; the one fake is DNS (``dnsfunc``)."""

from __future__ import annotations

import base64
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from dkim.canonicalization import Relaxed
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from publisher.config import DkimConfig, load_settings
from publisher.deliver.dkim_canon import relaxed_body
from publisher.deliver.signing import DkimSigner
from publisher.errors import DeliveryError
from publisher.render import email_headers as hdr

DOMAIN = "example.org"
UNSUBSCRIBE = b"<https://news.example.org/unsubscribe/eNXPKDpUpcTj3LbP>"


@dataclass(frozen=True)
class Keys:
    rsa_file: Path
    ed25519_file: Path
    records: dict[bytes, bytes]  # the TXT records that publish them

    def dns(self, name: bytes, timeout: int = 5) -> bytes:
        return self.records[name]


def _pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("dkim")
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ed_key = ed25519.Ed25519PrivateKey.generate()
    (folder / "rsa.pem").write_bytes(_pem(rsa_key))
    (folder / "ed25519.pem").write_bytes(_pem(ed_key))
    rsa_der = rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ed_raw = ed_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return Keys(
        folder / "rsa.pem",
        folder / "ed25519.pem",
        {
            b"news._domainkey.example.org.": b"v=DKIM1; k=rsa; p=" + base64.b64encode(rsa_der),
            b"news-ed25519._domainkey.example.org.": b"v=DKIM1; k=ed25519; p=" + base64.b64encode(ed_raw),
        },
    )


@pytest.fixture(scope="module")
def signer(keys: Keys) -> DkimSigner:
    """RSA and Ed25519: every message carries both signatures."""
    cfg = DkimConfig(
        domain=DOMAIN, selector="news", private_key_file=keys.rsa_file, ed25519_key_file=keys.ed25519_file
    )
    return DkimSigner.from_config(cfg)


def message(
    subject: bytes = b"Why Bread Rises", *, to: bytes = b"Reader <reader@example.org>", lists: bool = True
) -> bytes:
    """An SMTP-ready message shaped like ours: CRLF, folded Content-Type, QP body with spaces."""
    head = [
        b"From: Bench <news@example.org>",
        b"To: " + to,
        b"Subject: " + subject,
        b"Date: Mon, 07 Dec 2026 20:05:47 +0000",
        b"Message-ID: <60d8aae793caf9b349e2bed41e9903cc@news.example.org>",
    ]
    if lists:
        head += [b"List-Unsubscribe: " + UNSUBSCRIBE, b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"]
    head += [b"MIME-Version: 1.0", b'Content-Type: text/plain;\r\n charset="utf-8"']
    body = (
        b"Hi Reader,\r\n\r\n    indented  text\twith a tab\r\nUnsubscribe: https://news.example.org/u/x\r\n"
    )
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def verified(data: bytes, keys: Keys) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, top first."""
    count = len(re.findall(rb"(?im)^dkim-signature:", data))
    return [_verify(data, i, keys) for i in range(count)]


def _verify(data: bytes, idx: int, keys: Keys) -> bool:
    try:  # dkim.verify() says False on an exception too, but checks only the top signature
        return dkim.DKIM(data).verify(idx=idx, dnsfunc=keys.dns)
    except dkim.DKIMException:
        return False


def signed_headers(data: bytes) -> list[list[str]]:
    """The h= list of each signature."""
    return [
        m.decode().replace("\r\n", "").replace(" ", "").split(":")
        for m in re.findall(rb"[\s;]h=([^;]+);", data)
    ]


def test_rsa_and_ed25519_signatures_both_verify(signer: DkimSigner, keys: Keys) -> None:
    signed = signer.sign(message())
    assert re.findall(rb"a=([\w-]+);", signed) == [b"rsa-sha256", b"ed25519-sha256"]
    assert verified(signed, keys) == [True, True]
    assert signed.endswith(message())  # the message itself is untouched, only preceded
    assert all(len(line) <= 78 for line in signed.split(b"\r\n"))


def test_rsa_alone_without_an_ed25519_key(keys: Keys) -> None:
    signer = DkimSigner.from_config(
        DkimConfig(domain=DOMAIN, selector="news", private_key_file=keys.rsa_file)
    )
    signed = signer.sign(message())
    assert signed.count(b"DKIM-Signature:") == 1
    assert dkim.verify(signed, dnsfunc=keys.dns)


def test_every_present_header_is_signed_and_absent_ones_are_not_listed(
    signer: DkimSigner, keys: Keys
) -> None:
    full = ["from", "to", "subject", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post"]
    assert signed_headers(signer.sign(message())) == [full, full]
    without_lists = signer.sign(message(lists=False))
    assert signed_headers(without_lists) == [full[:5], full[:5]]
    assert verified(without_lists, keys) == [True, True]


def refold(data: bytes) -> bytes:
    """What relays may do to a message under relaxed/relaxed (RFC 6376 §3.4.2, §3.4.4)."""
    head, body = data.split(b"\r\n\r\n", 1)
    head = head.replace(b"Subject: Why Bread Rises", b"SUBJECT:\tWhy\r\n  Bread   Rises  ")
    head = head.replace(b"To: Reader", b"To:    Reader").replace(b"One-Click", b"One-Click \t")
    body = body.replace(b"Hi Reader,", b"Hi  Reader,   ").replace(b"\twith", b" \t with")
    return head + b"\r\n\r\n" + body + b"\r\n\r\n \r\n"


def test_relaxed_canonicalisation_survives_refolding_and_trailing_spaces(
    signer: DkimSigner, keys: Keys
) -> None:
    signed = signer.sign(message())
    changed = refold(signed)
    assert changed != signed
    assert verified(changed, keys) == [True, True]


@pytest.mark.parametrize(
    "old, new",
    [
        (b"indented  text", b"indented  test"),  # the body
        (b"Subject: Why Bread Rises", b"Subject: Why Bread Falls"),
        (b"To: Reader <reader@", b"To: Reader <attacker@"),
        (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click", b"List-Unsubscribe-Post: List-Unsubscribe=No"),
        (b"https://news.example.org/unsubscribe/", b"https://evil.example.net/unsubscribe/"),
    ],
)
def test_a_tampered_body_or_signed_header_fails(
    signer: DkimSigner, keys: Keys, old: bytes, new: bytes
) -> None:
    signed = signer.sign(message())
    assert old in signed
    assert verified(signed.replace(old, new), keys) == [False, False]


def test_an_unsigned_header_added_in_transit_does_not_matter(signer: DkimSigner, keys: Keys) -> None:
    signed = signer.sign(message())
    assert verified(b"Received: from relay.example.net\r\n" + signed, keys) == [True, True]


# -- keys: every problem is found at start --------------------------------------------------------


def _write(path: Path, pem: bytes) -> Path:
    path.write_bytes(pem)
    return path


def _cases(folder: Path, keys: Keys) -> list[tuple[dict[str, object], str]]:
    short = folder / "short.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(short), "768"], check=True, capture_output=True)
    ec_pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    encrypted = rsa.generate_private_key(public_exponent=65537, key_size=1024).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    return [
        ({"private_key_file": folder / "missing.pem"}, "cannot read the DKIM key"),
        (
            {"private_key_file": _write(folder / "junk.pem", b"not a key")},
            "not an unencrypted PEM private key",
        ),
        ({"private_key_file": _write(folder / "enc.pem", encrypted)}, "not an unencrypted PEM private key"),
        ({"private_key_file": _write(folder / "ec.pem", ec_pem)}, "not an RSA private key"),
        ({"private_key_file": keys.ed25519_file}, "not an RSA private key"),
        ({"private_key_file": short}, "768-bit RSA key; receivers refuse DKIM keys under 1024 bits"),
        ({"ed25519_key_file": keys.rsa_file}, "not an Ed25519 private key"),
        ({"ed25519_key_file": keys.ed25519_file, "ed25519_selector": "news"}, "the RSA key's selector too"),
    ]


def test_a_bad_key_fails_at_from_config_with_a_hint(tmp_path: Path, keys: Keys) -> None:
    for change, message_part in _cases(tmp_path, keys):
        cfg = {"domain": DOMAIN, "selector": "news", "private_key_file": keys.rsa_file, **change}
        with pytest.raises(DeliveryError) as caught:
            DkimSigner.from_config(DkimConfig.model_validate(cfg))
        assert message_part in caught.value.message, (change, caught.value.message)
        assert caught.value.hint


def test_relative_key_paths_are_taken_from_the_config_folder(tmp_path: Path, keys: Keys) -> None:
    (tmp_path / "keys").mkdir()
    for name in ("rsa.pem", "ed25519.pem"):
        (tmp_path / "keys" / name).write_bytes((keys.rsa_file.parent / name).read_bytes())
    (tmp_path / "config.yaml").write_text(
        "email:\n  dkim: {domain: example.org, selector: news, private_key_file: keys/rsa.pem,"
        " ed25519_key_file: keys/ed25519.pem}\n"
    )
    cfg = load_settings(tmp_path / "config.yaml", environ={"PUBLISHER_SECRET_KEY": "k" * 40}).email.dkim
    assert cfg is not None and cfg.ed25519_key_file == tmp_path / "keys" / "ed25519.pem"
    assert verified(DkimSigner.from_config(cfg).sign(message()), keys) == [True, True]


# -- hostile values -------------------------------------------------------------------------------

_WSP_PIECES = st.sampled_from([" ", "\t", "  ", "\r\n ", "\r\n\t", " \t "])
_WORDS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=12)
# A raw ASCII value as a relay might leave it: words between runs of spaces, tabs and folds.
_RAW_VALUE = st.lists(st.tuples(_WORDS, _WSP_PIECES), min_size=1, max_size=30).map(
    lambda parts: "".join(w + s for w, s in parts).rstrip(" \t\r\n")
)
_FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_FAST
@given(subject=st.text(max_size=300), name=st.text(max_size=80))
def test_whatever_our_encoder_writes_verifies(
    signer: DkimSigner, keys: Keys, subject: str, name: str
) -> None:
    """Long folded subjects, encoded words, control characters: our header encoder, then signed."""
    encoded = hdr.encode_unstructured(subject, len("Subject: ")).encode("ascii")
    to = hdr.format_mailbox(name, "reader@example.org").encode("ascii")
    signed = signer.sign(message(encoded, to=to))
    assert verified(signed, keys) == [True, True]


@_FAST
@given(value=_RAW_VALUE)
def test_raw_values_with_tabs_runs_and_folds_verify(signer: DkimSigner, keys: Keys, value: str) -> None:
    signed = signer.sign(message(value.encode("ascii")))
    assert verified(signed, keys) == [True, True]


_BODY_PIECES = st.sampled_from(["a", "b c", " ", "\t", "  ", "\r\n", " \r\n", "\t\r\n", "\r\n\r\n", "x\ty"])


@given(st.lists(_BODY_PIECES, max_size=40).map("".join))
def test_body_canonicalisation_matches_dkimpy(body: str) -> None:
    raw = body.encode("ascii")
    assert relaxed_body(raw) == Relaxed.canonicalize_body(raw)
