"""Pure functions that turn specs into deployable artefacts (manifests, configs, policies)."""
