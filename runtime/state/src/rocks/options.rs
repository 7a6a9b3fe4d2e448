//! RocksDB tuned for streaming state: write-heavy, point reads of recent keys, durability from
//! checkpoints rather than from RocksDB itself, and incremental checkpoints that upload every
//! SST file the last confirmed checkpoint did not have.
//!
//! That last point decides the compaction style. Keys hash over all key groups, so every flushed
//! file spans the whole key range, and merging changes into the bulk of the data rewrites all of
//! it whatever the style: what an incremental checkpoint uploads, amortised, is the flush plus
//! the compaction output per checkpoint, i.e. the changed bytes times the write amplification.
//! Leveled compaction rewrites the last level a little at a time but all the time (11-18% of the
//! state uploaded per 1%-change checkpoint in `docs/benchmarks.md`). Here the flushed files stay
//! as they are, one sorted run each, until together they are as large as
//! [`SIZE_AMPLIFICATION_PERCENT`] of the oldest run; then one compaction merges everything. Each
//! byte is then written twice (flush, then the merge), so a checkpoint uploads about
//! `flushed × (1 + 100 / SIZE_AMPLIFICATION_PERCENT)`: 1.5% of the state after a 1% change, and
//! the whole state (one merge) about once per `SIZE_AMPLIFICATION_PERCENT / changed%`
//! checkpoints. Merging the small runs among themselves first would write each byte a third
//! time, which at a 1% change is already more than 2%. The price is read amplification (a point
//! read looks at every run, each behind a bloom filter) and space: the snapshot grows up to
//! `1 + SIZE_AMPLIFICATION_PERCENT / 100` times the state before the merge.

use std::sync::Arc;

use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, Cache, DBCompactionStyle, DBCompressionType, LogLevel, MergeOperands,
    Options, UniversalCompactOptions, UniversalCompactionStopStyle, WriteOptions,
};

use crate::ttl::Clock;
use crate::value::{self, Cleaned};

/// Per instance; several instances share a worker, so these stay modest.
const WRITE_BUFFER_BYTES: usize = 32 << 20;
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// The size of the files of the merged run: large enough that there are few of them, small
/// enough that a restore or a rescale does not handle one huge file.
const TARGET_FILE_BYTES: u64 = 32 << 20;
/// The newer runs together may reach this share of the oldest run before everything is merged.
/// Higher means fewer merges (less upload) but more runs to read through and larger snapshots.
/// A flush carries some fixed overhead (index, filter, properties, and the MANIFEST that every
/// checkpoint uploads), about 0.2% of 10 MB of state: at 120% a 1% change uploaded 2.1% there.
const SIZE_AMPLIFICATION_PERCENT: i32 = 200;
/// This many runs of similar size are merged into one even before the size amplification says
/// so: it bounds the runs a read looks at when checkpoints change little (many small flushes),
/// and lies above the ~200 runs that 1%-change checkpoints reach between full merges, so that
/// those are not merged twice.
const MERGE_WIDTH: i32 = 250;
/// Whether a run counts as similar in size to the one before it: within this percentage.
const SIMILAR_SIZE_PERCENT: i32 = 100;

/// The MANIFEST (the log of which SST files make the database) is not shared between
/// checkpoints: each one uploads it whole. By default RocksDB only starts a new, compacted one
/// past 1 GB, so it would grow by a record per flush for the life of the job (about 150 bytes
/// per checkpoint). From 16 KiB on, a new one is started once the log is twice its compacted
/// size (about 150 bytes per live SST file), which keeps it to some tens of KiB. The crate has
/// no setter for the second option, hence the string.
const MANIFEST_BYTES: usize = 16 << 10;
const MANIFEST_OPTIONS: &str = "max_manifest_space_amp_pct=100";

