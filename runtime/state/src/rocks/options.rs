//! RocksDB tuned for streaming state: write-heavy, point reads of recent keys, durability from
//! checkpoints rather than from RocksDB itself.

use std::sync::Arc;

use rocksdb::compaction_filter::Decision;
use rocksdb::{
    BlockBasedOptions, Cache, DBCompressionType, LogLevel, MergeOperands, Options, WriteOptions,
};

use crate::ttl::Clock;
use crate::value::{self, Cleaned};

/// Per instance; several instances share a worker, so these stay modest.
const WRITE_BUFFER_BYTES: usize = 32 << 20;
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// Large enough that a checkpoint's flush usually writes one L0 file, and that compactions leave
/// untouched key ranges in files of their own (which incremental checkpoints then skip).
const TARGET_FILE_BYTES: u64 = 32 << 20;

pub(crate) fn db_options(clock: &Arc<dyn Clock>) -> Options {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.set_write_buffer_size(WRITE_BUFFER_BYTES);
    // A full memtable is flushed in the background while writes go to the next one.
    options.set_max_write_buffer_number(3);
    options.set_max_background_jobs(2);
    // Leveled compaction with dynamic level sizes: the bulk of the data sits in the last level,
    // in files that only change when compaction reaches their key range, so most SST files
    // survive from one checkpoint to the next and are not uploaded again.
    options.set_level_compaction_dynamic_level_bytes(true);
    options.set_target_file_size_base(TARGET_FILE_BYTES);
    // The crate is built without compression libraries: state is rewritten often and read back
    // soon, and CPU per record matters more than disk.
    options.set_compression_type(DBCompressionType::None);
    options.set_log_level(LogLevel::Warn);
    options.set_keep_log_file_num(2);
    options.set_max_log_file_size(8 << 20);

    let mut table = BlockBasedOptions::default();
    table.set_block_cache(&Cache::new_lru_cache(BLOCK_CACHE_BYTES));
    // Most reads are point lookups of keys that may not exist yet (first record of a key).
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
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
