//! Writing through the sink and reading back through the source, as a job would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{
    ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch,
    StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use spate_api::{
    Operator, OperatorContext, OperatorFactory, Output, SourceFactory, SourcePoll,
    default_max_parallelism,
};

use super::Filesystem;
use crate::{Connector, ConnectorError, TableContext, TableOptions};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Int32, true),
        Field::new("price", DataType::Float64, true),
        Field::new("ok", DataType::Boolean, true),
        Field::new("name", DataType::Utf8, true),
        Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        Field::new("day", DataType::Date32, true),
    ]))
}

/// Every type, NULL in every nullable column, and strings that need quoting and escaping.
fn rows(first_id: i64) -> RecordBatch {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![first_id, first_id + 1, first_id + 2])),
        Arc::new(Int32Array::from(vec![Some(-7), None, Some(i32::MAX)])),
        Arc::new(Float64Array::from(vec![Some(0.1), None, Some(-1.5e300)])),
        Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
        Arc::new(StringArray::from(vec![
            Some("plain"),
            None,
            Some("a, \"quoted\"; {\"json\": 1}\nsecond line"),
        ])),
        Arc::new(TimestampMillisecondArray::from(vec![
            Some(1_704_164_645_678),
            None,
            Some(-1),
        ])),
        Arc::new(Date32Array::from(vec![Some(19_724), None, Some(0)])),
    ];
    RecordBatch::try_new(schema(), columns).unwrap()
}

fn options(path: &Path, format: &str, extra: &[(&str, &str)]) -> TableOptions {
    let mut values = BTreeMap::from([
        ("connector".to_string(), "filesystem".to_string()),
        ("path".to_string(), path.display().to_string()),
        ("format".to_string(), format.to_string()),
    ]);
    values.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    TableOptions::new("t", values)
}

fn context(subtask: u32, parallelism: u32) -> OperatorContext {
    OperatorContext {
        subtask,
        parallelism,
        max_parallelism: default_max_parallelism(parallelism),
        ..OperatorContext::single("fs")
    }
}

/// Subtask `i` of `parallelism` writes `batches[i]`; returns the sinks, not yet finished.
fn write(
    path: &Path,
    format: &str,
    extra: &[(&str, &str)],
    batches: Vec<RecordBatch>,
) -> Vec<Box<dyn Operator>> {
    let mut options = options(path, format, extra);
    let factory = Filesystem
        .sink(TableContext {
            table: "t",
            schema: batches[0].schema(),
            options: &mut options,
            primary_key: &[],
        })
        .unwrap();
    let parallelism = batches.len() as u32;
    batches
        .into_iter()
        .enumerate()
        .map(|(subtask, batch)| {
            let ctx = context(subtask as u32, parallelism);
            let mut sink = factory.create(&ctx).unwrap();
            sink.open(&ctx).unwrap();
            sink.process_batch(batch, &mut Output::default()).unwrap();
            sink
        })
        .collect()
}

/// The sink of a table of the declared `schema()`, writing `format` under `path`.
fn sink_factory(path: &Path, format: &str) -> Arc<dyn OperatorFactory> {
    let mut options = options(path, format, &[]);
    Filesystem
        .sink(TableContext {
            table: "t",
            schema: schema(),
            options: &mut options,
            primary_key: &[],
        })
        .unwrap()
}

/// One opened sink subtask of the table's declared `schema()`, writing `format` under `path`.
fn open_sink(path: &Path, format: &str) -> Box<dyn Operator> {
    let ctx = context(0, 1);
    let mut sink = sink_factory(path, format).create(&ctx).unwrap();
    sink.open(&ctx).unwrap();
    sink
}

fn finish(sinks: Vec<Box<dyn Operator>>) {
    for mut sink in sinks {
        sink.finish(&mut Output::default()).unwrap();
    }
}

