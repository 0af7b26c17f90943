-- Standard resumable-upload protocols (tus 1.0, the IETF draft) and the tickets that authorize them.

-- Upload-Metadata keys other than the file name, kept with the video (JSON object of strings).
ALTER TABLE video ADD COLUMN metadata TEXT NULL COMMENT 'JSON: client metadata (tus Upload-Metadata)';

-- One row per protocol upload, beside its upload row (partial uploads have no video: video_id 0).
CREATE TABLE IF NOT EXISTS resumable_upload (
  upload_pk      BIGINT UNSIGNED NOT NULL COMMENT 'upload.id',
  protocol       VARCHAR(8)      NOT NULL COMMENT 'tus or ietf',
  upload_length  BIGINT          NULL COMMENT 'declared total size, NULL while deferred',
  upload_offset  BIGINT          NOT NULL DEFAULT 0 COMMENT 'bytes durably received (parts and tail)',
  tail_size      INT             NOT NULL DEFAULT 0 COMMENT 'bytes held in the tail object, not yet in a part',
  tail_part      INT             NOT NULL DEFAULT 0 COMMENT 'the claim number in the tail object key',
  next_part      INT             NOT NULL DEFAULT 1 COMMENT 'the next part number a writer may claim',
  md5_state      VARBINARY(255)  NULL COMMENT 'MD5 context over bytes [0, upload_offset)',
  concat         VARCHAR(8)      NULL COMMENT 'partial or final',
  concat_parts   TEXT            NULL COMMENT 'final: the partial upload ids, in order',
  metadata       TEXT            NULL COMMENT 'Upload-Metadata as received',
  ticket_hash    CHAR(64)        NULL COMMENT 'SHA-256 of the ticket that created it, NULL for a signed call',
  writer         CHAR(32)        NULL COMMENT 'the request holding the write lease',
  writer_until   BIGINT          NULL COMMENT 'lease end, unix ms',
  PRIMARY KEY (upload_pk)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;

CREATE TABLE IF NOT EXISTS upload_ticket (
  ticket_hash   CHAR(64)        NOT NULL COMMENT 'SHA-256 of the ticket',
  app_id        BIGINT UNSIGNED NOT NULL,
  max_size      BIGINT          NOT NULL,
  auto_transcode TINYINT(1)     NOT NULL DEFAULT 0,
  task_priority INT             NOT NULL DEFAULT 0,
  uses          INT             NOT NULL,
  used          INT             NOT NULL DEFAULT 0,
  expires_at    BIGINT          NOT NULL,
  create_time   BIGINT          NOT NULL,
  PRIMARY KEY (ticket_hash),
  KEY ix_ticket_expiry (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
