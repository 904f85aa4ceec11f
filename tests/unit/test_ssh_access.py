"""SSH access (appliance/net/ssh_access.py): keys made by the real ssh-keygen are accepted
with ssh-keygen's own fingerprints, weak, optioned and broken ones refused by line number;
apply() writes root's authorized_keys and runs a recording stand-in for systemctl; the
`mailstead ssh apply --dry-run` command prints what it would do."""

from __future__ import annotations

import base64
import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.net.ssh_access import (
    MAX_KEYS,
    AuthorizedKey,
    SshKeyError,
    apply,
    authorized_keys_text,
    parse_keys,
)
from appliance.settings import Settings, load_settings, render_toml
from harness.debian import ensure_package

TYPES = {"ed25519": ["-t", "ed25519"], "ecdsa256": ["-t", "ecdsa", "-b", "256"],
         "ecdsa384": ["-t", "ecdsa", "-b", "384"], "ecdsa521": ["-t", "ecdsa", "-b", "521"],
         "rsa3072": ["-t", "rsa", "-b", "3072"], "rsa2048": ["-t", "rsa", "-b", "2048"]}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One public key file of each kind, made by the real ssh-keygen."""
    keygen = ensure_package("ssh-keygen", "openssh-client")
    folder = tmp_path_factory.mktemp("keys")
    made: dict[str, Path] = {}
    for name, args in TYPES.items():
        subprocess.run([keygen, "-q", *args, "-N", "", "-C", f"admin@{name}",
                        "-f", str(folder / name)], check=True, timeout=120)
        made[name] = folder / f"{name}.pub"
    return made


def keygen_fingerprint(path: Path) -> str:
    done = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True,
                          check=True, timeout=30)
    return done.stdout.split()[1]


@pytest.mark.parametrize("name", ["ed25519", "ecdsa256", "ecdsa384", "ecdsa521", "rsa3072"])
def test_real_keys_are_accepted_with_ssh_keygens_fingerprint(keys: dict[str, Path],
                                                             name: str) -> None:
    [key] = parse_keys(keys[name].read_text())
    assert key.fingerprint == keygen_fingerprint(keys[name])
    assert key.comment == f"admin@{name}"
    assert key.line() == keys[name].read_text().strip()


def test_rsa_bits_come_from_the_modulus(keys: dict[str, Path]) -> None:
    assert parse_keys(keys["rsa3072"].read_text())[0].bits == 3072
    with pytest.raises(SshKeyError, match=r"line 2: an RSA key of 2048 bits is too weak"):
        parse_keys("# mine\n" + keys["rsa2048"].read_text())


def sk_line(keys: dict[str, Path]) -> str:
    """An sk-ssh-ed25519@openssh.com key built from a real Ed25519 key (no FIDO token
    here): type, the 32-byte key, the application (PROTOCOL.u2f)."""
    blob = base64.b64decode(keys["ed25519"].read_text().split()[1])
    point = blob[4 + 11 + 4:]
    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data
    sk = string(b"sk-ssh-ed25519@openssh.com") + string(point) + string(b"ssh:")
    return "sk-ssh-ed25519@openssh.com " + base64.b64encode(sk).decode() + " token"


def test_security_key_types_are_accepted(keys: dict[str, Path]) -> None:
    line = sk_line(keys)
    [key] = parse_keys(line)
    assert key.key_type == "sk-ssh-ed25519@openssh.com"
    path = keys["ed25519"].parent / "sk.pub"
    path.write_text(line + "\n")
    assert key.fingerprint == keygen_fingerprint(path)


def test_several_keys_comments_and_blank_lines(keys: dict[str, Path]) -> None:
    text = "\r\n".join(["# the admins", "", keys["ed25519"].read_text().strip(),
                        "   ", keys["ecdsa384"].read_text().strip()])
    found = parse_keys(text)
    assert [k.key_type for k in found] == ["ssh-ed25519", "ecdsa-sha2-nistp384"]
    assert authorized_keys_text(found).splitlines()[1:] == [k.line() for k in found]
    assert parse_keys("") == []
    assert parse_keys("\n# none\n") == []


@pytest.mark.parametrize("prefix", ['command="/bin/sh" ', "restrict ", "no-pty,from=\"10.0.0.1\" ",
                                    "from=\"10.0.0.0/8\" "])
def test_options_are_refused_with_a_clear_message(keys: dict[str, Path], prefix: str) -> None:
    with pytest.raises(SshKeyError, match=r"line 1: options before the key"):
        parse_keys(prefix + keys["ed25519"].read_text())


@pytest.mark.parametrize(("line", "reason"), [
    ("ssh-dss AAAAB3NzaC1kc3MAAACBAP", "unknown key type 'ssh-dss'"),
    ("hello world", "unknown key type"),
    ("ssh-ed25519", "the key itself"),
    ("ssh-ed25519 not*base64", "not valid base64"),
    ("ssh-ed25519 AAAA", "truncated"),
    ("ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x05short")
     .decode(), "32 bytes"),
    ("ssh-ed25519 AAAA\x01", "control characters"),
])
def test_garbage_is_refused_naming_the_line(line: str, reason: str) -> None:
    with pytest.raises(SshKeyError, match="line 3: .*" + reason.replace("(", r"\(")):
        parse_keys(f"\n#\n{line}\n")


def test_the_type_inside_must_match_the_line(keys: dict[str, Path]) -> None:
    blob = keys["ecdsa256"].read_text().split()[1]
    with pytest.raises(SshKeyError, match="line 1: the key inside is 'ecdsa-sha2-nistp256'"):
        parse_keys(f"ssh-ed25519 {blob}")
    inner = base64.b64decode(blob)[4 + 19:]              # after the type: curve, point
    relabelled = (len(b"ecdsa-sha2-nistp384").to_bytes(4, "big") + b"ecdsa-sha2-nistp384"
                  + inner)
    with pytest.raises(SshKeyError, match="line 1: the key's curve is not nistp384"):
        parse_keys("ecdsa-sha2-nistp384 " + base64.b64encode(relabelled).decode())


def test_trailing_bytes_duplicates_and_too_many_keys_are_refused(
        keys: dict[str, Path]) -> None:
    blob = base64.b64decode(keys["ed25519"].read_text().split()[1]) + b"\x00"
    with pytest.raises(SshKeyError, match="trailing bytes"):
        parse_keys("ssh-ed25519 " + base64.b64encode(blob).decode())
    line = keys["ed25519"].read_text()
    with pytest.raises(SshKeyError, match="line 2: the same key as line 1"):
        parse_keys(line + line)
    many = "".join(sk_variant(i) + "\n" for i in range(MAX_KEYS + 1))
    assert len(parse_keys("".join(sk_variant(i) + "\n" for i in range(MAX_KEYS)))) == MAX_KEYS
    with pytest.raises(SshKeyError, match=f"line {MAX_KEYS + 1}: more than {MAX_KEYS} keys"):
        parse_keys(many)
    with pytest.raises(SshKeyError, match="line 1: longer than"):
        parse_keys("ssh-ed25519 " + "A" * 9000)


def sk_variant(i: int) -> str:
    """A distinct well-formed Ed25519 key line (any 32 bytes parse)."""
    def string(data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + data
    blob = string(b"ssh-ed25519") + string(i.to_bytes(32, "big"))
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


# -- apply() with a stand-in for systemctl -----------------------------------------------

def recorder(tmp_path: Path, status: int = 0) -> tuple[Path, Path]:
    """An executable that appends its argv (JSON) to a file and exits with `status`."""
    record = tmp_path / "calls.jsonl"
    script = tmp_path / "systemctl"
    script.write_text(f"#!{sys.executable}\nimport json, sys\n"
                      f"open({str(record)!r}, 'a').write(json.dumps(sys.argv[1:]) + '\\n')\n"
                      f"sys.stderr.write('refused by test\\n') if {status} else None\n"
                      f"sys.exit({status})\n")
    script.chmod(0o755)
    return script, record


def settings_with(tmp_path: Path, **values: object) -> Settings:
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"paths.data_dir": str(tmp_path),
                                   **{k.replace("__", "."): v for k, v in values.items()}}),
                      encoding="utf-8")
    return load_settings(config, environ={})


def calls(record: Path) -> list[list[str]]:
    return [json.loads(line) for line in record.read_text().splitlines()]


def test_apply_writes_the_file_and_starts_sshd_then_stops_and_removes(
        tmp_path: Path, keys: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    systemctl, record = recorder(tmp_path)
    keys_dir = tmp_path / "authorized_keys"
    keys_dir.mkdir()
    text = keys["ed25519"].read_text() + keys["rsa3072"].read_text()
    on = settings_with(tmp_path, ssh__enabled=True, ssh__authorized_keys=text)
    with caplog.at_level(logging.INFO, logger="mailstead"):
        done = apply(on, keys_dir=keys_dir, systemctl=str(systemctl))
    written = keys_dir / "root"
    assert written.read_text() == authorized_keys_text(list(done.keys))
    assert stat.S_IMODE(written.stat().st_mode) == 0o644
    assert [p.name for p in keys_dir.iterdir()] == ["root"]          # no temp file left
    assert calls(record) == [["start", "ssh.service"]]
    listed = subprocess.run(["ssh-keygen", "-lf", str(written)], capture_output=True,
                            text=True, check=True, timeout=30)          # OpenSSH reads it
    assert [line.split()[1] for line in listed.stdout.splitlines()] == [
        k.fingerprint for k in done.keys]
    [event] = [r for r in caplog.records if r.getMessage() == "ssh.applied"]
    assert event.__dict__["keys"] == 2
    assert event.__dict__["enabled"] is True
    assert event.__dict__["fingerprints"] == ",".join(
        keygen_fingerprint(keys[n]) for n in ("ed25519", "rsa3072"))
    for name in ("ed25519", "rsa3072"):            # the log names keys, never holds them
        assert keys[name].read_text().split()[1] not in caplog.text
        assert keys[name].read_text().split()[1][:40] not in str(event.__dict__)

    off = settings_with(tmp_path, ssh__enabled=False, ssh__authorized_keys=text)
    apply(off, keys_dir=keys_dir, systemctl=str(systemctl))
    assert not written.exists()
    assert calls(record)[-1] == ["stop", "ssh.service"]


def test_enabled_without_keys_stops_sshd(tmp_path: Path) -> None:
    systemctl, record = recorder(tmp_path)
    keys_dir = tmp_path / "k"
    keys_dir.mkdir()
    (keys_dir / "root").write_text("old\n")
    done = apply(settings_with(tmp_path, ssh__enabled=True),
                 keys_dir=keys_dir, systemctl=str(systemctl))
    assert not done.running
    assert not (keys_dir / "root").exists()
    assert calls(record) == [["stop", "ssh.service"]]


def test_a_failing_systemctl_is_an_error(tmp_path: Path, keys: dict[str, Path]) -> None:
    systemctl, _ = recorder(tmp_path, status=5)
    keys_dir = tmp_path / "k"
    keys_dir.mkdir()
    on = settings_with(tmp_path, ssh__enabled=True,
                       ssh__authorized_keys=keys["ed25519"].read_text())
    with pytest.raises(RuntimeError, match=r"systemctl start ssh\.service failed: refused"):
        apply(on, keys_dir=keys_dir, systemctl=str(systemctl))


def test_a_bad_key_in_the_file_setting_stops_load(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"ssh\.authorized_keys"):
        settings_with(tmp_path, ssh__enabled=True, ssh__authorized_keys="ssh-rsa AAAA")


def test_dry_run_prints_the_file_and_the_action(tmp_path: Path,
                                                keys: dict[str, Path]) -> None:
    config = tmp_path / "mailstead.toml"
    config.write_text(render_toml({"paths.data_dir": str(tmp_path), "ssh.enabled": True,
                                   "ssh.authorized_keys": keys["ecdsa521"].read_text()}),
                      encoding="utf-8")
    keys_dir = tmp_path / "nowhere"
    done = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), "ssh",
                           "apply", "--dry-run", "--keys-dir", str(keys_dir)],
                          capture_output=True, text=True, timeout=60, check=True)
    assert f"would write {keys_dir / 'root'} (0644):" in done.stdout
    assert keys["ecdsa521"].read_text().strip() in done.stdout
    assert keygen_fingerprint(keys["ecdsa521"]) in done.stdout
    assert done.stdout.rstrip().endswith("would run: systemctl start ssh.service")
    assert not keys_dir.exists()
    config.write_text(render_toml({"paths.data_dir": str(tmp_path)}), encoding="utf-8")
    off = subprocess.run([sys.executable, "-m", "appliance", "--config", str(config), "ssh",
                          "apply", "--dry-run", "--keys-dir", str(keys_dir)],
                         capture_output=True, text=True, timeout=60, check=True)
    assert off.stdout.splitlines() == [f"would remove {keys_dir / 'root'}",
                                       "would run: systemctl stop ssh.service"]


def test_authorized_key_line_round_trips() -> None:
    key = parse_keys(sk_variant(7) + "  two words ")[0]
    assert isinstance(key, AuthorizedKey)
    assert key.comment == "two words"
    assert parse_keys(key.line()) == [key]
