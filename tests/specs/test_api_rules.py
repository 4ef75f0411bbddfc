"""Each rule of the API specs, with the exact message it gives."""

from __future__ import annotations

from typing import Any

import pytest

from cortex_iac.specs import AsyncApiSpec, RealtimeApiSpec, load_apis
from tests.specs.helpers import api, container, problems, with_path

P = "cortex.yaml: apis[0]"


def one_container(**fields: Any) -> dict[str, Any]:
    return {"containers": [container(**fields)]}


CASES: list[tuple[str, list[Any], list[str]]] = [
    (
        "gpu and inf in one container",
        [api(pod=one_container(compute={"gpu": 1, "inf": 1}))],
        [f"{P}.pod.containers[0].compute.inf: 1 is not allowed (cannot be combined with gpu: request GPUs or Inferentia chips)"],
    ),
    (
        "gpu and inf in one pod",
        [api(pod={"containers": [container(compute={"gpu": 1}), container(name="b", compute={"inf": 2})]})],
        [f"{P}.pod.containers[1].compute.inf: 2 is not allowed (cannot be combined with gpu in one pod: request GPUs or Inferentia chips)"],
    ),
    (
        "target_in_flight beyond concurrency + queue",
        [api(pod={"max_concurrency": 2, "max_queue_length": 3, "containers": [container()]}, autoscaling={"target_in_flight": 5.5})],
        [f"{P}.autoscaling.target_in_flight: 5.5 is not allowed (must be <= max_concurrency + max_queue_length (2 + 3 = 5))"],
    ),
    (
        "window not a multiple of 10s",
        [api(autoscaling={"window": "65s"})],
        [f"{P}.autoscaling.window: '65s' is not allowed (must be a multiple of 10s, at least 10s)"],
    ),
    (
        "window zero",
        [api(autoscaling={"window": "0s"})],
        [f"{P}.autoscaling.window: '0s' is not allowed (must be a multiple of 10s, at least 10s)"],
    ),
    (
        "bad duration",
        [api(autoscaling={"upscale_stabilization_period": "1 minute"})],
        [f"{P}.autoscaling.upscale_stabilization_period: '1 minute' is not allowed (must be a duration such as 60s, 5m, 1h30m or 1.5m)"],
    ),
    (
        "factors and tolerances out of range",
        [
            api(
                autoscaling={
                    "max_downscale_factor": 1.0,
                    "max_upscale_factor": 1,
                    "downscale_tolerance": -0.1,
                    "upscale_tolerance": -1,
                }
            )
        ],
        [
            f"{P}.autoscaling.max_downscale_factor: 1.0 is not allowed (must be < 1)",
            f"{P}.autoscaling.max_upscale_factor: 1 is not allowed (must be > 1)",
            f"{P}.autoscaling.downscale_tolerance: -0.1 is not allowed (must be >= 0)",
            f"{P}.autoscaling.upscale_tolerance: -1 is not allowed (must be >= 0)",
        ],
    ),
    (
        "downscale tolerance of 1",
        [api(autoscaling={"downscale_tolerance": 1, "max_downscale_factor": -0.5})],
        [
            f"{P}.autoscaling.max_downscale_factor: -0.5 is not allowed (must be >= 0)",
            f"{P}.autoscaling.downscale_tolerance: 1 is not allowed (must be < 1)",
        ],
    ),
    (
        "min_replicas above max_replicas",
        [api(autoscaling={"min_replicas": 5, "max_replicas": 3})],
        [f"{P}.autoscaling.min_replicas: 5 is not allowed (must be <= max_replicas (3))"],
    ),
    (
        "init_replicas below min",
        [api(autoscaling={"min_replicas": 2, "init_replicas": 1})],
        [f"{P}.autoscaling.init_replicas: 1 is not allowed (must be between min_replicas (2) and max_replicas (100))"],
    ),
    (
        "init_replicas above max",
        [api(autoscaling={"max_replicas": 4, "init_replicas": 5})],
        [f"{P}.autoscaling.init_replicas: 5 is not allowed (must be between min_replicas (1) and max_replicas (4))"],
    ),
    (
        "replica counts out of range",
        [api(autoscaling={"min_replicas": -1, "max_replicas": 0})],
        [
            f"{P}.autoscaling.min_replicas: -1 is not allowed (must be >= 0)",
            f"{P}.autoscaling.max_replicas: 0 is not allowed (must be >= 1)",
        ],
    ),
    (
        "reserved pod ports",
        [api(name=f"api{port}", pod={"port": port, "containers": [container()]}) for port in (8888, 15000, 15001)],
        [
            f"cortex.yaml: apis[{i}].pod.port: {port} is not allowed (8888, 15000 and 15001 are reserved for the sidecar proxy)"
            for i, port in enumerate((8888, 15000, 15001))
        ],
    ),
    (
        "reserved probe ports",
        [
            api(
                pod=one_container(
                    readiness_probe={"http_get": {"port": 15000}},
                    liveness_probe={"tcp_socket": {"port": 8888}},
                    pre_stop={"http_get": {"port": 15001, "path": "/stop"}},
                )
            )
        ],
        [
            f"{P}.pod.containers[0].readiness_probe.http_get.port: 15000 is not allowed (8888, 15000 and 15001 are reserved for the sidecar proxy)",
            f"{P}.pod.containers[0].liveness_probe.tcp_socket.port: 8888 is not allowed (8888, 15000 and 15001 are reserved for the sidecar proxy)",
            f"{P}.pod.containers[0].pre_stop.http_get.port: 15001 is not allowed (8888, 15000 and 15001 are reserved for the sidecar proxy)",
        ],
    ),
    (
        "port out of range",
        [api(pod={"port": 70000, "containers": [container()]})],
        [f"{P}.pod.port: 70000 is not allowed (must be <= 65535)"],
    ),
    (
        "batch and task containers need a command",
        [
            api("BatchAPI", pod=one_container()),
            api("TaskAPI", name="task", pod=one_container(args=["x"])),
        ],
        [
            f"{P}.pod.containers[0].command: required key is missing (BatchAPI containers with an image need a command)",
            "cortex.yaml: apis[1].pod.containers[0].command: required key is missing (TaskAPI containers with an image need a command)",
        ],
    ),
    (
        "names are DNS labels",
        [api(name=name) for name in ("Hello", "1api", "a_b", "a" * 43, "api-")],
        [
            f"cortex.yaml: apis[{i}].name: {name!r} is not allowed (must be at most 42 characters of a-z, 0-9 and '-', "
            "starting with a letter and ending with a letter or digit)"
            for i, name in enumerate(("Hello", "1api", "a_b", "a" * 43, "api-"))
        ],
    ),
    (
        "names are unique across the file",
        [api(), api("BatchAPI"), api("TrafficSplitter", name="api")],
        [
            "cortex.yaml: apis[1].name: 'api' is not allowed (API names must be unique; apis[0] has it)",
            "cortex.yaml: apis[2].name: 'api' is not allowed (API names must be unique; apis[0] has it)",
        ],
    ),
    (
        "a container has neither image nor handler",
        [api(pod={"containers": [{"name": "api"}]})],
        [f"{P}.pod.containers[0].image: required key is missing (a container needs exactly one of image or handler)"],
    ),
    (
        "a container has both image and handler",
        [api(pod=one_container(handler={"path": "h.py"}))],
        [
            f'{P}.pod.containers[0].handler: {{"path": "h.py"}} is not allowed '
            "(a container needs exactly one of image or handler, and image is given)"
        ],
    ),
    (
        "container names are unique in a pod",
        [api(pod={"containers": [container(), container(), container(name="b")]})],
        [f"{P}.pod.containers[1].name: 'api' is not allowed (must be unique in the pod; containers[0] has it)"],
    ),
    (
        "reserved container names",
        [api(pod={"containers": [container(name="proxy")]})],
        [f"{P}.pod.containers[0].name: 'proxy' is not allowed (proxy and dequeuer are reserved container names)"],
    ),
    (
        "realtime max_concurrency and max_queue_length limits",
        [api(pod={"max_concurrency": 30001, "max_queue_length": 30001, "containers": [container()]})],
        [f"{P}.pod.max_queue_length: 30001 is not allowed (must be <= 30000)"],
    ),
    (
        "realtime max_concurrency limit",
        [api(pod={"max_concurrency": 30001, "containers": [container()]}, autoscaling={"target_in_flight": 1})],
        [f"{P}.pod.max_concurrency: 30001 is not allowed (must be <= 30000 for RealtimeAPI)"],
    ),
    (
        "async queue limits",
        [api("AsyncAPI", queue={"max_attempts": 1001, "request_timeout": "11h1s", "max_payload_size": "6Ti",
                                "retention_days": 0})],
        [
            f"{P}.queue.max_attempts: 1001 is not allowed (must be <= 1000)",
            f"{P}.queue.request_timeout: '11h1s' is not allowed (must be at least 1s, at most 39600s: SQS keeps a "
            "message invisible at most 12h after it is received)",
            f"{P}.queue.max_payload_size: 6Ti is not allowed (must be a whole number of bytes from 1 to 5Ti (S3's "
            "largest object), e.g. 100Mi)",
            f"{P}.queue.retention_days: 0 is not allowed (must be >= 1)",
        ],
    ),
    (
        "async queue bucket must be a bucket and a prefix ending in /",
        [api("AsyncAPI", queue={"bucket": "s3://my-bucket/no-slash"})],
        [f"{P}.queue.bucket: 's3://my-bucket/no-slash' is not allowed (must be an S3 URI of a bucket and an optional "
         "prefix ending in /, e.g. s3://my-bucket/cortex/)"],
    ),
    (
        "async queue unknown key",
        [api("AsyncAPI", queue={"retention": 7})],
        [f"{P}.queue.retention: unknown key (did you mean 'retention_days'? allowed keys: max_attempts, "
         "request_timeout, max_payload_size, "
         "retention_days, bucket)"],
    ),
    (
        "queue is AsyncAPI only",
        [api(queue={"max_attempts": 2})],
        [f"{P}.queue: unknown key (allowed keys for RealtimeAPI: name, kind, networking, pod, node_groups, iam, "
         "autoscaling, update_strategy, alerts)"],
    ),
    (
        "async target_in_flight is a whole number of messages",
        [api("AsyncAPI", autoscaling={"target_in_flight": 2.5})],
        [f"{P}.autoscaling.target_in_flight: 2.5 is not allowed (must be a whole number for AsyncAPI (KEDA's SQS "
         "scaler counts messages per replica))"],
    ),
    (
        "async max_concurrency limit",
        [api("AsyncAPI", pod={"max_concurrency": 101, "containers": [container()]})],
        [f"{P}.pod.max_concurrency: 101 is not allowed (must be <= 100 for AsyncAPI)"],
    ),
    (
        "concurrency and queue at least 1",
        [api(pod={"max_concurrency": 0, "max_queue_length": 0, "containers": [container()]})],
        [
            f"{P}.pod.max_concurrency: 0 is not allowed (must be >= 1)",
            f"{P}.pod.max_queue_length: 0 is not allowed (must be >= 1)",
        ],
    ),
    (
        "cpu and mem minimums",
        [api(pod=one_container(compute={"cpu": "19m", "mem": "19Mi"}))],
        [
            f"{P}.pod.containers[0].compute.cpu: 19m is not allowed (must be >= 20m)",
            f"{P}.pod.containers[0].compute.mem: 19Mi is not allowed (must be >= 20Mi)",
        ],
    ),
    (
        "shm larger than mem",
        [api(pod=one_container(compute={"mem": "1Gi", "shm": "2Gi"}))],
        [f"{P}.pod.containers[0].compute.shm: '2Gi' is not allowed (must be <= mem (1Gi))"],
    ),
    (
        "bad quantity",
        [api(pod=one_container(compute={"mem": "2.5GB", "cpu": [1], "gpu": "1"}))],
        [
            f"{P}.pod.containers[0].compute.cpu: [1] is not allowed (must be a quantity such as 200m, 1, 0.5, 2.5Gi, 512Mi or 2G)",
            f"{P}.pod.containers[0].compute.mem: '2.5GB' is not allowed (must be a quantity such as 200m, 1, 0.5, 2.5Gi, 512Mi or 2G)",
            f"{P}.pod.containers[0].compute.gpu: '1' is not allowed (must be an integer)",
        ],
    ),
    (
        "kind-specific pod fields",
        [
            api("TaskAPI", pod={"port": 8080, "max_concurrency": 2, "containers": [container(command=["x"])]}),
            api("AsyncAPI", name="b", pod={"max_queue_length": 5, "containers": [container()]}),
            api("BatchAPI", name="c", pod={"max_concurrency": 2, "containers": [container(command=["x"])]}),
        ],
        [
            f"{P}.pod.port: 8080 is not allowed (not supported by TaskAPI: a task serves no requests)",
            f"{P}.pod.max_concurrency: 2 is not allowed (not supported by TaskAPI)",
            "cortex.yaml: apis[1].pod.max_queue_length: 5 is not allowed (not supported by AsyncAPI)",
            "cortex.yaml: apis[2].pod.max_concurrency: 2 is not allowed (not supported by BatchAPI)",
        ],
    ),
    (
        "request_timeout out of range",
        [api(pod={"request_timeout": "6m", "containers": [container()]}),
         api(name="b", pod={"request_timeout": "0s", "containers": [container()]}),
         api(name="c", pod={"request_timeout": "1.5s", "containers": [container()]})],
        [
            (f"{P}.pod.request_timeout: '6m' is not allowed (must be at least 1s, at most 300s: the shared load "
             "balancer and the KEDA HTTP interceptor end a request with no answer after 300s)"),
            ("cortex.yaml: apis[1].pod.request_timeout: '0s' is not allowed (must be at least 1s, at most 300s: the "
             "shared load balancer and the KEDA HTTP interceptor end a request with no answer after 300s)"),
            "cortex.yaml: apis[2].pod.request_timeout: '1.5s' is not allowed (must be a whole number of seconds)",
        ],
    ),
    (
        "request_timeout only where Envoy enforces it",
        [api("AsyncAPI", pod={"request_timeout": "30s", "containers": [container()]})],
        [f"{P}.pod.request_timeout: 30 is not allowed (not supported by AsyncAPI)"],
    ),
    (
        "kind-specific probes and hooks",
        [
            api("TaskAPI", pod=one_container(command=["x"], readiness_probe={"tcp_socket": {"port": 1}})),
            api("AsyncAPI", name="b", pod=one_container(readiness_probe={"exec": {"command": ["true"]}})),
            api("BatchAPI", name="c", pod=one_container(command=["x"], pre_stop={"exec": {"command": ["stop"]}})),
        ],
        [
            f'{P}.pod.containers[0].readiness_probe: {{"tcp_socket": {{"port": 1}}}} is not allowed (not supported by TaskAPI)',
            'cortex.yaml: apis[1].pod.containers[0].readiness_probe.exec: {"command": ["true"]} is not allowed '
            "(not supported by AsyncAPI: use http_get or tcp_socket)",
            'cortex.yaml: apis[2].pod.containers[0].pre_stop: {"exec": {"command": ["stop"]}} is not allowed (not supported by BatchAPI)',
        ],
    ),
    (
        "sections a kind does not have",
        [api("BatchAPI", autoscaling={"min_replicas": 1})],
        [f"{P}.autoscaling: unknown key (allowed keys for BatchAPI: name, kind, networking, pod, node_groups, iam, jobs)"],
    ),
    (
        "probe handlers: exactly one",
        [
            api(
                pod=one_container(
                    readiness_probe={"http_get": {"port": 8080}, "tcp_socket": {"port": 8080}},
                    liveness_probe={"period_seconds": 5},
                    pre_stop={},
                )
            )
        ],
        [
            f'{P}.pod.containers[0].readiness_probe.tcp_socket: {{"port": 8080}} is not allowed '
            "(exactly one of http_get, tcp_socket, exec is needed; http_get is already given)",
            f"{P}.pod.containers[0].liveness_probe.http_get: required key is missing (exactly one of http_get, tcp_socket, exec is needed)",
            f"{P}.pod.containers[0].pre_stop.http_get: required key is missing (exactly one of http_get, exec is needed)",
        ],
    ),
    (
        "liveness success_threshold",
        [api(pod=one_container(liveness_probe={"exec": {"command": ["ok"]}, "success_threshold": 2}))],
        [f"{P}.pod.containers[0].liveness_probe.success_threshold: 2 is not allowed (must be 1 for a liveness probe (Kubernetes))"],
    ),
    (
        "probe timings",
        [api(pod=one_container(readiness_probe={"exec": {"command": ["ok"]}, "period_seconds": 0, "initial_delay_seconds": -1}))],
        [
            f"{P}.pod.containers[0].readiness_probe.initial_delay_seconds: -1 is not allowed (must be >= 0)",
            f"{P}.pod.containers[0].readiness_probe.period_seconds: 0 is not allowed (must be >= 1)",
        ],
    ),
    (
        "update strategy",
        [
            api(update_strategy={"max_surge": 0, "max_unavailable": "0%"}),
            api(name="b", update_strategy={"max_surge": "101%", "max_unavailable": -1}),
        ],
        [
            f"{P}.update_strategy.max_unavailable: '0%' is not allowed (max_surge and max_unavailable cannot both be 0)",
            "cortex.yaml: apis[1].update_strategy.max_surge: '101%' is not allowed "
            "(must be a whole number >= 0 or a percentage from 0% to 100%, e.g. 1 or 25%)",
            "cortex.yaml: apis[1].update_strategy.max_unavailable: -1 is not allowed "
            "(must be a whole number >= 0 or a percentage from 0% to 100%, e.g. 1 or 25%)",
        ],
    ),
    (
        "environment",
        [api(pod=one_container(env={"CORTEX_PORT": "1", "1X": "a", "OK": 1}))],
        [
            f"{P}.pod.containers[0].env.CORTEX_PORT: key 'CORTEX_PORT' is not allowed (must be an environment variable name "
            "of letters, digits, '_', '-', '.', not starting with a digit nor with CORTEX_ (reserved))",
            f"{P}.pod.containers[0].env['1X']: key '1X' is not allowed (must be an environment variable name "
            "of letters, digits, '_', '-', '.', not starting with a digit nor with CORTEX_ (reserved))",
            f"{P}.pod.containers[0].env.OK: 1 is not allowed (must be a string)",
        ],
    ),
    (
        "endpoint",
        [api(networking={"endpoint": "/a//b"}), api(name="b", networking={"endpoint": "/"})],
        [
            f"{P}.networking.endpoint: '/a//b' is not allowed "
            "(must be a non-empty URL path of letters, digits and _ - . / without '//', at most 1000 characters)",
            "cortex.yaml: apis[1].networking.endpoint: '/' is not allowed "
            "(must be a non-empty URL path of letters, digits and _ - . / without '//', at most 1000 characters)",
        ],
    ),
    (
        "node_groups and iam",
        [api(node_groups=["ng_1", "ok"], iam={"s3_read": ["s3://Bucket/x"]}), api(name="b", node_groups=[])],
        [
            f"{P}.node_groups[0]: 'ng_1' is not allowed (must be at most 26 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit and ending with a letter or digit)",
            f"{P}.iam.s3_read[0]: 's3://Bucket/x' is not allowed (must be an S3 URI such as s3://bucket/prefix/)",
            "cortex.yaml: apis[1].node_groups: [] is not allowed (must have at least 1 item)",
        ],
    ),
    (
        "traffic splitter weights must sum to 100",
        [api("TrafficSplitter", apis=[{"name": "a", "weight": 30}, {"name": "b", "weight": 60}, {"name": "c", "weight": 50, "shadow": True}])],
        [f"{P}.apis: non-shadow weights 30 + 60 = 90 is not allowed (the non-shadow weights must sum to 100)"],
    ),
    (
        "traffic splitter: one shadow, unique targets, weights in range",
        [
            api(
                "TrafficSplitter",
                apis=[
                    {"name": "a", "weight": 100},
                    {"name": "a", "weight": 0},
                    {"name": "s", "weight": 0, "shadow": True},
                    {"name": "t", "weight": 0, "shadow": True},
                ],
            ),
            api("TrafficSplitter", name="other", apis=[{"name": "a", "weight": 101}, {"name": "b"}]),
        ],
        [
            f"{P}.apis[1].name: 'a' is not allowed (must be unique in the splitter; apis[0] has it)",
            f"{P}.apis[3].shadow: true is not allowed (at most one shadow API per splitter; its apis[2] is already the shadow)",
            "cortex.yaml: apis[1].apis[0].weight: 101 is not allowed (must be <= 100)",
            "cortex.yaml: apis[1].apis[1].weight: required key is missing",
        ],
    ),
    (
        "unknown kind",
        [api(kind="RealTimeAPI"), {"name": "x", "kind": 3}, {"name": "y"}],
        [
            f"{P}.kind: 'RealTimeAPI' is not allowed "
            "(must be one of: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI, TrafficSplitter; did you mean 'RealtimeAPI'?)",
            "cortex.yaml: apis[1].kind: 3 is not allowed (must be one of: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI, TrafficSplitter)",
            "cortex.yaml: apis[2].kind: required key is missing (must be one of: RealtimeAPI, AsyncAPI, BatchAPI, TaskAPI, TrafficSplitter)",
        ],
    ),
    (
        "misspelt and unknown keys",
        [api(pod={"max_concurency": 2, "containers": [container(imgae="x")]}, zzz=1)],
        [
            f"{P}.pod.containers[0].imgae: unknown key (did you mean 'image'? allowed keys: name, image, handler, command, args, env, "
            "compute, readiness_probe, liveness_probe, pre_stop)",
            f"{P}.pod.max_concurency: unknown key (did you mean 'max_concurrency'? allowed keys: port, max_concurrency, "
            "max_queue_length, request_timeout, containers)",
            f"{P}.zzz: unknown key (allowed keys for RealtimeAPI: name, kind, networking, pod, node_groups, iam, autoscaling, "
            "update_strategy, alerts)",
        ],
    ),
    (
        "missing required keys and wrong types",
        [{"kind": "RealtimeAPI", "pod": {"containers": [{"image": 5, "command": "python main.py"}]}}, api(name="b", pod=[])],
        [
            f"{P}.name: required key is missing",
            f"{P}.pod.containers[0].name: required key is missing",
            f"{P}.pod.containers[0].image: 5 is not allowed (must be a string)",
            f"{P}.pod.containers[0].command: 'python main.py' is not allowed (must be a list)",
            "cortex.yaml: apis[1].pod: [] is not allowed (must be a mapping)",
        ],
    ),
    (
        "a list item that is not a mapping",
        [api(), "oops", None],
        [
            "cortex.yaml: apis[1]: 'oops' is not allowed (must be a mapping with name, kind, ...)",
            "cortex.yaml: apis[2]: null is not allowed (must be a mapping with name, kind, ...)",
        ],
    ),
    (
        "no containers",
        [api(pod={"containers": []}), api(name="b", pod={})],
        [
            f"{P}.pod.containers: [] is not allowed (must have at least 1 item)",
            "cortex.yaml: apis[1].pod.containers: required key is missing",
        ],
    ),
    (
        "job retention: whole hours from 1h to a year",
        [api("BatchAPI", jobs={"retention": "90m"}), api("TaskAPI", name="b", jobs={"retention": "0"}),
         api("TaskAPI", name="c", jobs={"retention": "8785h"})],
        [
            f"{P}.jobs.retention: '90m' is not allowed (must be a multiple of 3600s, at least 3600s, at most 31622400s: "
            "a finished job's record is kept whole hours, from 1h to 8784h (a year))",
            "cortex.yaml: apis[1].jobs.retention: '0' is not allowed (must be a multiple of 3600s, at least 3600s, at "
            "most 31622400s: a finished job's record is kept whole hours, from 1h to 8784h (a year))",
            "cortex.yaml: apis[2].jobs.retention: '8785h' is not allowed (must be a multiple of 3600s, at least 3600s, "
            "at most 31622400s: a finished job's record is kept whole hours, from 1h to 8784h (a year))",
        ],
    ),
    (
        "jobs is a job kinds' section",
        [api(jobs={"retention": "1h"})],
        [f"{P}.jobs: unknown key (allowed keys for RealtimeAPI: name, kind, networking, pod, node_groups, iam, "
         "autoscaling, update_strategy, alerts)"],
    ),
    (
        "job endpoints outside the gateway's health path",
        [api("BatchAPI", networking={"endpoint": "/-/ready"}), api("TaskAPI", name="b", networking={"endpoint": "-"})],
        [
            f"{P}.networking.endpoint: '/-/ready' is not allowed (must not start with /-/ (the job gateway's health checks))",
            "cortex.yaml: apis[1].networking.endpoint: '/-' is not allowed (must not start with /-/ (the job gateway's "
            "health checks))",
        ],
    ),
    (
        "api key secret and s3_write names",
        [api("BatchAPI", jobs={"api_key_secret": "Key_1"}, iam={"s3_write": ["models/iris"]})],
        [
            f"{P}.iam.s3_write[0]: 'models/iris' is not allowed (must be an S3 URI such as s3://bucket/prefix/)",
            f"{P}.jobs.api_key_secret: 'Key_1' is not allowed (must be at most 63 characters of a-z, 0-9 and '-', "
            "starting with a letter or digit and ending with a letter or digit)",
        ],
    ),
    (
        "TaskAPI takes no handler",
        [api("TaskAPI", pod={"containers": [{"name": "t", "handler": {"path": "h.py"}}]})],
        [f'{P}.pod.containers[0].handler: {{"path": "h.py"}} is not allowed (not supported by TaskAPI: a handler serves '
         "requests and never exits, so the task would not end; give an image and the command that runs the task)"],
    ),
    (
        "floats that are not finite and bools that are not ints",
        [api(autoscaling={"target_in_flight": float("inf"), "max_replicas": True})],
        [
            f"{P}.autoscaling.max_replicas: true is not allowed (must be an integer)",
            f"{P}.autoscaling.target_in_flight: inf is not allowed (must be a finite number)",
        ],
    ),
]


