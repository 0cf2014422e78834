"""validate.yml's check of a user's certificate and key, run as site.yml runs it: before any host changes, one
message naming the host and the variable for a key that does not match, an expired certificate, a chain that
does not validate; and nothing of the key in the output."""

import datetime
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bench_support import REPO
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from gpufleet_bench import fixtures


def _expired(directory: Path) -> tuple[str, str]:
    """A self-signed certificate that expired yesterday, and its key (constructed here)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(7).not_valid_before(now - datetime.timedelta(days=30))
            .not_valid_after(now - datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


def _run(tmp_path, lb_vars):
    inventory = {"all": {"vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
                         "children": {"load_balancers": {"hosts": {"lb-a": lb_vars}}}}}
    playbook = [{"name": "Check TLS input", "hosts": "load_balancers", "gather_facts": False, "tasks": [
        {"name": "Check the certificate and key", "ansible.builtin.include_role": {
            "name": "gpufleet.llm.nginx_lb", "tasks_from": "validate_tls.yml"}}]}]
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "check.yml").write_text(yaml.safe_dump(playbook))
    return subprocess.run([str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "check.yml")],
                          env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"),
                                   ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(REPO / "ansible.cfg")),
                          capture_output=True, text=True, timeout=180, check=False)


@pytest.fixture(scope="module")
def pems(tmp_path_factory):
    one, other = tmp_path_factory.mktemp("one"), tmp_path_factory.mktemp("other")
    ca = fixtures.tls_files(one)
    fixtures.tls_files(other)
    return {"cert": (one / "gpufleet.crt").read_text(), "key": (one / "gpufleet.key").read_text(),
            "ca": ca.read_text(), "other_key": (other / "gpufleet.key").read_text(),
            "other_ca": (other / "ca.crt").read_text()}


def test_a_good_certificate_key_and_chain_pass(tmp_path, pems):
    result = _run(tmp_path, {"nginx_lb_tls_certificate": pems["cert"], "nginx_lb_tls_private_key": pems["key"],
                             "nginx_lb_tls_trust": pems["ca"]})
    assert result.returncode == 0, result.stdout[-3000:]


@pytest.mark.parametrize(("case", "message"), [
    ("wrong key", "lb-a: nginx_lb_tls_private_key does not match nginx_lb_tls_certificate"),
    ("expired", "lb-a: nginx_lb_tls_certificate is not valid now"),
    ("untrusted", "lb-a: nginx_lb_tls_certificate does not chain to a trusted root (nginx_lb_tls_trust"),
    ("missing", "lb-a: nginx_lb_tls is on but nginx_lb_tls_certificate or nginx_lb_tls_private_key is empty"),
])
def test_bad_tls_input_fails_with_one_message_naming_host_and_variable(tmp_path, pems, case, message):
    lb_vars = {"nginx_lb_tls_certificate": pems["cert"], "nginx_lb_tls_private_key": pems["key"],
               "nginx_lb_tls_trust": pems["ca"]}
    if case == "wrong key":
        lb_vars["nginx_lb_tls_private_key"] = pems["other_key"]
    elif case == "expired":
        lb_vars["nginx_lb_tls_certificate"], lb_vars["nginx_lb_tls_private_key"] = _expired(tmp_path)
    elif case == "untrusted":
        lb_vars["nginx_lb_tls_trust"] = pems["other_ca"]
    else:
        lb_vars["nginx_lb_tls_private_key"] = ""
    result = _run(tmp_path, lb_vars)
    assert result.returncode != 0
    assert message in result.stdout and result.stdout.count("fatal: [lb-a]") == 1, result.stdout[-3000:]
    # The key never shows, whatever failed.
    secret = "".join(lb_vars["nginx_lb_tls_private_key"].splitlines()[1:-1])[:40]
    assert not secret or secret not in result.stdout + result.stderr
