"""Keys the back office keeps in a user's session, named here so any layer may read them."""

# The slug of the environment the session works in (set and read by `console.environments`).
ENVIRONMENT_SESSION_KEY = "billflow_environment"
