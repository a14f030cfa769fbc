//! Imports a filter may use (module "wasmfw").

/// `(kind, key_size, value_size, max_entries, name_ptr, name_len) -> i32` id or error. Init only.
pub const IMPORT_MAP_DECLARE: &str = "map_declare";
/// `(map, key_ptr, value_ptr) -> i32`: 1 found (value copied out), 0 absent, <0 error.
pub const IMPORT_MAP_LOOKUP: &str = "map_lookup";
/// `(map, key_ptr, value_ptr) -> i32`: 0 ok, <0 error.
pub const IMPORT_MAP_UPDATE: &str = "map_update";
/// `(map, key_ptr) -> i32`: 1 deleted, 0 absent, <0 error.
pub const IMPORT_MAP_DELETE: &str = "map_delete";
/// `(name_ptr, name_len) -> i32` id or error. Init only.
pub const IMPORT_COUNTER_DECLARE: &str = "counter_declare";
/// `(counter, delta: i64)`.
pub const IMPORT_COUNTER_ADD: &str = "counter_add";
/// `() -> i64`: monotonic nanoseconds (capture timestamps under replay).
pub const IMPORT_NOW_NS: &str = "now_ns";
/// `(level, ptr, len)`: one log line.
pub const IMPORT_LOG: &str = "log";
