//! The inbound side's tables.
//!
//! - `sync_sources`: one row per source (the inbound counterpart of a syncer), holding what every
//!   worker process shares about it: the cursor and the source's own state, saved with the
//!   records they cover; the lease that makes one worker at a time fetch it; a full run in
//!   progress; Run now and Full run requests; and the last run's outcome and counts.
//! - `sync_inbound`: one row per (source, remote id) ever applied or quarantined: the digest of
//!   the last version applied (a re-read of the same version is skipped), the payload (kept for
//!   a quarantined record's retries, and as the base an echo is recognised by), the error and
//!   backoff of a quarantined record, and the last full run that listed it (a full run that
//!   completes finds the records that vanished from the remote without a tombstone).

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261203_000009_inbound_sources"
    }
}

fn counter(column: SyncSources) -> ColumnDef {
    ColumnDef::new(column)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncSources::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncSources::Source)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SyncSources::NextCursor).text().null())
                    .col(ColumnDef::new(SyncSources::State).text().null())
                    .col(ColumnDef::new(SyncSources::FullRun).big_integer().null())
                    .col(
                        ColumnDef::new(SyncSources::FullRequested)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(SyncSources::LeaseOwner)
                            .string_len(200)
                            .null(),
                    )
                    .col(ColumnDef::new(SyncSources::LeaseUntil).big_integer().null())
                    .col(counter(SyncSources::NextRunAt))
                    .col(ColumnDef::new(SyncSources::LastRunAt).big_integer().null())
                    .col(
                        ColumnDef::new(SyncSources::LastSuccessAt)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(SyncSources::LastError).text().null())
                    .col(counter(SyncSources::LastFetched))
                    .col(counter(SyncSources::LastApplied))
                    .col(counter(SyncSources::LastSkipped))
                    .col(counter(SyncSources::LastQuarantined))
                    .col(counter(SyncSources::LastDeleted))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SyncInbound::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncInbound::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncInbound::Source)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncInbound::RemoteId)
                            .string_len(255)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncInbound::Digest)
                            .string_len(64)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncInbound::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(SyncInbound::Deleted)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(SyncInbound::ModifiedAt).big_integer().null())
                    .col(ColumnDef::new(SyncInbound::Payload).text().null())
                    .col(ColumnDef::new(SyncInbound::Error).text().null())
                    .col(
                        ColumnDef::new(SyncInbound::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncInbound::NextRetryAt)
                            .big_integer()
                            .null(),
                    )
                    .col(ColumnDef::new(SyncInbound::SeenRun).big_integer().null())
                    .col(
                        ColumnDef::new(SyncInbound::UpdatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_sync_inbound_source_remote_id")
                    .table(SyncInbound::Table)
                    .col(SyncInbound::Source)
                    .col(SyncInbound::RemoteId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // State first: a page's lookup by source and remote ids must find only the unique
        // index above leading with the source (before statistics exist, PostgreSQL would
        // otherwise pick this one and filter every record of the source).
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_inbound_quarantine")
                    .table(SyncInbound::Table)
                    .col(SyncInbound::State)
                    .col(SyncInbound::Source)
                    .col(SyncInbound::NextRetryAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SyncInbound::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(
                Table::drop()
                    .table(SyncSources::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SyncSources {
    Table,
    Source,
    NextCursor,
    State,
    FullRun,
    FullRequested,
    LeaseOwner,
    LeaseUntil,
    NextRunAt,
    LastRunAt,
    LastSuccessAt,
    LastError,
    LastFetched,
    LastApplied,
    LastSkipped,
    LastQuarantined,
    LastDeleted,
}

#[derive(DeriveIden)]
enum SyncInbound {
    Table,
    Id,
    Source,
    RemoteId,
    Digest,
    State,
    Deleted,
    ModifiedAt,
    Payload,
    Error,
    Attempts,
    NextRetryAt,
    SeenRun,
    UpdatedAt,
}
