"""Backends shipped with Packflow. Each is a package (`backends.echo:EchoBackend`) and a
project directory (`packflow check backends/echo --input backends/echo/sample.jsonl`)."""
