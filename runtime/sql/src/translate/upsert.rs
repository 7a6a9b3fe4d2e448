//! Tables keyed by a `PRIMARY KEY` whose connector reads or writes upserts (upsert-kafka, and
//! print or blackhole with a key). Read, an upsert changelog says only what each key's row is
//! now, so it is hashed by the key into a changelog normalize (Flink's `ChangelogNormalize`)
//! that makes it a retract changelog every operator can consume. Written, a retract changelog
//! becomes upserts (`spate_operators::upsert_changes`: no update-before rows) and is hashed by
//! the key, so every change of a key reaches one sink subtask in order.
//!
//! As in Flink without its upsert materializer, the key is taken to be the query's: if two
//! rows of the query's result share a key, which of them the sink keeps is not defined.

use std::sync::Arc;

use arrow_schema::SchemaRef;
use spate_api::{ChangelogMode, OperatorContext, changelog_schema, upsert_schema};
use spate_graph::{NodeId, Partitioning};
use spate_operators::changelog_normalize::ChangelogNormalize;
use spate_operators::keyed::KeyedProcessOperator;
use spate_operators::upsert_changes::UpsertChanges;

use super::Translator;
use crate::ddl::TableDef;

impl Translator<'_> {
    /// The retract changelog of an upsert source's node `source` keyed by `key`: the
    /// normalize's node.
    pub(super) fn normalize_upserts(
        &mut self,
        source: NodeId,
        def: &TableDef,
        key: &[String],
    ) -> NodeId {
        // Upserts' deletes carry only their key, the normalized deletes the whole row.
        let upserts = upsert_schema(&def.physical, key);
        let make = {
            let (key, upserts, data) = (key.to_vec(), upserts.clone(), def.physical.clone());
            move |_: &OperatorContext| -> spate_api::Result<Box<dyn spate_api::Operator>> {
                Ok(Box::new(KeyedProcessOperator::new(
                    ChangelogNormalize::new(&data)?,
                    key.clone(),
                    upserts.clone(),
                )?))
            }
        };
        let node = self.graph.add_operator(
            format!("changelog normalize: {}", def.name),
            self.parallelism,
            Arc::new(make),
            upserts,
            changelog_schema(&def.physical),
        );
        self.graph.nodes[node].changelog = ChangelogMode::Retract;
        self.graph
            .connect(source, node, Partitioning::Hash(key.to_vec()));
        node
    }

    /// What an upsert sink keyed by `key` is fed from `shaped` (the sink's columns, with row
    /// kinds if `changelog` is one): the node to hash by the key into the sink, and the mode
    /// of its output.
    pub(super) fn upserts_into_sink(
        &mut self,
        shaped: NodeId,
        changelog: &ChangelogMode,
        schema: SchemaRef,
        parallelism: u32,
        key: &[String],
    ) -> (NodeId, ChangelogMode) {
        if changelog.is_append_only() {
            return (shaped, ChangelogMode::AppendOnly);
        }
        let upserts = ChangelogMode::Upsert { key: key.to_vec() };
        let make = {
            let (schema, key) = (schema.clone(), key.to_vec());
            move |_: &OperatorContext| -> spate_api::Result<Box<dyn spate_api::Operator>> {
                Ok(Box::new(UpsertChanges::new(&schema, &key)?))
            }
        };
        let node = self.graph.add_operator(
            "upsert changes",
            parallelism,
            Arc::new(make),
            schema.clone(),
            schema,
        );
        self.graph.nodes[node].changelog = upserts.clone();
        self.graph.connect(shaped, node, Partitioning::Forward);
        (node, upserts)
    }
}
