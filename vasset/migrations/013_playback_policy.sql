-- Playback policy per video: signed (expiring signed URLs, the default) or public (stable URLs
-- under /pub/{public_token}/ that a CDN may cache). Going back to signed clears the token, and
-- going public again draws a new one, so old public URLs stop working.

ALTER TABLE video ADD COLUMN playback_policy VARCHAR(16) NOT NULL DEFAULT 'signed' COMMENT 'signed or public';
ALTER TABLE video ADD COLUMN public_token CHAR(32) NULL COMMENT 'path token of public URLs (NULL: signed)';
ALTER TABLE upload_ticket ADD COLUMN playback_policy VARCHAR(16) NULL COMMENT 'policy of the videos it creates (NULL: signed)';
