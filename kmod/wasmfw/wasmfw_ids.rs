//! Filter ids: the next id to give a loaded filter, unique among the
//! filters loaded. No kernel dependencies, so a host test can include this
//! file (kmod/engine/tests/filter_ids.rs).

/// The id after `id`: counting up, wrapping after `u32::MAX` to 1 (0 is
/// never an id: userspace reads it as "none").
pub(crate) fn following(id: u32) -> u32 {
    id.wrapping_add(1).max(1)
}

/// The first id from `start` on (in [`following`] order) that `in_use`
/// does not hold. `in_use` holds fewer ids than there are (the registry
/// has `MAX_FILTERS` slots), so the search ends, after at most one more
/// step than ids in use.
pub(crate) fn first_free(start: u32, in_use: impl Fn(u32) -> bool) -> u32 {
    let mut id = start.max(1);
    while in_use(id) {
        id = following(id);
    }
    id
}
