"""HTTP plumbing shared by the three services: problem responses, input
validation, observability endpoints and the app factory."""
