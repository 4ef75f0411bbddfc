from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_aws as aws
import pytest

from cortex_iac.errors import PlanError
from cortex_iac.plan.engine import SECRET, UNKNOWN, load_program, record, run_program

TINY = Path(__file__).parent / "fixtures" / "tiny"
VPC_URN = "urn:pulumi:dev::tiny::aws:ec2/vpc:Vpc::vpc"


def test_records_parent_provider_and_dependencies() -> None:
    rec = run_program(TINY, "dev", preview=True)
    subnet = rec.find("aws:ec2/subnet:Subnet", "subnet")
    assert subnet.parent == VPC_URN
    assert subnet.dependencies == [VPC_URN]
    assert subnet.property_dependencies == {"vpcId": [VPC_URN]}
    cm = rec.find("kubernetes:core/v1:ConfigMap", "greeting")
    assert cm.provider == "urn:pulumi:dev::tiny::pulumi:providers:kubernetes::k8s"
    assert cm.parent == "urn:pulumi:dev::tiny::pulumi:pulumi:Stack::tiny-dev"


def test_preview_marks_outputs_unknown_and_keeps_inputs() -> None:
    rec = run_program(TINY, "dev", preview=True)
    assert rec.find("aws:ec2/subnet:Subnet", "subnet").inputs == {"vpcId": UNKNOWN, "cidrBlock": "10.0.1.0/24"}
    cm = rec.find("kubernetes:core/v1:ConfigMap", "greeting")
    assert cm.inputs["data"] == {"greeting": "hello", "vpc": UNKNOWN}
    assert cm.inputs["metadata"]["labels"] == {"team": "ml"}
    assert rec.outputs == {"greeting": "hello", "vpc_id": UNKNOWN}


def test_secrets_are_masked() -> None:
    rec = run_program(TINY, "dev", preview=True)
    secret = rec.find("kubernetes:core/v1:Secret", "password")
    assert secret.inputs["stringData"] == SECRET


def test_test_mode_fakes_outputs() -> None:
    def program() -> None:
        vpc = aws.ec2.Vpc("v", cidr_block="10.0.0.0/16")
        aws.ec2.Subnet("s", vpc_id=vpc.id, cidr_block="10.0.0.0/24")
        pulumi.export("arn", vpc.arn)

    rec = record(program)
    assert rec.find("aws:ec2/subnet:Subnet", "s").inputs["vpcId"] == "v-id"
    assert rec.outputs == {"arn": "arn:aws:ec2:us-east-1:123456789012:v"}


def test_invokes_are_refused_with_the_token() -> None:
    with pytest.raises(PlanError, match=r"data source 'aws:index/getCallerIdentity:getCallerIdentity'"):
        record(lambda: aws.get_caller_identity())


def test_runs_are_independent() -> None:
    first = record(lambda: aws.ec2.Vpc("a", cidr_block="10.0.0.0/16"))
    second = record(lambda: aws.ec2.Vpc("b", cidr_block="10.0.0.0/16"))
    assert [r.name for r in first.resources] == ["a"]
    assert [r.name for r in second.resources] == ["b"]


def test_load_program_namespaces_keys_and_encodes_objects() -> None:
    program = load_program(TINY, "dev")
    assert program.project == "tiny"
    assert program.config == {"tiny:greeting": "hello", "tiny:labels": '{"team": "ml"}', "db:password": SECRET}
    assert program.secret_keys == ["db:password"]


def _stack(directory: Path, text: str) -> None:
    (directory / "Pulumi.yaml").write_text("name: x\nruntime: python\n")
    (directory / "Pulumi.dev.yaml").write_text(text)


