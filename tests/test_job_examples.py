"""The job API examples: their API files validate and render valid objects, the batch handler sums
and refuses what is not a list of numbers, and the trainer task writes a working model to S3 (a
real moto server on 127.0.0.1)."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from cortex_iac.render.jobs import render_job_api
from cortex_iac.specs import BatchApiSpec, TaskApiSpec, load_apis
from cortex_iac.specs.deployment import check_deployment
from tests.kube import validate_all

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/cortex-serving:0.1.0"


def _module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("directory", "model"), [("batch-sum", BatchApiSpec), ("task-iris-trainer", TaskApiSpec)])
def test_example_api_files_validate_and_render(directory: str, model: type) -> None:
    (spec,) = load_apis(EXAMPLES / directory / "api.yaml")
    assert isinstance(spec, model)
    check_deployment(None, [spec], runtime_image=IMAGE)
    objects = render_job_api(spec, runtime_image=IMAGE)  # type: ignore[arg-type]
    assert validate_all(objects) == len(objects) >= 11


def test_batch_sum_handler() -> None:
    handler = _module(EXAMPLES / "batch-sum" / "handler.py").Handler({})
    assert handler.handle_post([1, 2, 3, 4, 5, 6, 7]) == {"sum": 28}
    assert handler.handle_post([0.5, 1]) == {"sum": 1.5}
    for bad in ({"a": 1}, [1, "2"], [True], b"1,2"):
        response = handler.handle_post(bad)
        assert response.status_code == 400 and json.loads(response.body) == {"error": "a batch must be a JSON list of numbers"}


def test_trainer_destination_comes_from_the_job_config() -> None:
    trainer = _module(EXAMPLES / "task-iris-trainer" / "main.py")
    assert trainer.destination({"job_id": "j1", "config": {"dest_s3_dir": "s3://b/iris/"}}) == ("b", "iris/j1/model.pkl")
    assert trainer.destination({"job_id": "j1", "config": {"dest_s3_dir": "s3://b"}}) == ("b", "j1/model.pkl")
    with pytest.raises(ValueError, match=r"config.dest_s3_dir: None is not an S3 path"):
        trainer.destination({"job_id": "j1", "config": {}})


def test_trainer_task_writes_a_working_model_to_s3(tmp_path: Path) -> None:
    # scikit-learn is a dev dependency (pyproject.toml), as the trainer example's own requirement.
    from tests.live.jobs_moto import moto_server

    with moto_server(tmp_path) as moto:
        moto.client("s3").create_bucket(Bucket="models")
        spec = tmp_path / "job.json"
        spec.write_text(json.dumps({"job_id": "7fffffffffffffff", "config": {"dest_s3_dir": "s3://models/iris"}}))
        env = {**os.environ, **moto.env(), "CORTEX_JOB_SPEC": str(spec)}
        done = subprocess.run([sys.executable, str(EXAMPLES / "task-iris-trainer" / "main.py")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "model written to s3://models/iris/7fffffffffffffff/model.pkl" in done.stdout
        body = moto.client("s3").get_object(Bucket="models", Key="iris/7fffffffffffffff/model.pkl")["Body"].read()
    model = pickle.loads(body)  # written by this test's own subprocess
    assert list(model.predict([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]])) == [0, 2]
    # A missing destination fails the task (worker_error), with the reason on stderr.
    spec.write_text(json.dumps({"job_id": "j", "config": {}}))
    failed = subprocess.run([sys.executable, str(EXAMPLES / "task-iris-trainer" / "main.py")],
                            env={**os.environ, "CORTEX_JOB_SPEC": str(spec)}, capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1 and "config.dest_s3_dir" in failed.stderr
