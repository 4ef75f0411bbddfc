"""The AsyncAPI runtime: the per-API gateway (submit and poll over HTTP) and the queue-worker sidecar.

:mod:`cortex_iac.queue.contract` is the leaf the renderer imports (settings, key layout, commands,
ports, IAM actions); the gateway and the worker need boto3 (the ``serve`` extra's ``boto3``).
"""
