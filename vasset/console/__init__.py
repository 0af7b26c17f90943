"""The operator console: a login-protected page to upload, watch and play videos."""
