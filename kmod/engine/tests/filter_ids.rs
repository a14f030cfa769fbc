//! The kernel module's filter-id allocator (`kmod/wasmfw/wasmfw_ids.rs`,
//! kernel-independent), on the host: ids count up, wrap after `u32::MAX`
//! to 1 (never 0), and skip every id still in use.

#[allow(dead_code)]
#[path = "../../wasmfw/wasmfw_ids.rs"]
mod ids;

use std::collections::HashSet;

#[test]
fn ids_count_up_and_wrap_past_zero() {
    assert_eq!(ids::following(1), 2);
    assert_eq!(ids::following(u32::MAX - 1), u32::MAX);
    assert_eq!(ids::following(u32::MAX), 1);
    assert_eq!(ids::first_free(0, |_| false), 1, "0 is never an id");
}

#[test]
fn ids_in_use_are_skipped_across_the_wrap() {
    // Filters 1, 2, 5 and u32::MAX still loaded when the counter comes round.
    let in_use: HashSet<u32> = [1, 2, 5, u32::MAX].into();
    assert_eq!(ids::first_free(u32::MAX, |id| in_use.contains(&id)), 3);
    assert_eq!(ids::first_free(4, |id| in_use.contains(&id)), 4);
    assert_eq!(ids::first_free(5, |id| in_use.contains(&id)), 6);
}

#[test]
fn long_lived_filters_keep_their_ids_when_the_counter_comes_round() {
    // The registry's loop: a load takes first_free(next), next = following(id).
    // Filters 1..=63 are loaded first and stay; then (as after 2^32 loads)
    // the counter is just below the wrap and filters come and go in the
    // 64th slot: each new id must be one not in use.
    let mut loaded: HashSet<u32> = HashSet::new();
    let mut next = 1;
    let load = |loaded: &mut HashSet<u32>, next: &mut u32| {
        let id = ids::first_free(*next, |id| loaded.contains(&id));
        assert!(id != 0 && !loaded.contains(&id), "id {id} is in use");
        *next = ids::following(id);
        loaded.insert(id);
        id
    };
    for _ in 0..63 {
        load(&mut loaded, &mut next);
    }
    next = u32::MAX - 2;
    let mut got = Vec::new();
    for _ in 0..6 {
        let id = load(&mut loaded, &mut next);
        got.push(id);
        loaded.remove(&id); // unloaded before the next load
    }
    assert_eq!(got, [u32::MAX - 2, u32::MAX - 1, u32::MAX, 64, 65, 66]);
    assert_eq!(loaded.len(), 63);
}