fn source(
    path: &Path,
    format: &str,
    extra: &[(&str, &str)],
    schema: SchemaRef,
) -> Result<Arc<dyn SourceFactory>, ConnectorError> {
    let mut options = options(path, format, extra);
    Filesystem.source(TableContext {
        table: "t",
        schema,
        options: &mut options,
        primary_key: &[],
    })
}

/// Reads all splits with `parallelism` readers, assigning splits as the worker does.
fn read(source: &dyn SourceFactory, parallelism: u32) -> spate_api::Result<Vec<RecordBatch>> {
    let splits = source.splits(parallelism);
    let mut batches = Vec::new();
    for subtask in 0..parallelism {
        let mine = splits
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u32 % parallelism == subtask)
            .map(|(_, split)| split.clone())
            .collect();
        let mut reader = source.create_reader(mine, &context(subtask, parallelism))?;
        loop {
            match reader.poll_next()? {
                SourcePoll::Batch(batch) => batches.push(batch),
                SourcePoll::Idle => {}
                SourcePoll::End => break,
            }
        }
    }
    Ok(batches)
}

fn read_all(path: &Path, format: &str, extra: &[(&str, &str)]) -> spate_api::Result<RecordBatch> {
    let source = source(path, format, extra, schema()).unwrap();
    let batches = read(source.as_ref(), 1)?;
    Ok(arrow_select::concat::concat_batches(&schema(), &batches)?)
}

#[test]
fn csv_round_trip_keeps_every_type_and_null() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(dir.path(), "csv", &[], vec![rows(1)]));
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap(), rows(1));
}

#[test]
fn json_round_trip_keeps_every_type_and_null() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(dir.path(), "json", &[], vec![rows(1)]));
    assert_eq!(read_all(dir.path(), "json", &[]).unwrap(), rows(1));
}

#[test]
fn round_trip_with_another_delimiter() {
    let dir = tempfile::tempdir().unwrap();
    let tab = [("csv.field-delimiter", "\\t")];
    finish(write(dir.path(), "csv", &tab, vec![rows(1)]));
    let text = std::fs::read_to_string(committed(dir.path(), 0, "csv")).unwrap();
    assert!(text.starts_with("1\t-7\t0.1\ttrue\tplain\t"), "{text}");
    assert_eq!(read_all(dir.path(), "csv", &tab).unwrap(), rows(1));
}

#[test]
fn files_are_written_in_flinks_text_forms() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(dir.path(), "csv", &[], vec![rows(1)]));
    finish(write(&dir.path().join("json"), "json", &[], vec![rows(1)]));
    let csv = std::fs::read_to_string(committed(dir.path(), 0, "csv")).unwrap();
    assert_eq!(
        csv,
        "1,-7,0.1,true,plain,2024-01-02 03:04:05.678,2024-01-02\n\
         2,,,,,,\n\
         3,2147483647,-1.5e300,false,\"a, \"\"quoted\"\"; {\"\"json\"\": 1}\nsecond line\",\
         1969-12-31 23:59:59.999,1970-01-01\n"
    );
    let json = std::fs::read_to_string(committed(&dir.path().join("json"), 0, "json")).unwrap();
    let second = json.lines().nth(1).unwrap();
    assert_eq!(
        second,
        "{\"id\":2,\"n\":null,\"price\":null,\"ok\":null,\"name\":null,\"ts\":null,\"day\":null}"
    );
    assert!(
        json.contains("\"ts\":\"2024-01-02 03:04:05.678\""),
        "{json}"
    );
}

#[test]
fn several_subtasks_write_part_files_read_back_as_splits() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(
        dir.path(),
        "json",
        &[],
        vec![rows(1), rows(10), rows(20)],
    ));
    for subtask in 0..3 {
        committed(dir.path(), subtask, "json");
    }
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names.len(), 3);

    let source = source(dir.path(), "json", &[], schema()).unwrap();
    let splits: Vec<String> = source.splits(2).into_iter().map(|s| s.id).collect();
    let expected: Vec<String> = names
        .iter()
        .map(|n| dir.path().join(n).display().to_string())
        .collect();
    assert_eq!(splits, expected);

    let mut ids: Vec<i64> = read(source.as_ref(), 2)
        .unwrap()
        .iter()
        .flat_map(|b| {
            let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
            ids.values().to_vec()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3, 10, 11, 12, 20, 21, 22]);
}

