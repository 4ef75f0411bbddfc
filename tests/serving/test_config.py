"""RuntimeConfig from CORTEX_* variables: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

import pytest

from cortex_iac.serving.config import RuntimeConfig, RuntimeConfigError


def test_defaults_need_only_the_handler_path() -> None:
    config = RuntimeConfig.from_env({"CORTEX_HANDLER_PATH": "/app/handler.py", "UNRELATED": "x"})
    assert config == RuntimeConfig(handler_path="/app/handler.py")
    assert (config.port, config.threads_per_process, config.max_batch_size, config.batch_interval) == (8080, 1, 1, None)
    assert (config.max_body_bytes, config.grace_period, config.packages_dir) == (10485760, 30.0, "/tmp/cortex/python")


def test_every_variable_round_trips_through_to_env() -> None:
    config = RuntimeConfig(
        handler_path="h.py", handler_config={"k": [1, 2]}, threads_per_process=4, max_batch_size=8,
        batch_interval=0.01, host="127.0.0.1", port=9000, max_body_bytes=1024, grace_period=12.5,
        python_requirements=("scikit-learn==1.9.1",), packages_dir="/tmp/p", log_level="debug",
        on_job_complete=True,
    )
    assert RuntimeConfig.from_env(config.to_env()) == config
    assert config.to_env()["CORTEX_HANDLER_CONFIG"] == '{"k": [1, 2]}'
    assert config.to_env()["CORTEX_ON_JOB_COMPLETE"] == "true"
    # Off is the default and is not written (a RealtimeAPI's pod keeps the variables it had).
    assert "CORTEX_ON_JOB_COMPLETE" not in RuntimeConfig(handler_path="h.py").to_env()


def test_empty_variables_fall_back_to_defaults() -> None:
    assert RuntimeConfig.from_env({"CORTEX_HANDLER_PATH": "h.py", "CORTEX_BATCH_INTERVAL": ""}).batch_interval is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CORTEX_HANDLER_PATH is not set: name the file that defines class Handler"),
        ({"CORTEX_PORT": "http"}, "Config 'CORTEX_PORT' has value 'http'. Not a valid int."),
        ({"CORTEX_GRACE_PERIOD": "30s"}, "Config 'CORTEX_GRACE_PERIOD' has value '30s'. Not a valid number of seconds."),
        ({"CORTEX_HANDLER_CONFIG": "[1]"}, "Config 'CORTEX_HANDLER_CONFIG' has value '[1]'. Not a JSON object."),
        ({"CORTEX_HANDLER_CONFIG": "{a"}, ("Config 'CORTEX_HANDLER_CONFIG' has value '{a'. Not valid JSON: "
                                            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1).")),
        ({"CORTEX_PYTHON_REQUIREMENTS": '"numpy"'},
         "Config 'CORTEX_PYTHON_REQUIREMENTS' has value '\"numpy\"'. Not a JSON list of strings."),
        ({"CORTEX_THREADS_PER_PROCESS": "0"},
         "threads_per_process: 0 is not allowed (must be >= 1) (from CORTEX_* environment variables)"),
        ({"CORTEX_BATCH_INTERVAL": "-1"},
         "batch_interval: -1.0 is not allowed (must be > 0 seconds, or unset) (from CORTEX_* environment variables)"),
        ({"CORTEX_ON_JOB_COMPLETE": "yes"}, "Config 'CORTEX_ON_JOB_COMPLETE' has value 'yes'. Must be true or false."),
        ({"CORTEX_LOG_LEVEL": "loud"},
         ("log_level: 'loud' is not allowed (must be one of debug, info, warning, error) "
          "(from CORTEX_* environment variables)")),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    if env:
        env = {"CORTEX_HANDLER_PATH": "h.py", **env}
    with pytest.raises(RuntimeConfigError) as error:
        RuntimeConfig.from_env(env)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_batch_size", 0, "max_batch_size: 0 is not allowed (must be >= 1)"),
        ("port", 70000, "port: 70000 is not allowed (must be 0..65535)"),
        ("max_body_bytes", 0, "max_body_bytes: 0 is not allowed (must be >= 1)"),
        ("grace_period", 0, "grace_period: 0 is not allowed (must be > 0 seconds)"),
    ],
)
def test_bad_fields(field: str, value: object, message: str) -> None:
    with pytest.raises(RuntimeConfigError) as error:
        RuntimeConfig(handler_path="h.py", **{field: value})  # type: ignore[arg-type]
    assert str(error.value) == message
