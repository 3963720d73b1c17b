"""A real Schema Registry for the broker tests: Apicurio Registry, whose Confluent-compatible
API (`/apis/ccompat/v7`) confluent-kafka's `SchemaRegistryClient` talks to.

Apicurio publishes its application to Maven Central as a library jar that still needs Quarkus's
build step, so the session fixture writes a small Maven project (below), builds it once into
`~/.cache/packflow/schema-registry/<version>` (`PACKFLOW_SCHEMA_REGISTRY_HOME` moves it), and
starts it on a free loopback port with in-memory (H2) storage: no Kafka storage, no Docker.
Java 17 and Maven are the only requirements, as for the broker. Set
`PACKFLOW_SCHEMA_REGISTRY_URL` to test against a registry that is already up instead.

`tests/conftest.py` makes the fixture `schema_registry_url` visible to every test module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from packflow.runtime.broker import free_port_block
from packflow.runtime.jars import find_java

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