#[test]
fn unfinished_and_hidden_files_are_invisible() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = write(dir.path(), "csv", &[], vec![rows(1)]);
    std::fs::write(dir.path().join("_SUCCESS"), "").unwrap();
    std::fs::write(dir.path().join(".notes"), "not,csv").unwrap();
    let entries: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        entries
            .iter()
            .any(|n| n.starts_with(".part-") && n.ends_with(".inprogress")),
        "{entries:?}"
    );
    let unfinished = source(dir.path(), "csv", &[], schema()).unwrap();
    assert!(unfinished.splits(1).is_empty());

    finish(sinks);
    let finished = source(dir.path(), "csv", &[], schema()).unwrap();
    assert_eq!(finished.splits(1).len(), 1);
}

#[test]
fn a_single_file_and_nested_directories_can_be_read() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(&dir.path().join("dt=1"), "csv", &[], vec![rows(1)]));
    finish(write(&dir.path().join("dt=2"), "csv", &[], vec![rows(4)]));
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap().num_rows(), 6);
    let file = committed(&dir.path().join("dt=2"), 0, "csv");
    assert_eq!(read_all(&file, "csv", &[]).unwrap(), rows(4));
}

#[test]
fn large_files_are_read_in_batches_of_at_most_4096_rows() {
    let dir = tempfile::tempdir().unwrap();
    let text: String = (0..10_000).map(|i| format!("{{\"id\":{i}}}\n\n")).collect();
    std::fs::write(dir.path().join("data.json"), text).unwrap();
    let source = source(dir.path(), "json", &[], schema()).unwrap();
    let sizes: Vec<usize> = read(source.as_ref(), 1)
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .collect();
    assert_eq!(sizes, [4096, 4096, 1808]);
}

#[test]
fn timestamps_are_read_with_or_without_t_and_fraction() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a.csv"),
        "1,,,,,2024-01-02 03:04:05.678,\n2,,,,,2024-01-02T03:04:05,\n3,,,,,2024-01-02T03:04:05.5,\n",
    )
    .unwrap();
    let batch = read_all(dir.path(), "csv", &[]).unwrap();
    let ts = batch
        .column(5)
        .as_any()
        .downcast_ref::<TimestampMillisecondArray>()
        .unwrap();
    assert_eq!(
        ts.values().to_vec(),
        [1_704_164_645_678, 1_704_164_645_000, 1_704_164_645_500]
    );
}

fn read_error(file: &str, format: &str, contents: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, contents).unwrap();
    let error = read_all(dir.path(), format, &[]).unwrap_err().to_string();
    (error, path.display().to_string())
}

#[test]
fn csv_errors_name_file_line_and_column() {
    let (error, file) = read_error("bad.csv", "csv", "1,2,,,,,\n2,x3,,,,,\n");
    assert!(
        error.contains(&format!(
            "{file}: line 2: column 'n': cannot parse 'x3' as Int32"
        )),
        "{error}"
    );

    let (error, file) = read_error("short.csv", "csv", "1,2,,,,,\n2,3\n");
    assert!(error.contains(&file) && error.contains("line 2"), "{error}");

    let (error, _) = read_error("null.csv", "csv", "1,,,,,,\n,5,,,,,\n");
    assert!(
        error.contains("line 2: column 'id': no value, but the column is NOT NULL"),
        "{error}"
    );
}

#[test]
fn an_unterminated_quote_is_refused_instead_of_swallowing_the_rows_after_it() {
    // The open quote starts the last field, so its record still has every field: without the
    // check, rows 3 and 4 would silently become part of row 2's name.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("open.csv");
    std::fs::write(&file, "1,a\n2,\"open\n3,c\n4,d\n").unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
    ]));
    let source = source(dir.path(), "csv", &[], schema).unwrap();
    let error = read(source.as_ref(), 1).unwrap_err().to_string();
    assert!(
        error.contains(&format!(
            "{}: line 2: a quoted field opens here and is never closed",
            file.display()
        )),
        "{error}"
    );
}

