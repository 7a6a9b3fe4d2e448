//! Changelog formats: a record's value is an envelope of row changes written by a CDC tool,
//! read as Flink's `debezium-json` and `canal-json` formats read them.

use serde_json::{Map, Value};
use spate_api::RowKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Envelope {
    /// `{"before": {..}, "after": {..}, "op": "c"|"r"|"u"|"d"}`, inside `{"schema": ..,
    /// "payload": ..}` when Debezium's JSON converter writes its schema.
    Debezium { schema_include: bool },
    /// `{"data": [{..}], "old": [{..}], "type": "INSERT"|"UPDATE"|"DELETE", "isDdl": ..}`;
    /// `old` holds, for an update, the changed columns' earlier values.
    Canal,
}

/// One change: the row as a JSON object, and what it does.
pub type Change = (Vec<u8>, RowKind);

impl Envelope {
    /// The changes a record's value holds, in order; why it holds none that can be read, if
    /// so. A Debezium update is a `-U` of `before` and a `+U` of `after`, as in Flink, so
    /// `before` must be the whole row (a Postgres table needs `REPLICA IDENTITY FULL`).
    pub fn changes(&self, value: &[u8]) -> Result<Vec<Change>, String> {
        let envelope: Value =
            serde_json::from_slice(value).map_err(|e| format!("not a JSON object: {e}"))?;
        match self {
            Envelope::Debezium { schema_include } => debezium(envelope, *schema_include),
            Envelope::Canal => canal(envelope),
        }
    }
}

fn row(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value serializes")
}

fn debezium(mut envelope: Value, schema_include: bool) -> Result<Vec<Change>, String> {
    if schema_include {
        envelope = match envelope.get_mut("payload") {
            Some(payload) => payload.take(),
            None => {
                return Err("no 'payload' (debezium-json.schema-include is true: the \
                            envelope is inside the converter's {\"schema\", \"payload\"})"
                    .into());
            }
        };
    }
    let op = envelope
        .get("op")
        .and_then(Value::as_str)
        .ok_or("no 'op' (a Debezium change has one: c, r, u or d)")?;
    let side = |name: &str| match envelope.get(name) {
        Some(value @ Value::Object(_)) => Ok(row(value)),
        _ => Err(format!(
            "'{name}' is not an object, but a change with op '{op}' needs the row there"
        )),
    };
    Ok(match op {
        "c" | "r" => vec![(side("after")?, RowKind::Insert)],
        "u" => vec![
            (side("before")?, RowKind::UpdateBefore),
            (side("after")?, RowKind::UpdateAfter),
        ],
        "d" => vec![(side("before")?, RowKind::Delete)],
        other => return Err(format!("unknown op '{other}' (c, r, u or d)")),
    })
}