@pytest.mark.parametrize(("data", "expected"), [(data, expected) for _, data, expected in CASES], ids=[case[0] for case in CASES])
def test_rule_message(data: list[Any], expected: list[str]) -> None:
    assert problems(data) == expected


def test_valid_edge_values_pass() -> None:
    specs = load_apis(
        [
            api(
                pod={"port": 1, "max_concurrency": 30000, "max_queue_length": 30000, "request_timeout": "5m",
                     "containers": [container(compute={"cpu": "20m", "mem": "20Mi"})]},
                autoscaling={"min_replicas": 0, "max_replicas": 1, "target_in_flight": 60000, "window": "10s", "max_downscale_factor": 0},
            ),
            api("AsyncAPI", name="b", pod={"max_concurrency": 100, "containers": [container()]}),
            api("TrafficSplitter", name="c", apis=[{"name": "api", "weight": 0}, {"name": "x", "weight": 100}]),
        ]
    )
    assert [spec.name for spec in specs] == ["api", "b", "c"]
    assert specs[0].pod.request_timeout == 300  # type: ignore[union-attr]
    (shortest,) = load_apis([api(pod={"request_timeout": 1, "containers": [container()]})])
    assert shortest.pod.request_timeout == 1  # type: ignore[union-attr]


def test_models_apply_rules_when_built_in_python() -> None:
    with pytest.raises(ValueError, match=r"autoscaling.target_in_flight: 200.0 is not allowed"):
        RealtimeApiSpec.model_validate(with_path(api(), ("autoscaling", "target_in_flight"), 200.0))
    assert AsyncApiSpec.model_validate(api("AsyncAPI")).kind == "AsyncAPI"