#[test]
fn json_errors_name_file_line_and_column() {
    let (error, file) = read_error(
        "bad.json",
        "json",
        "{\"id\":1}\n\n{\"id\":2,\"ts\":\"yesterday\"}\n",
    );
    assert!(
        error.contains(&format!(
            "{file}: line 3: column 'ts': cannot parse 'yesterday' as Timestamp(ms)"
        )),
        "{error}"
    );

    let (error, file) = read_error("broken.json", "json", "{\"id\":1}\n{\"id\":2,\n");
    assert!(error.contains(&format!("{file}: line 2: ")), "{error}");

    let (error, file) = read_error(
        "nested.json",
        "json",
        "{\"id\":1}\n{\"id\":2,\"name\":{}}\n",
    );
    assert!(
        error.contains(&format!("{file}: line 2: ")) && error.contains("name"),
        "{error}"
    );
}

#[test]
fn a_missing_path_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere");
    let error = source(&missing, "csv", &[], schema())
        .err()
        .unwrap()
        .to_string();
    assert!(
        error.contains(&format!("option 'path' = '{}'", missing.display())),
        "{error}"
    );
}

#[test]
fn options_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let error = |format: &str, extra: &[(&str, &str)]| {
        source(dir.path(), format, extra, schema())
            .err()
            .unwrap()
            .to_string()
    };
    assert!(error("csv", &[("pathh", "x")]).contains("unknown option(s) pathh"));
    // CSV options are unknown to the JSON format.
    assert!(error("json", &[("csv.field-delimiter", ";")]).contains("csv.field-delimiter"));
    assert!(error("parquet", &[]).contains("expected 'csv', 'json' or 'debezium-json'"));
    assert!(error("csv", &[("csv.field-delimiter", ";;")]).contains("single ASCII character"));

    let list = Arc::new(Schema::new(vec![Field::new(
        "l",
        DataType::new_list(DataType::Int64, true),
        true,
    )]));
    let error = source(dir.path(), "csv", &[], list)
        .err()
        .unwrap()
        .to_string();
    assert!(error.contains("column 'l'"), "{error}");
}

#[test]
fn the_sink_refuses_batches_of_other_types() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = open_sink(dir.path(), "csv");
    let other =
        RecordBatch::try_from_iter([("id", Arc::new(Int32Array::from(vec![1])) as _)]).unwrap();
    let error = sink
        .process_batch(other, &mut Output::default())
        .unwrap_err();
    assert!(error.to_string().contains("has 7 columns"), "{error}");
}

/// The one committed part file of `subtask` in `dir`: `part-<run>-<subtask>-<index>.<ext>`.
fn committed(dir: &Path, subtask: u32, extension: &str) -> PathBuf {
    let suffix = format!("-{subtask}-0.{extension}");
    let found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name.starts_with("part-") && name.ends_with(&suffix)
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one committed file of subtask {subtask}: {found:?}"
    );
    found.into_iter().next().unwrap()
}

#[test]
fn a_second_job_into_the_same_directory_keeps_the_first_ones_output() {
    let dir = tempfile::tempdir().unwrap();
    finish(write(dir.path(), "csv", &[], vec![rows(2)]));
    finish(write(dir.path(), "csv", &[], vec![rows(3)]));
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap().num_rows(), 6);
}

/// A checkpointing sink subtask `subtask` of `parallelism`, restored from `restored` if given.
fn checkpointing_sink(
    path: &Path,
    subtask: u32,
    parallelism: u32,
    restored: Option<spate_api::RestoredState>,
) -> Box<dyn Operator> {
    let factory = sink_factory(path, "csv");
    let mut ctx = context(subtask, parallelism);
    ctx.state.checkpointing = true;
    ctx.state.restored = restored;
    let mut sink = factory.create(&ctx).unwrap();
    sink.open(&ctx).unwrap();
    sink
}

