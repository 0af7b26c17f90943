"""Object storage backends behind one BlobStore interface."""
