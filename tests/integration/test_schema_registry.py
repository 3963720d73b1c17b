"""The confluent codec against a real Schema Registry: Apicurio Registry, whose Confluent-
compatible API (`/apis/ccompat/v7`) confluent-kafka's `SchemaRegistryClient` talks to.

Apicurio publishes its application to Maven Central as a library jar that still needs Quarkus's
build step, so the session fixture writes a small Maven project (below), builds it once into
`~/.cache/packflow/schema-registry/<version>` (`PACKFLOW_SCHEMA_REGISTRY_HOME` moves it), and
starts it on a free loopback port with in-memory (H2) storage: no Kafka storage, no Docker.
Java 17 and Maven are the only requirements, as for the broker. Set
`PACKFLOW_SCHEMA_REGISTRY_URL` to test against a registry that is already up instead.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from consumer.codecs import ConfluentEncoder, Encoder, make_decoder, make_encoder
from consumer.contracts import schema_path
from consumer.errors import DecodeError
from consumer.jars import find_java
from tests.conftest import TopicFactory, free_port_block
from tests.kafka_io import consume_exactly, produce

APICURIO_VERSION = "2.4.2.Final"
# The newest Apicurio line whose every artifact is on Maven Central and that runs on Java 17
# (2.5/2.6 miss modules there; 3.x needs Java 21).
QUARKUS_VERSION = "2.16.4.Final"

POM = f"""<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0"
         xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:schemaLocation="http://maven.apache.org/POM/4.0.0 https://maven.apache.org/xsd/maven-4.0.0.xsd">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.packflow</groupId>
  <artifactId>packflow-schema-registry</artifactId>
  <version>1</version>
  <packaging>jar</packaging>
  <properties>
    <maven.compiler.release>17</maven.compiler.release>
    <project.build.sourceEncoding>UTF-8</project.build.sourceEncoding>
  </properties>
  <dependencyManagement>
    <dependencies>
      <!-- The registry's runtime extension at this version has no deployment artifact on
           Maven Central; 0.1.10.Final has both halves. -->
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-common-app-components-config-index</artifactId>
        <version>0.1.10.Final</version>
      </dependency>
      <dependency>
        <groupId>io.apicurio</groupId>
        <artifactId>apicurio-registry</artifactId>
        <version>{APICURIO_VERSION}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>io.apicurio</groupId>
      <artifactId>apicurio-registry-app</artifactId>
      <version>{APICURIO_VERSION}</version>
      <exclusions>
        <!-- Published outside Maven Central; the same library is there as erosb's. -->
        <exclusion>
          <groupId>com.github.everit-org.json-schema</groupId>
          <artifactId>org.everit.json.schema</artifactId>
        </exclusion>
      </exclusions>
    </dependency>
    <dependency>
      <groupId>com.github.erosb</groupId>
      <artifactId>everit-json-schema</artifactId>
      <version>1.14.2</version>
    </dependency>
  </dependencies>
  <build>
    <plugins>
      <plugin>
        <groupId>io.quarkus</groupId>
        <artifactId>quarkus-maven-plugin</artifactId>
        <version>{QUARKUS_VERSION}</version>
        <executions>
          <execution>
            <goals><goal>build</goal></goals>
          </execution>
        </executions>
      </plugin>
    </plugins>
  </build>
