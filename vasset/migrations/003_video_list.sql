-- GET /video/list: an app's top-level videos, newest first, paged by id.

ALTER TABLE video ADD KEY ix_video_list (app_id, parent_id, id);
