"""The Apache Kafka broker's jars: resolved once from Maven Central into a local cache.

`pom.xml` beside this module pins the Kafka version; `mvn dependency:copy-dependencies` copies
the broker and its runtime dependencies into `<home>/<version>/libs`. A marker file written
after a complete copy makes every later start offline.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

from .errors import BrokerError

POM = Path(__file__).with_name("pom.xml")
_MARKER = "resolved.txt"
_MIN_JAVA = 17
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def pinned_kafka_version() -> str:
    """The Kafka version `pom.xml` pins (its `kafka.version` property)."""
    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    node = ET.parse(POM).getroot().find("m:properties/m:kafka.version", ns)
    if node is None or not node.text:
        raise BrokerError(f"{POM} has no kafka.version property")
    return node.text.strip()


def cached_libs(home: Path, version: str) -> Path | None:
    """The libs directory of a completely resolved version, or None."""
    libs = home / version / "libs"
    return libs if (home / version / _MARKER).is_file() and libs.is_dir() else None


def ensure_jars(home: Path, version: str, mvn: str = "mvn") -> Path:
    """Return the directory holding Kafka `version`'s jars, resolving them with Maven if needed.

    A cached, complete copy is returned without running Maven (and so without the network).
    """
    libs = cached_libs(home, version)
    if libs is not None:
        return libs
    mvn_path = shutil.which(mvn)
    if mvn_path is None:
        raise BrokerError(
            f"Maven ({mvn}) not found on PATH: it is needed once to fetch Apache Kafka {version} "
            f"from Maven Central into {home}; install Maven (for example `apt-get install maven`)"
        )
    target = home / version
    partial = target / "libs.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    cmd = [
        mvn_path,
        "-B",
        "-q",
        "-Dstyle.color=never",
        "-f",
        str(POM),
        f"-Dkafka.version={version}",
        "dependency:copy-dependencies",
        f"-DoutputDirectory={partial}",
        "-DincludeScope=runtime",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BrokerError(
            f"Maven could not resolve Apache Kafka {version} from Maven Central: "
            f"{_first_maven_error(proc.stdout + proc.stderr)}",
            detail=(proc.stdout + proc.stderr)[-4000:],
        )
    libs = target / "libs"
    shutil.rmtree(libs, ignore_errors=True)
    partial.rename(libs)
    jars = sorted(p.name for p in libs.glob("*.jar"))
    (target / _MARKER).write_text("\n".join(jars) + "\n")
    return libs


def _first_maven_error(output: str) -> str:
    for line in _ANSI.sub("", output).splitlines():
        if line.startswith("[ERROR]") and line[7:].strip():
            # Maven's first error line names the artifact; drop its long help URL tail.
            return line[7:].strip().split(" -> [Help")[0]
    return "mvn exited with an error and printed no [ERROR] line"


def find_java(java_home: str | None = None) -> str:
    """The `java` executable (JAVA_HOME first, then PATH), checked to be Java 17 or newer."""
    home = java_home if java_home is not None else os.environ.get("JAVA_HOME")
    candidate = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if candidate is None or not os.access(candidate, os.X_OK):
        where = f"JAVA_HOME={home}" if home else "PATH"
        raise BrokerError(
            f"Java not found ({where}): the local Kafka broker needs Java {_MIN_JAVA}+; "
            "install it (for example `apt-get install openjdk-17-jre-headless`)"
        )
    proc = subprocess.run([candidate, "-version"], capture_output=True, text=True, check=False)
    match = re.search(r'version "(\d+)', proc.stderr + proc.stdout)
    if match is None or int(match.group(1)) < _MIN_JAVA:
        found = match.group(1) if match else "unknown"
        raise BrokerError(
            f"{candidate} is Java {found}; the local Kafka broker needs Java {_MIN_JAVA} or newer"
        )
    return candidate
