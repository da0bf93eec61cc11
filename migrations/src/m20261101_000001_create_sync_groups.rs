//! `sync_groups`: one row per (syncer, root key). It is the queue; there is no other job table.
//!
//! Times are milliseconds since the Unix epoch (UTC) in `BIGINT` columns: they compare the same on
//! every backend, and leases and retry times need no time-zone handling.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261101_000001_create_sync_groups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncGroups::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncGroups::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::Syncer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::RootKey)
                            .string_len(191)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::SyncedVersion)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ColumnDef::new(SyncGroups::State).string_len(16).not_null())
                    .col(
                        ColumnDef::new(SyncGroups::RootDeleted)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(SyncGroups::RemoteId).string_len(255).null())
                    .col(ColumnDef::new(SyncGroups::LastDigest).string_len(64).null())
                    .col(ColumnDef::new(SyncGroups::LastPayload).text().null())
                    .col(
                        ColumnDef::new(SyncGroups::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::Deferrals)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(
                        ColumnDef::new(SyncGroups::NextAttemptAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncGroups::LastError).text().null())
                    .col(ColumnDef::new(SyncGroups::LeaseOwner).string_len(64).null())
                    .col(ColumnDef::new(SyncGroups::LeaseUntil).big_integer().null())
                    .col(
                        ColumnDef::new(SyncGroups::TouchedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SyncGroups::SyncedAt).big_integer().null())
                    .col(
                        ColumnDef::new(SyncGroups::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // The upsert in every touch (`ON CONFLICT (syncer, root_key)`) needs a real unique index.
        manager
            .create_index(
                Index::create()
                    .name("ux_sync_groups_syncer_root_key")
                    .table(SyncGroups::Table)
                    .col(SyncGroups::Syncer)
                    .col(SyncGroups::RootKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The claim reads `state IN ('pending', 'failed') AND next_attempt_at <= now` in
        // `next_attempt_at` order: this index serves it in O(due groups), however many groups are
        // clean (`synced`), `dead` or `deleted`. A composite index rather than a partial one
        // because MariaDB has no partial indexes.
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_groups_due")
                    .table(SyncGroups::Table)
                    .col(SyncGroups::State)
                    .col(SyncGroups::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SyncGroups::Table).to_owned())
            .await
    }
}

#[derive(DeriveIden)]
enum SyncGroups {
    Table,
    Id,
    Syncer,
    RootKey,
    Version,
    SyncedVersion,
    State,
    RootDeleted,
    RemoteId,
    LastDigest,
    LastPayload,
    Attempts,
    Deferrals,
    NextAttemptAt,
    LastError,
    LeaseOwner,
    LeaseUntil,
    TouchedAt,
    SyncedAt,
    CreatedAt,
}
