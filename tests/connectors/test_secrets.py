"""Masking and redacting secrets."""

from connectors.secrets import (
    MASK,
    mask_config,
    mask_url,
    masked_paths,
    redact,
    secret_values,
    unmask_config,
)

TOKEN = "Bearer abcdef0123456789"


def test_mask_config_masks_declared_and_secret_looking_fields():
    """Declared secret fields, secret-looking keys and URL passwords are masked."""
    config = {
        "url": "https://api.example.invalid/v1",
        "auth_token": TOKEN,
        "headers": {"X-Api-Key": "k-123456", "Accept": "text/csv"},
        "timeout_read": 5,
    }
    assert mask_config(config, secret_fields=("auth_token",)) == {
        "url": "https://api.example.invalid/v1",
        "auth_token": MASK,
        "headers": {"X-Api-Key": MASK, "Accept": "text/csv"},
        "timeout_read": 5,
    }


def test_mask_config_masks_an_sql_url_password():
    """The password inside a connection URL is masked, the rest kept."""
    config = {"url": "postgresql://reader:s3cr%40t@db:5432/app", "password": "pw"}
    assert mask_config(config, secret_fields=("password",)) == {
        "url": f"postgresql://reader:{MASK}@db:5432/app",
        "password": MASK,
    }


def test_mask_config_without_declared_fields_still_masks_obvious_secrets():
    """With no declared fields (an unknown kind), what looks secret is masked."""
    assert mask_config({"password": "x", "n": 1}) == {"password": MASK, "n": 1}
    assert mask_config({"dsn_pass": "x"}, secret_fields=("dsn_pass",)) == {
        "dsn_pass": MASK
    }


def test_empty_secrets_are_left_empty():
    """An empty secret shows as empty, so an operator sees it is unset."""
    assert mask_config({"password": ""}, secret_fields=("password",)) == {
        "password": ""
    }


def test_unmask_config_restores_placeholders_only():
    """A placeholder takes the stored secret back; new values win."""
    stored = {
        "url": "postgresql://reader:old@db/app",
        "password": "old-pw",
        "headers": {"Authorization": TOKEN},
    }
    submitted = mask_config(stored, secret_fields=("password",))
    submitted["headers"]["Authorization"] = "Bearer new"
    submitted["url"] = f"postgresql://reader:{MASK}@db2/app"
    assert unmask_config(submitted, stored) == {
        "url": "postgresql://reader:old@db2/app",
        "password": "old-pw",
        "headers": {"Authorization": "Bearer new"},
    }
    assert masked_paths(unmask_config({"auth_token": MASK}, {})) == ["auth_token"]


def test_redact_removes_every_secret_and_its_encodings():
    """Secrets, their URL encoding and a bearer token's token are redacted."""
    config = {
        "url": "postgresql://u:p%40ss-word@h/db",
        "auth_token": TOKEN,
        "password": "pw-000111",
    }
    text = (
        "failed for p@ss-word and p%40ss-word; token abcdef0123456789 "
        f"header {TOKEN}; pw-000111; see postgresql://u:other-pass@h2/db"
    )
    redacted = redact(text, config, secret_fields=("auth_token",))
    for secret in ("p@ss-word", "p%40ss-word", "abcdef0123456789", "pw-000111"):
        assert secret not in redacted
    assert "other-pass" not in redacted
    assert redacted.count(MASK) == 6


def test_redact_treats_short_secrets_as_whole_words():
    """A very short secret is redacted only where it stands alone."""
    assert (
        redact("user ab failed; tab", {"password": "ab"}) == f"user {MASK} failed; tab"
    )


def test_secret_values_and_mask_url():
    """Helpers: the secrets of a config, a URL's password masked."""
    assert "s" * 8 in secret_values({"token": "s" * 8})
    assert mask_url("http://u:p@h/x") == f"http://u:{MASK}@h/x"
    assert mask_url("http://h/x") == "http://h/x"