fn canal(envelope: Value) -> Result<Vec<Change>, String> {
    // Schema changes carry no rows.
    if envelope.get("isDdl").and_then(Value::as_bool) == Some(true) {
        return Ok(Vec::new());
    }
    let kind = envelope
        .get("type")
        .and_then(Value::as_str)
        .ok_or("no 'type' (INSERT, UPDATE or DELETE)")?;
    let data = envelope
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no 'data' array in a {kind}"))?;
    let rows = |kind: RowKind| data.iter().map(|r| (row(r), kind)).collect();
    Ok(match kind {
        "INSERT" => rows(RowKind::Insert),
        "DELETE" => rows(RowKind::Delete),
        "UPDATE" => {
            let old = envelope
                .get("old")
                .and_then(Value::as_array)
                .ok_or("no 'old' array in an UPDATE")?;
            let mut changes = Vec::with_capacity(2 * data.len());
            for (index, after) in data.iter().enumerate() {
                // The row before: the row after with the changed columns' old values.
                let mut before: Map<String, Value> = after
                    .as_object()
                    .cloned()
                    .ok_or("a row of 'data' is not an object")?;
                if let Some(changed) = old.get(index).and_then(Value::as_object) {
                    before.extend(changed.clone());
                }
                changes.push((row(&Value::Object(before)), RowKind::UpdateBefore));
                changes.push((row(after), RowKind::UpdateAfter));
            }
            changes
        }
        other => return Err(format!("unknown type '{other}' (INSERT, UPDATE or DELETE)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(envelope: Envelope, value: &str) -> Vec<(String, &'static str)> {
        envelope
            .changes(value.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|(row, kind)| (String::from_utf8(row).unwrap(), kind.short_string()))
            .collect()
    }

    #[test]
    fn debezium_changes_are_read_as_flink_reads_them() {
        let debezium = Envelope::Debezium {
            schema_include: false,
        };
        let update = r#"{"before": {"id": 1, "w": 5.1}, "after": {"id": 1, "w": 5.2}, "op": "u"}"#;
        assert_eq!(
            read(debezium, update),
            [
                (r#"{"id":1,"w":5.1}"#.to_string(), "-U"),
                (r#"{"id":1,"w":5.2}"#.to_string(), "+U")
            ]
        );
        let snapshot = r#"{"before": null, "after": {"id": 2}, "op": "r"}"#;
        assert_eq!(
            read(debezium, snapshot),
            [(r#"{"id":2}"#.to_string(), "+I")]
        );
        let delete = r#"{"before": {"id": 2}, "after": null, "op": "d"}"#;
        assert_eq!(read(debezium, delete), [(r#"{"id":2}"#.to_string(), "-D")]);
        let wrapped = format!(r#"{{"schema": {{}}, "payload": {delete}}}"#);
        let with_schema = Envelope::Debezium {
            schema_include: true,
        };
        assert_eq!(
            read(with_schema, &wrapped),
            [(r#"{"id":2}"#.to_string(), "-D")]
        );

        let error = |value: &str| debezium.changes(value.as_bytes()).unwrap_err();
        assert!(error(r#"{"before": null, "after": {"id": 1}, "op": "u"}"#).contains("'before'"));
        assert!(error(r#"{"after": {"id": 1}, "op": "x"}"#).contains("unknown op 'x'"));
        assert!(error("[1, 2").contains("not a JSON object"));
        assert!(
            with_schema
                .changes(update.as_bytes())
                .unwrap_err()
                .contains("payload")
        );
    }

    #[test]
    fn canal_updates_take_the_old_values_of_the_changed_columns() {
        // Flink's canal-json documentation's example, shortened.
        let update = r#"{"data": [{"id": "111", "name": "scooter", "weight": "5.18"}],
            "database": "inventory", "isDdl": false,
            "old": [{"weight": "5.15"}], "table": "products", "type": "UPDATE"}"#;
        assert_eq!(
            read(Envelope::Canal, update),
            [
                (
                    r#"{"id":"111","name":"scooter","weight":"5.15"}"#.to_string(),
                    "-U"
                ),
                (
                    r#"{"id":"111","name":"scooter","weight":"5.18"}"#.to_string(),
                    "+U"
                )
            ]
        );
        let insert = r#"{"data": [{"id": "1"}, {"id": "2"}], "old": null, "type": "INSERT"}"#;
        assert_eq!(
            read(Envelope::Canal, insert),
            [
                (r#"{"id":"1"}"#.to_string(), "+I"),
                (r#"{"id":"2"}"#.to_string(), "+I")
            ]
        );
        let ddl =
            r#"{"data": null, "isDdl": true, "sql": "CREATE TABLE t (id INT)", "type": "CREATE"}"#;
        assert!(read(Envelope::Canal, ddl).is_empty());
        let error = Envelope::Canal
            .changes(br#"{"data": [], "type": "ALTER"}"#)
            .unwrap_err();
        assert!(error.contains("unknown type 'ALTER'"), "{error}");
    }
}
