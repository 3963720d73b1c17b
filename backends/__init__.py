"""Backends shipped with Packflow. Each is a package (`packflow.examples.echo:EchoBackend`) and a
project directory (`packflow check backends/echo --input backends/echo/sample.jsonl`)."""