</project>
"""

APPLICATION_PROPERTIES = """\
# The registry's beans live in the apicurio-registry-app dependency, which has no Jandex index.
quarkus.index-dependency.registry.group-id=io.apicurio
quarkus.index-dependency.registry.artifact-id=apicurio-registry-app
quarkus.package.type=legacy-jar
"""

RUNNER = "target/packflow-schema-registry-1-runner.jar"
MARKER = "built.txt"


def registry_home() -> Path:
    default = Path.home() / ".cache" / "packflow" / "schema-registry"
    return Path(os.environ.get("PACKFLOW_SCHEMA_REGISTRY_HOME", default)) / APICURIO_VERSION


def build_registry(home: Path) -> Path:
    """The registry's runnable jar, built with Maven on first use (then cached)."""
    if (home / MARKER).is_file() and (home / RUNNER).is_file():
        return home / RUNNER
    mvn = shutil.which("mvn")
    assert mvn is not None, "Maven (mvn) is needed once to build the schema registry"
    shutil.rmtree(home, ignore_errors=True)
    (home / "src" / "main" / "resources").mkdir(parents=True)
    (home / "pom.xml").write_text(POM)
    (home / "src" / "main" / "resources" / "application.properties").write_text(
        APPLICATION_PROPERTIES
    )
    proc = subprocess.run(
        [mvn, "-B", "-q", "-Dstyle.color=never", "package", "-DskipTests"],
        cwd=home,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"building the schema registry failed:\n{proc.stdout[-4000:]}"
    (home / MARKER).write_text(APICURIO_VERSION + "\n")
    return home / RUNNER


def wait_until_serving(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"schema registry exited:\n{log.read_text()[-4000:]}"
        try:
            with urllib.request.urlopen(f"{url}/subjects", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"schema registry not serving after {timeout}s:\n{log.read_text()[-4000:]}"
    )


@pytest.fixture(scope="session")
def schema_registry_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Confluent-compatible URL of a real schema registry for the session."""
    given = os.environ.get("PACKFLOW_SCHEMA_REGISTRY_URL")
    if given:
        yield given
        return
    runner = build_registry(registry_home())
    java = find_java()
    port = free_port_block(1)
    log = tmp_path_factory.mktemp("schema-registry") / "registry.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                java,
                f"-Dquarkus.http.port={port}",
                "-Dquarkus.http.host=127.0.0.1",
                "-jar",
                str(runner),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    try:
        wait_until_serving(url, proc, log, timeout=120)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo_record(i: int) -> dict[str, Any]:
    # Multiples of 1/8 are exact in float32, so decoded features equal the originals.
    return {
        "id": f"rec-{i}",
        "timestamp": 1_700_000_000_000 + i,
        **{f"x{j}": (i * 16 + j) / 8 - 20.0 for j in range(16)},
    }


def demo_v2(directory: Path) -> str:
    schema = json.loads(schema_path("demo_input").read_text())
    schema["fields"].append({"name": "source", "type": "string", "default": "sensor"})
    path = directory / "demo_v2.avsc"
    path.write_text(json.dumps(schema))
    return str(path)


def schema_id_of(encoder: Encoder) -> int:
    assert isinstance(encoder, ConfluentEncoder)
    return encoder.schema_id


@pytest.mark.broker
def test_confluent_records_round_trip_through_the_registry_and_the_broker(
    schema_registry_url: str, kafka_bootstrap: str, make_topic: TopicFactory
) -> None:
    topic = make_topic(partitions=2)
    records = [demo_record(i) for i in range(300)]
    encoder = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject=f"{topic}-value"
    )
    produce(kafka_bootstrap, topic, [(r["id"].encode(), encoder.encode(r)) for r in records])

    messages = consume_exactly(kafka_bootstrap, topic, len(records))

    # A client of its own, as a consumer in another process would have: nothing cached.
    client = SchemaRegistryClient({"url": schema_registry_url})
    decoder = make_decoder("confluent", "demo_input", registry_client=client)
    decoded = decoder.decode_batch([m.value() for m in messages])
    assert sorted(decoded, key=lambda r: r["id"] if isinstance(r, dict) else "") == sorted(
        records, key=lambda r: r["id"]
    )
    registered = client.get_latest_version(f"{topic}-value")
    assert registered.schema_id == schema_id_of(encoder)
    assert json.loads(str(registered.schema.schema_str))["name"] == "DemoInput"


def test_a_new_reader_fills_defaults_for_records_of_an_old_registered_writer(
    schema_registry_url: str, tmp_path: Path
) -> None:
    subject = f"evolution-{tmp_path.name}-value"
    v2 = demo_v2(tmp_path)
    old = make_encoder("confluent", "demo_input", registry_url=schema_registry_url, subject=subject)
    new = make_encoder("confluent", v2, registry_url=schema_registry_url, subject=subject)
    values = [old.encode(demo_record(1)), new.encode({**demo_record(2), "source": "camera"})]
    assert schema_id_of(old) != schema_id_of(new)

    client = SchemaRegistryClient({"url": schema_registry_url})
    new_reader = make_decoder("confluent", v2, registry_client=client)
    old_reader = make_decoder("confluent", "demo_input", registry_client=client)
    assert new_reader.decode_batch(values) == [
        {**demo_record(1), "source": "sensor"},
        {**demo_record(2), "source": "camera"},
    ]
    assert old_reader.decode_batch(values) == [demo_record(1), demo_record(2)]


def test_an_id_the_registry_does_not_know_is_a_decode_error_in_its_slot(
    schema_registry_url: str,
) -> None:
    encoder = make_encoder(
        "confluent", "demo_input", registry_url=schema_registry_url, subject="unknown-id-value"
    )
    good = encoder.encode(demo_record(3))
    unknown = b"\x00" + (987654).to_bytes(4, "big") + good[5:]
    client = SchemaRegistryClient({"url": schema_registry_url})
    decoded = make_decoder(
        "confluent", "demo_input", registry_client=client, registry_url=schema_registry_url
    ).decode_batch([good, unknown, good])
    assert decoded[0] == decoded[2] == demo_record(3)
    error = decoded[1]
    assert isinstance(error, DecodeError)
    assert (error.reason, str(error)) == (
        "unknown-schema",
        f"unknown schema id 987654: not in the schema registry at {schema_registry_url}",
    )
