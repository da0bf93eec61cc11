//! References between groups: which remote ids a group's last recorded push carried.
//!
//! A translation that reads another group's remote id (`TranslateContext::remote_id_of`: a sales
//! order carrying its customer's ERP id) records it here with the push, one row per (referenced
//! group, referring group), so that when the referenced group gets another remote id (created
//! again after an archive and a restore, or after the remote lost it) the referring groups are
//! touched and push the new one.
//!
//! - `sync_references`: keyed by the referenced group (`target_syncer`, `target_key`) and the
//!   referring group's id, with the referring group's syncer and root key (what a touch names)
//!   and the remote id its push carried. An index on `referrer_id` finds a group's own rows.
//! - `sync_groups.references_digest`: the digest of the references stored for the group
//!   (`NULL`: none), read with the claim, so that a push carrying the same references writes
//!   nothing.
//! - `sync_groups.remote_id_forgotten`: the group had a remote id that other groups may carry,
//!   and has none now (forgotten, or its record deleted). The completion that gives it its next
//!   remote id looks for groups carrying another one; a first create never looks.

use sea_orm_migration::prelude::*;

pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "sync_core::m20261204_000013_sync_references"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SyncReferences::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SyncReferences::TargetSyncer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncReferences::TargetKey)
                            .string_len(191)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncReferences::ReferrerId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncReferences::ReferrerSyncer)
                            .string_len(100)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncReferences::ReferrerKey)
                            .string_len(191)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SyncReferences::RemoteId)
                            .string_len(255)
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SyncReferences::TargetSyncer)
                            .col(SyncReferences::TargetKey)
                            .col(SyncReferences::ReferrerId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sync_references_referrer")
                    .table(SyncReferences::Table)
                    .col(SyncReferences::ReferrerId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite adds one at a time.
        let columns = [
            ColumnDef::new(SyncGroups::ReferencesDigest)
                .string_len(64)
                .null()
                .to_owned(),
            ColumnDef::new(SyncGroups::RemoteIdForgotten)
                .boolean()
                .not_null()
                .default(false)
                .to_owned(),
        ];
        for mut column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncGroups::Table)
                        .add_column(&mut column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [SyncGroups::ReferencesDigest, SyncGroups::RemoteIdForgotten] {
            manager
                .alter_table(
                    Table::alter()
                        .table(SyncGroups::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(
                Table::drop()
                    .table(SyncReferences::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

#[derive(DeriveIden)]
enum SyncReferences {
    Table,
    TargetSyncer,
    TargetKey,
    ReferrerId,
    ReferrerSyncer,
    ReferrerKey,
    RemoteId,
}

#[derive(DeriveIden)]
enum SyncGroups {
    Table,
    ReferencesDigest,
    RemoteIdForgotten,
}
