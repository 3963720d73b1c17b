"""The secured local cluster's material: a CA, the brokers' certificate and SCRAM users.

A secured cluster (`BrokerSettings.secure`) serves clients on a `SASL_SSL` listener only:
TLS with a certificate for 127.0.0.1/localhost signed by a CA made here with the JDK's
`keytool`, and SCRAM-SHA-512 logins for two users created when the storage is formatted:
`admin` (a super user) and `packflow`, an application user with no rights until ACLs grant
them (`packflow acls --apply`). Everything lives in `<data dir>/security/` (mode 0700):
`ca.pem` (the CA certificate, for librdkafka's `ssl.ca.location`), `broker.p12` (the brokers'
key and certificate) and one `<user>.password` file per user (mode 0600). The CA's own key is
deleted once the certificate is signed: nothing else is ever signed with it.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .errors import BrokerError

ADMIN = "admin"
APP_USER = "packflow"
USERS = (ADMIN, APP_USER)
MECHANISM = "SCRAM-SHA-512"
PROTOCOL = "SASL_SSL"
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_KEYSTORE = "keystore"  # the password file of broker.p12
_VALID_DAYS = "3650"
_STOREPASS_ENV = "PACKFLOW_KEYTOOL_STOREPASS"  # keytool reads it: no password in argv


@dataclass(frozen=True)
class ListenerSecurity:
    """What the `SASL_SSL` listener of each node is configured with."""

    keystore: Path
    keystore_password: str
    ca: Path
    admin_password: str

    def properties(self) -> dict[str, str]:
        """The server properties of a secured node (pure)."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.admin_password}";'
        )
        return {
            "sasl.enabled.mechanisms": MECHANISM,
            # The brokers talk to each other (replication, transaction markers, even to
            # themselves) on the SASL_SSL listener, logged in as admin.
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.{PROTOCOL.lower()}.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PKCS12",
            "ssl.keystore.location": str(self.keystore),
            "ssl.keystore.password": self.keystore_password,
            "ssl.key.password": self.keystore_password,
            # Trusted by the brokers' own (inter-broker) connections; no client certificates.
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca),
            "authorizer.class.name": AUTHORIZER,
            "allow.everyone.if.no.acl.found": "false",
            # The controller listener is PLAINTEXT on loopback: the nodes' own requests on it
            # (broker registration, heartbeats: ClusterAction) come from User:ANONYMOUS, which
            # must therefore be a super user. Clients never get an address on it.
            "super.users": f"User:{ADMIN};User:ANONYMOUS",
        }


class SecurityFiles:
    """The files of a secured cluster under `<data dir>/security`."""

    def __init__(self, data_dir: Path) -> None:
        self.dir = data_dir / "security"

    @property
    def ca(self) -> Path:
        return self.dir / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.dir / "broker.p12"

    def password_file(self, user: str) -> Path:
        if user not in (*USERS, _KEYSTORE):
            raise BrokerError(f"no user {user!r} on the local cluster (users: {', '.join(USERS)})")
        return self.dir / f"{user}.password"

    def password(self, user: str) -> str:
        path = self.password_file(user)
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise BrokerError(f"cannot read {path}: {exc.strerror}") from None

    def exist(self) -> bool:
        return self.keystore.is_file() and all(
            self.password_file(u).is_file() for u in (*USERS, _KEYSTORE)
        )

    def ensure(self, java: str) -> None:
        """Make the passwords, the CA and the brokers' certificate, unless already made."""
        if self.exist():
            return
        if self.dir.exists():
            shutil.rmtree(self.dir)  # half made (an interrupted start): start over
        self.dir.mkdir(parents=True, mode=0o700)
        for user in (*USERS, _KEYSTORE):
            write_private(self.password_file(user), secrets.token_hex(24) + "\n")
        self._certificates(keytool(java))

    def listener(self) -> ListenerSecurity:
        return ListenerSecurity(
            self.keystore, self.password(_KEYSTORE), self.ca, self.password(ADMIN)
        )

    def scram_arguments(self) -> list[str]:
        """`kafka-storage format` arguments creating the users (hex passwords: no quoting)."""
        args = []
        for user in USERS:
            args += ["--add-scram", f"{MECHANISM}=[name={user},password={self.password(user)}]"]
        return args

    def client_config(self, bootstrap: str, user: str) -> dict[str, str]:
        """librdkafka settings of a client logged in as `user`."""
        return {
            "bootstrap.servers": bootstrap,
            "security.protocol": PROTOCOL,
            "sasl.mechanism": MECHANISM,
            "sasl.username": user,
            "sasl.password": self.password(user),
            "ssl.ca.location": str(self.ca),
        }

    def _certificates(self, tool: str) -> None:
        ca_store = self.dir / "ca.p12"
        request = self.dir / "broker.csr"
        signed = self.dir / "broker.pem"
        store = ["-storetype", "PKCS12", "-storepass:env", _STOREPASS_ENV]
        ca = ["-keystore", str(ca_store), *store]
        broker = ["-keystore", str(self.keystore), *store]
        key = ["-keyalg", "RSA", "-keysize", "2048", "-validity", _VALID_DAYS]
        steps = [
            ["-genkeypair", "-alias", "ca", "-dname", "CN=Packflow local CA", *key, *ca,
             "-ext", "bc:c=ca:true", "-ext", "KU=keyCertSign,cRLSign"],
            ["-exportcert", "-rfc", "-alias", "ca", *ca, "-file", str(self.ca)],
            ["-genkeypair", "-alias", "broker", "-dname", "CN=localhost", *key, *broker],
            ["-certreq", "-alias", "broker", *broker, "-file", str(request)],
            ["-gencert", "-alias", "ca", *ca, "-infile", str(request), "-outfile", str(signed),
             "-rfc", "-validity", _VALID_DAYS, "-ext", "SAN=dns:localhost,ip:127.0.0.1",
             "-ext", "KU=digitalSignature,keyEncipherment", "-ext", "EKU=serverAuth"],
            ["-importcert", "-noprompt", "-alias", "ca", "-file", str(self.ca), *broker],
            ["-importcert", "-alias", "broker", "-file", str(signed), *broker],
        ]  # fmt: skip
        env = {**os.environ, _STOREPASS_ENV: self.password(_KEYSTORE)}
        for step in steps:
            proc = subprocess.run(
                [tool, *step], capture_output=True, text=True, env=env, check=False
            )
            if proc.returncode != 0:
                output = (proc.stdout + proc.stderr).strip()
                last = output.splitlines()[-1] if output else f"exit code {proc.returncode}"
                raise BrokerError(f"keytool {step[0]} failed: {last}", detail=output)
        for leftover in (ca_store, request, signed):
            leftover.unlink()
        self.keystore.chmod(0o600)


def keytool(java: str) -> str:
    """The `keytool` of the JDK that `java` belongs to, else the one on PATH."""
    beside = Path(java).resolve().parent / "keytool"
    if os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("keytool")
    if found is None:
        raise BrokerError(
            f"keytool not found (beside {java} or on PATH): a secured local cluster needs it "
            "to make its certificate; it comes with the JDK"
        )
    return found


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path`, readable by its owner only (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)  # an existing file keeps its mode through O_TRUNC