pub(crate) fn db_options(clock: &Arc<dyn Clock>) -> Options {
    // Only a RocksDB without the option would refuse it; then the 1 GB default stays.
    let mut options = Options::default()
        .get_options_from_string(MANIFEST_OPTIONS)
        .unwrap_or_default();
    options.create_if_missing(true);
    options.set_max_manifest_file_size(MANIFEST_BYTES);
    options.set_write_buffer_size(WRITE_BUFFER_BYTES);
    // A full memtable is flushed in the background while writes go to the next one.
    options.set_max_write_buffer_number(3);
    options.set_max_background_jobs(2);

    // Universal compaction, tuned to leave flushed files alone until a full merge (see the
    // module comment).
    options.set_compaction_style(DBCompactionStyle::Universal);
    let mut universal = UniversalCompactOptions::default();
    universal.set_max_size_amplification_percent(SIZE_AMPLIFICATION_PERCENT);
    // Merge only runs of similar size, so that a merge of small runs never pulls in a large one,
    // and only `MERGE_WIDTH` of them at a time.
    universal.set_stop_style(UniversalCompactionStopStyle::Similar);
    universal.set_size_ratio(SIMILAR_SIZE_PERCENT);
    universal.set_min_merge_width(MERGE_WIDTH);
    universal.set_max_merge_width(MERGE_WIDTH);
    options.set_universal_compaction_options(&universal);
    // Compactions are considered from a few runs on, so that the size amplification is checked
    // after every flush whatever the size of the flushes; the merge width above is what keeps
    // the runs apart.
    options.set_level_zero_file_num_compaction_trigger(4);
    // Writes slow down and stop only if compaction falls far behind the bound above.
    options.set_level_zero_slowdown_writes_trigger(MERGE_WIDTH + 50);
    options.set_level_zero_stop_writes_trigger(MERGE_WIDTH + 100);
    // No time-based rewrite of old files: a full merge comes with the changes anyway, and an
    // unplanned one would upload the whole state at some checkpoint. (Expired state is dropped
    // by the compaction filter when the next merge comes, and never read in between.) With a
    // compaction filter RocksDB sets both to 30 days unless told otherwise, and under universal
    // compaction a TTL means periodic compactions, so both are needed.
    options.set_periodic_compaction_seconds(0);
    options.set_ttl(0);
    options.set_target_file_size_base(TARGET_FILE_BYTES);
    // The crate is built without compression libraries: state is rewritten often and read back
    // soon, and CPU per record matters more than disk.
    options.set_compression_type(DBCompressionType::None);
    options.set_log_level(LogLevel::Warn);
    options.set_keep_log_file_num(2);
    options.set_max_log_file_size(8 << 20);

    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    // Most reads are point lookups of keys that may not exist yet (first record of a key), and
    // each looks at every run until it finds the key: the bloom filters keep that cheap.
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    // Flushed files (the newer runs) keep their filters and indexes in the cache.
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    options.set_block_based_table_factory(&table);

    let merge_clock = clock.clone();
    options.set_merge_operator(
        "spate-list-append",
        move |_key: &[u8], base: Option<&[u8]>, operands: &MergeOperands| {
            value::merge_lists(base, operands.iter(), Some(merge_clock.now())).ok()
        },
        |_key: &[u8], base: Option<&[u8]>, operands: &MergeOperands| {
            value::merge_lists(base, operands.iter(), None).ok()
        },
    );
    let filter_clock = clock.clone();
    options.set_compaction_filter(
        "spate-expired-state",
        move |_level: u32, _key: &[u8], stored: &[u8]| match value::clean(
            stored,
            filter_clock.now(),
            None,
        ) {
            Ok(Cleaned::Drop) => Decision::Remove,
            _ => Decision::Keep,
        },
    );
    options
}

/// Writes skip the WAL: a checkpoint flushes memtables before it links SST files, and after a
/// failure the instance restarts from its last checkpoint, so the WAL would only add a second
/// write of every change that recovery then throws away.
pub(crate) fn write_options() -> WriteOptions {
    let mut options = WriteOptions::default();
    options.disable_wal(true);
    options
}

#[cfg(test)]
mod tests {
    use std::ops::Range;

    use rocksdb::{DB, FlushOptions, WaitForCompactOptions};

    use super::*;
    use crate::ttl::SystemClock;

    fn clock() -> Arc<dyn Clock> {
        Arc::new(SystemClock)
    }

    fn files_at(db: &DB, level: usize) -> u64 {
        db.property_int_value(format!("rocksdb.num-files-at-level{level}").as_str())
            .unwrap()
            .unwrap()
    }

    fn non_empty_levels(db: &DB) -> Vec<usize> {
        (0..7).filter(|&level| files_at(db, level) > 0).collect()
    }

    fn flush_and_settle(db: &DB) {
        let mut flush = FlushOptions::default();
        flush.set_wait(true);
        db.flush_opt(&flush).unwrap();
        db.wait_for_compact(&WaitForCompactOptions::default())
            .unwrap();
    }

    fn value(key: u32, round: u32) -> Vec<u8> {
        let mut value = vec![(key % 251) as u8; 250];
        value[..4].copy_from_slice(&round.to_be_bytes());
        value
    }

    fn write(db: &DB, keys: Range<u32>, round: u32) {
        for key in keys {
            db.put_opt(key.to_be_bytes(), value(key, round), &write_options())
                .unwrap();
        }
    }

    fn check(db: &DB, keys: Range<u32>, round_of: impl Fn(u32) -> u32) {
        for key in keys {
            let stored = db.get(key.to_be_bytes()).unwrap();
            assert_eq!(stored, Some(value(key, round_of(key))), "key {key}");
        }
    }

