#!/usr/bin/env python3
"""Generate the instance prices of cortex_iac/data/prices.json (no network: files read from git).

Sources, in order of precedence, one source per instance family and region (so a family's prices
share one date, which the cost report shows):

1. ``karpenter``: Karpenter's generated initial on-demand price table
   (aws/karpenter-provider-aws, ``pkg/providers/pricing/zz_generated.pricing_aws.go``, the map
   ``InitialOnDemandPricesAWS``: on-demand Linux prices from the AWS Pricing API; its header says
   when and for which regions it was generated). At the pinned commit it holds us-east-1 only.
2. ``vantage``: the GPU / Inferentia families of the previous table (instances.vantage.sh data,
   see the ``sources`` entry), carried over unchanged: no newer public per-region source is pinned.
3. ``cortex``: Cortex's generated table (cortexlabs/cortex, ``pkg/lib/aws/resource_metadata.go``,
   ``InstanceMetadatas``, from the AWS Pricing API, 2022), per region.

Every type of cortex_iac/data/instance_types.json that no source prices in a region is listed
under the region's ``unpriced`` (the cost report lists what it could not price and estimates the
rest). Everything else of the table (EKS, NAT, load balancer and EBS prices, the spot estimate,
source notes) is kept from the existing file. Spot prices are not in any source used: the report
shows spot as an ESTIMATE, on-demand x (1 - ``spot_discount_estimate``), and says so.

Usage (the default git directories are what the ``fetch`` of each repository gives)::

    python scripts/gen_prices.py \\
      --karpenter-git /work/.mirror/aws+karpenter-provider-aws/repo \\
      --cortex-git /work/.mirror/cortexlabs+cortex/repo
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRICES = ROOT / "cortex_iac" / "data" / "prices.json"
INSTANCE_TYPES = ROOT / "cortex_iac" / "data" / "instance_types.json"

KARPENTER = {
    "repo": "aws/karpenter-provider-aws",
    "path": "pkg/providers/pricing/zz_generated.pricing_aws.go",
    "commit": "6fc13b5236fd04fd16ff3f9dc7490d0813994099",
}
CORTEX = {
    "repo": "cortexlabs/cortex",
    "path": "pkg/lib/aws/resource_metadata.go",
    "commit": "8264ddb190aa59be54669a525e80cacdca47447b",
}


def git_show(git_dir: Path, commit: str, path: str) -> str:
    """A file's text at a commit of a bare or normal git repository."""
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def parse_karpenter(text: str) -> tuple[str, dict[str, dict[str, float]]]:
    """(generated-at timestamp, region -> type -> USD/hour) of a zz_generated.pricing_aws.go."""
    stamp = re.search(r"// generated at (\S+) for", text)
    if stamp is None:
        raise SystemExit("the Karpenter price file has no '// generated at <time> for <regions>' header")
    body = text[text.index("InitialOnDemandPricesAWS") :]
    regions: dict[str, dict[str, float]] = {}
    for match in re.finditer(r'^\t"([a-z0-9-]+)": \{\n(.*?)^\t\},', body, re.S | re.M):
        prices = {t: float(p) for t, p in re.findall(r'"([a-z0-9-]+\.[a-z0-9-]+)": ([0-9.]+)', match.group(2))}
        regions[match.group(1)] = prices
    if not regions:
        raise SystemExit("no region maps found in the Karpenter price file")
    return stamp.group(1), regions


def parse_cortex(text: str) -> dict[str, dict[str, float]]:
    """region -> type -> USD/hour of Cortex's InstanceMetadatas."""
    body = text[text.index("var InstanceMetadatas") :]
    body = body[: body.index("\n}\n")]
    out: dict[str, dict[str, float]] = {}
    for region, type_, price in re.findall(r'\{Region: "([a-z0-9-]+)", Type: "([a-z0-9.-]+)",.*?Price: ([0-9.]+)\}', body):
        out.setdefault(region, {})[type_] = float(price)
    return out


def family(instance_type: str) -> str:
    return instance_type.split(".")[0]


def build(table: dict[str, Any], karpenter: dict[str, dict[str, float]], cortex: dict[str, dict[str, float]],
          known_types: list[str]) -> dict[str, Any]:
    """The new table: each region's instances and instance_sources regenerated, ``unpriced`` listed."""
    out = json.loads(json.dumps(table))
    for region, data in out["regions"].items():
        old_sources: dict[str, str] = data["instance_sources"]
        vantage = {t: p for t, p in data["instances"].items() if old_sources.get(family(t)) == "vantage"}
        by_source = {"karpenter": karpenter.get(region, {}), "vantage": vantage, "cortex": cortex.get(region, {})}
        families = sorted({family(t) for prices in by_source.values() for t in prices})
        instances: dict[str, float] = {}
        sources: dict[str, str] = {}
        for fam in families:
            for name in ("karpenter", "vantage", "cortex"):
                chosen = {t: p for t, p in by_source[name].items() if family(t) == fam}
                if chosen:
                    instances.update(chosen)
                    sources[fam] = name
                    break
        data["instances"] = dict(sorted(instances.items()))
        data["instance_sources"] = dict(sorted(sources.items()))
        data["unpriced"] = sorted(t for t in known_types if t not in instances)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--karpenter-git", type=Path, default=Path("/work/.mirror/aws+karpenter-provider-aws/repo"))
    parser.add_argument("--cortex-git", type=Path, default=Path("/work/.mirror/cortexlabs+cortex/repo"))
    args = parser.parse_args()
    stamp, karpenter = parse_karpenter(git_show(args.karpenter_git, KARPENTER["commit"], KARPENTER["path"]))
    cortex = parse_cortex(git_show(args.cortex_git, CORTEX["commit"], CORTEX["path"]))
    table = json.loads(PRICES.read_text())
    known = sorted(json.loads(INSTANCE_TYPES.read_text())["types"])
    new = build(table, karpenter, cortex, known)
    regions = ", ".join(sorted(karpenter))
    new["sources"]["karpenter"] = (
        f"{KARPENTER['repo']}, {KARPENTER['path']} at commit {KARPENTER['commit']}: initial on-demand prices from the "
        f"AWS Pricing API, generated at {stamp} for {regions}; every family it lists in those regions"
    )
    new["source_dates"]["karpenter"] = stamp[:10]
    new["generated_by"] = "scripts/gen_prices.py (instances); the rest of the file is kept as it was"
    new["coverage"] = {
        region: {"priced": len(data["instances"]), "of_known_types": len(known),
                 "known_types_unpriced": len(data["unpriced"])}
        for region, data in new["regions"].items()
    }
    PRICES.write_text(json.dumps(new, indent=2, sort_keys=False) + "\n")
    for region, c in new["coverage"].items():
        print(f"{region}: {c['of_known_types'] - c['known_types_unpriced']} of {c['of_known_types']} known types priced")


if __name__ == "__main__":
    main()
