-- Retention (the quick-download mode): a video may carry the time the janitor deletes it at,
-- set from a ttl on creation or from its app's default; tickets hand their ttl to their uploads.

ALTER TABLE video ADD COLUMN delete_at BIGINT NULL COMMENT 'unix seconds the janitor deletes it at (NULL: kept)';
-- The janitor asks for live videos past their deadline: deleted rows stay out of the range.
CREATE INDEX ix_video_retention ON video (deleted_at, delete_at);
ALTER TABLE app ADD COLUMN default_ttl INT NULL COMMENT 'seconds new videos of the app live (NULL: kept)';
ALTER TABLE upload_ticket ADD COLUMN ttl INT NULL COMMENT 'seconds the videos it creates live (NULL: the app default)';