    #[test]
    fn the_bundled_rocksdb_knows_the_manifest_options() {
        Options::default()
            .get_options_from_string(MANIFEST_OPTIONS)
            .unwrap();
    }

    /// RocksDB turns on 30-day periodic compactions by itself when there is a compaction filter;
    /// each would be an unplanned full merge, uploading the whole state at some checkpoint.
    #[test]
    fn no_time_based_compactions() {
        let dir = tempfile::tempdir().unwrap();
        drop(DB::open(&db_options(&clock()), dir.path()).unwrap());
        let written = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .find(|path| {
                path.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("OPTIONS-")
            })
            .unwrap();
        let written = std::fs::read_to_string(written).unwrap();
        for line in ["periodic_compaction_seconds=0", "ttl=0"] {
            assert!(
                written.lines().any(|l| l.trim() == line),
                "{line} in {written}"
            );
        }
    }

    /// The point of the tuning: a flushed file stays as it is (so incremental checkpoints do not
    /// upload it again) until the newer runs reach the size amplification, and then one
    /// compaction merges everything.
    #[test]
    fn flushed_runs_stay_until_the_size_amplification_merges_everything() {
        const KEYS: u32 = 4000;
        const CHANGED: u32 = KEYS / 10;
        let dir = tempfile::tempdir().unwrap();
        let db = DB::open(&db_options(&clock()), dir.path()).unwrap();
        write(&db, 0..KEYS, 0);
        flush_and_settle(&db);
        assert_eq!(non_empty_levels(&db), vec![0]);
        let mut latest = vec![0; KEYS as usize];
        let mut change = |db: &DB, round: u32| {
            let start = (round * CHANGED) % KEYS;
            write(db, start..start + CHANGED, round);
            latest[start as usize..(start + CHANGED) as usize].fill(round);
            flush_and_settle(db);
        };
        // 10% of the keys per round: below the size amplification nothing is compacted.
        let threshold = SIZE_AMPLIFICATION_PERCENT as u32 / 10;
        for round in 1..threshold - 1 {
            change(&db, round);
            assert_eq!(files_at(&db, 0), u64::from(round) + 1, "round {round}");
        }
        // Around it (per-file overhead makes it a round early), everything becomes one run again.
        let merged = (threshold - 1..threshold + 4).find(|&round| {
            change(&db, round);
            files_at(&db, 0) == 0
        });
        assert!(merged.is_some(), "no full merge by round {}", threshold + 3);
        assert_eq!(non_empty_levels(&db), vec![6]);
        check(&db, 0..KEYS, |key| latest[key as usize]);
    }

    /// Checkpoints and savepoints taken before the switch to universal compaction hold files on
    /// several levels; restoring one opens them with these options.
    #[test]
    fn opens_a_database_written_with_leveled_compaction() {
        const KEYS: u32 = 8000;
        let dir = tempfile::tempdir().unwrap();
        {
            let mut leveled = Options::default();
            leveled.create_if_missing(true);
            leveled.set_compaction_style(DBCompactionStyle::Level);
            leveled.set_level_compaction_dynamic_level_bytes(true);
            leveled.set_write_buffer_size(128 << 10);
            leveled.set_target_file_size_base(128 << 10);
            leveled.set_max_bytes_for_level_base(512 << 10);
            leveled.set_level_zero_file_num_compaction_trigger(2);
            let db = DB::open(&leveled, dir.path()).unwrap();
            for round in 0..3 {
                write(&db, 0..KEYS, round);
                flush_and_settle(&db);
            }
            write(&db, 0..KEYS / 2, 3);
            let mut flush = FlushOptions::default();
            flush.set_wait(true);
            db.flush_opt(&flush).unwrap();
            let levels = non_empty_levels(&db);
            assert!(
                levels.iter().filter(|&&level| level > 0).count() >= 2,
                "levels {levels:?}"
            );
        }
        let newest = |key: u32| if key < KEYS / 2 { 3 } else { 2 };
        let db = DB::open(&db_options(&clock()), dir.path()).unwrap();
        check(&db, 0..KEYS, newest);
        // Compactions of the old layout under the new style keep the newest versions.
        for round in 4..10 {
            write(&db, 0..KEYS / 4, round);
            flush_and_settle(&db);
        }
        let newest = |key: u32| match key {
            key if key < KEYS / 4 => 9,
            key => newest(key),
        };
        check(&db, 0..KEYS, newest);
        db.compact_range(None::<&[u8]>, None::<&[u8]>);
        check(&db, 0..KEYS, newest);
    }
}