#[test]
fn a_restored_subtask_commits_every_pending_file_of_its_checkpoint() {
    // Region failover: of four forward pipelines only subtask 2 restarts, from a checkpoint
    // whose completion no subtask heard of. The others keep running and never restore, so the
    // restarted one must commit all four pending files, whichever subtask each name hashes to.
    let dir = tempfile::tempdir().unwrap();
    let parallelism = 4;
    let mut entries = Vec::new();
    for subtask in 0..parallelism {
        let mut sink = checkpointing_sink(dir.path(), subtask, parallelism, None);
        sink.process_batch(rows(10 * i64::from(subtask)), &mut Output::default())
            .unwrap();
        entries.extend(sink.snapshot_state(7).unwrap().entries);
    }
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap().num_rows(), 0);
    let restored = spate_api::RestoredState {
        checkpoint_id: 7,
        entries: entries.clone(),
        keyed: Vec::new(),
    };
    checkpointing_sink(dir.path(), 2, parallelism, Some(restored.clone()));
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap().num_rows(), 12);
    // Restored again (another failover, or every subtask of a full restart): nothing changes.
    for subtask in 0..parallelism {
        checkpointing_sink(dir.path(), subtask, parallelism, Some(restored.clone()));
    }
    assert_eq!(read_all(dir.path(), "csv", &[]).unwrap().num_rows(), 12);
}

#[test]
fn debezium_json_writes_each_change_as_flink_does_and_takes_a_changelog() {
    use spate_api::{ChangelogMode, RowKind, changelog_batch, changelog_schema};

    let dir = tempfile::tempdir().unwrap();
    let taken = |format: &str| {
        Filesystem
            .sink_changelog(&options(dir.path(), format, &[]), &[])
            .unwrap()
    };
    assert_eq!(taken("debezium-json"), ChangelogMode::Retract);
    assert_eq!(taken("csv"), ChangelogMode::AppendOnly);
    assert_eq!(taken("json"), ChangelogMode::AppendOnly);

    let kinds = [RowKind::Insert, RowKind::UpdateBefore, RowKind::Delete];
    let changes = changelog_batch(changelog_schema(&schema()), &rows(1), &kinds).unwrap();
    let mut sink = open_sink(dir.path(), "debezium-json");
    sink.process_batch(changes.clone(), &mut Output::default())
        .unwrap();
    // Inserts only (no row-kind column) are all "c".
    sink.process_batch(rows(7).slice(0, 1), &mut Output::default())
        .unwrap();
    finish(vec![sink]);
    let text = std::fs::read_to_string(committed(dir.path(), 0, "json")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        "{\"before\":null,\"after\":{\"id\":1,\"n\":-7,\"price\":0.1,\"ok\":true,\
         \"name\":\"plain\",\"ts\":\"2024-01-02 03:04:05.678\",\"day\":\"2024-01-02\"},\"op\":\"c\"}"
    );
    assert_eq!(
        lines[1],
        "{\"before\":{\"id\":2,\"n\":null,\"price\":null,\"ok\":null,\"name\":null,\
         \"ts\":null,\"day\":null},\"after\":null,\"op\":\"d\"}"
    );
    assert!(
        lines[2].starts_with("{\"before\":{\"id\":3,"),
        "{}",
        lines[2]
    );
    assert!(
        lines[2].ends_with("\"after\":null,\"op\":\"d\"}"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("{\"before\":null,\"after\":{\"id\":7,"),
        "{}",
        lines[3]
    );

    // The other formats write inserts only, and nothing reads debezium-json.
    let mut sink = open_sink(&dir.path().join("csv"), "csv");
    let err = sink
        .process_batch(changes, &mut Output::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("csv format writes inserts only"), "{err}");
    let err = source(dir.path(), "debezium-json", &[], schema())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("'debezium-json' is written only"), "{err}");
}
