"""HTTP plumbing shared by every route: body streaming, parameters, responses."""
