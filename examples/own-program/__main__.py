"""Acme's own program: its model bucket, a cortex_iac cluster and one fraud-scoring API.

The specs are built in Python here (the same pydantic models `cortex.yaml` files load into), and the
API's role may read only its model prefix in the bucket this program creates.
"""

import pulumi
import pulumi_aws as aws

from cortex_iac import Cluster, RealtimeApi, load_apis, load_cluster

config = pulumi.Config()
env = config.require("environment")

models = aws.s3.Bucket("models", bucket=f"acme-models-{env}", tags={"team": "risk"})

cluster = Cluster(
    "ml",
    load_cluster(
        {
            "cluster_name": f"acme-ml-{env}",
            "region": "eu-west-1",
            "availability_zones": ["eu-west-1a", "eu-west-1b", "eu-west-1c"],
            "subnet_visibility": "private",
            "nat_gateway": "single",
            "node_groups": [
                {"name": "cpu", "instance_type": "c6i.xlarge", "min_instances": 1, "max_instances": 6},
            ],
            "tags": {"team": "ml-platform", "env": env},
        },
        origin="examples/own-program/__main__.py: cluster",
    ),
)

(fraud,) = load_apis(
    [
        {
            "name": "fraud-score",
            "kind": "RealtimeAPI",
            "pod": {
                "port": 8080,
                "max_concurrency": 4,
                "containers": [
                    {
                        "name": "api",
                        "image": config.require("fraudImage"),
                        "compute": {"cpu": "500m", "mem": "1Gi"},
                        "readiness_probe": {"http_get": {"path": "/healthz", "port": 8080}},
                    }
                ],
            },
            "autoscaling": {"min_replicas": 2, "max_replicas": 12, "target_in_flight": 3},
            "iam": {"s3_read": [f"s3://acme-models-{env}/fraud/"]},
        }
    ],
    origin="examples/own-program/__main__.py: apis",
)
api = RealtimeApi("fraud-score", fraud, cluster, opts=pulumi.ResourceOptions(depends_on=[models]))

pulumi.export("fraud_url", api.url)
pulumi.export("models_bucket", models.bucket)