def test_an_empty_stack_config_is_a_stack_without_settings(tmp_path: Path) -> None:
    _stack(tmp_path, "")
    assert load_program(tmp_path, "dev").config == {}


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, r"Pulumi.yaml: not found"),
        (lambda d: (d / "Pulumi.yaml").write_text("name: x\nruntime: nodejs\n"), r"runtime is 'nodejs'"),
        (lambda d: (d / "Pulumi.yaml").write_text("name: [\n"), r"Pulumi.yaml: line 2, column 1: invalid YAML"),
        (lambda d: (d / "Pulumi.yaml").write_text("name: x\nruntime: python\n"), r"Pulumi.dev.yaml: no such stack config; stacks here: none"),
        # The files a pull request may bring are read as spec files are: duplicate keys, alias bombs,
        # oversized and non-regular files are refused before anything runs.
        (lambda d: _stack(d, "config:\n  a: 1\n  a: 2\n"), r"Pulumi.dev.yaml: line 3, column 3: key 'a' given twice"),
        (lambda d: _stack(d, "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
            f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
            f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
            for i in range(6))), r"Pulumi.dev.yaml: \(top level\): YAML aliases expand to more than"),
        (lambda d: _stack(d, "config:\n  a: '" + "x" * (4 * 1024 * 1024) + "'\n"), r"Pulumi.dev.yaml: has \d+ bytes"),
        (lambda d: _stack(d, "[1, 2]\n"), r"Pulumi.dev.yaml: must be a mapping"),
    ],
)
def test_bad_programs_give_one_clear_error(tmp_path: Path, setup, message: str) -> None:
    setup(tmp_path)
    with pytest.raises(PlanError, match=message):
        load_program(tmp_path, "dev")


def test_records_after_asyncio_run_left_the_thread_without_a_loop() -> None:
    import asyncio

    asyncio.run(asyncio.sleep(0))
    rec = record(lambda: aws.ec2.Vpc("after", cidr_block="10.0.0.0/16"))
    assert [r.name for r in rec.resources] == ["after"]


def test_a_refused_invoke_does_not_leak_into_the_next_run() -> None:
    def waits_on_an_invoke() -> None:
        identity = aws.get_caller_identity_output()
        aws.ec2.Vpc("v", cidr_block="10.0.0.0/16", tags={"account": identity.account_id})

    with pytest.raises(PlanError):
        record(waits_on_an_invoke)
    rec = record(lambda: aws.ec2.Vpc("clean", cidr_block="10.0.0.0/16"))
    assert [r.name for r in rec.resources] == ["clean"]


def test_records_the_options_that_change_how_an_update_is_carried_out() -> None:
    def program() -> None:
        aws.ec2.Vpc("plain", cidr_block="10.0.0.0/16")
        aws.ec2.Vpc("tuned", cidr_block="10.0.0.0/16", tags={"a": "b"}, opts=pulumi.ResourceOptions(
            ignore_changes=["tags", "cidr_block"], replace_on_changes=["enable_dns_support"], delete_before_replace=True))

    rec = record(program)
    plain, tuned = rec.find("aws:ec2/vpc:Vpc", "plain"), rec.find("aws:ec2/vpc:Vpc", "tuned")
    assert (plain.ignore_changes, plain.replace_on_changes, plain.delete_before_replace) == ([], [], False)
    # Property names as the engine sees them: the SDK translates them to the provider's camelCase.
    assert (tuned.ignore_changes, tuned.replace_on_changes, tuned.delete_before_replace) == (
        ["tags", "cidrBlock"], ["enableDnsSupport"], True)
    assert tuned.to_json()["ignore_changes"] == ["tags", "cidrBlock"]


def test_records_aliases_as_the_urns_they_stand_for() -> None:
    def program() -> None:
        parent = pulumi.ComponentResource("my:test:Parent", "p")
        opts = pulumi.ResourceOptions(parent=parent, aliases=[
            pulumi.Alias(name="old"), pulumi.Alias(name="older", parent=pulumi.ROOT_STACK_RESOURCE),
            "urn:pulumi:test::cortex::aws:ec2/vpc:Vpc::by-urn"])
        aws.ec2.Vpc("new", cidr_block="10.0.0.0/16", opts=opts)
        parent.register_outputs({})

    new = record(program).find("aws:ec2/vpc:Vpc", "new")
    assert new.urn == "urn:pulumi:test::cortex::my:test:Parent$aws:ec2/vpc:Vpc::new"
    # A spec names what differed; the rest is the resource's own (here its parent, except for
    # "older", which lived under the stack itself).
    assert new.aliases == [
        "urn:pulumi:test::cortex::aws:ec2/vpc:Vpc::by-urn",
        "urn:pulumi:test::cortex::aws:ec2/vpc:Vpc::older",
        "urn:pulumi:test::cortex::my:test:Parent$aws:ec2/vpc:Vpc::old",
    ]
