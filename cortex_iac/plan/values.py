"""The markers a plan file uses for values it cannot show, in a module of their own so that reading
plans (``cortex diff``, ``cortex cost``) does not import the Pulumi SDK the recording engine needs."""

UNKNOWN = "$unknown"
SECRET = "$secret"
