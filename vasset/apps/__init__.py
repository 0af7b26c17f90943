"""Apps: the owners of videos and holders of signing keys."""
