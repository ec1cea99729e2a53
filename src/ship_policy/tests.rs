//! The ship path's decisions, event by event, with time passed in.

use super::*;

const MIB: u64 = 1024 * 1024;

fn config(max_memory: u64) -> Config {
    Config {
        max_memory,
        max_object: max_memory / 2,
        max_disk: 64 * MIB,
        max_in_flight: 2,
        seed: 7,
        merge_limit: MIB,
    }
}

fn policy(max_memory: u64) -> Policy {
    Policy::new(config(max_memory))
}

fn ms(t0: Instant, n: u64) -> Instant {
    t0 + Duration::from_millis(n)
}

fn sealed(id: BatchId, bytes: u64) -> Event {
    Event::Sealed {
        id,
        records: 10,
        bytes,
    }
}

fn recovered(id: BatchId, bytes: u64) -> Event {
    Event::Recovered {
        id,
        records: 10,
        bytes,
    }
}

fn fails(id: BatchId, failure: Failure) -> Event {
    Event::Failed { id, failure }
}

fn spilled(id: BatchId) -> Event {
    Event::Spilled { id, ok: true }
}

fn uploads(actions: &[Action]) -> Vec<BatchId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Upload { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn spills(actions: &[Action]) -> Vec<BatchId> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spill { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

fn merges(actions: &[Action]) -> Vec<(BatchId, Vec<BatchId>, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Merge {
                into,
                from,
                to_disk,
            } => Some((*into, from.clone(), *to_disk)),
            _ => None,
        })
        .collect()
}

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

fn wake(actions: &[Action]) -> Option<Instant> {
    actions.iter().find_map(|a| match a {
        Action::WakeAt(t) => Some(*t),
        _ => None,
    })
}

/// A policy that has seen one SlowDown (pace 4) on batch 1, now on disk, and waits to probe.
fn throttled_with_batch_1_on_disk(t0: Instant) -> Policy {
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    let a = p.handle(fails(1, Failure::Throttled), t0);
    assert_eq!(spills(&a), vec![1], "failed once: to disk");
    p.handle(spilled(1), t0);
    p
}

#[test]
fn a_sealed_batch_uploads_at_once_two_at_a_time_and_is_forgotten_when_confirmed() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    assert_eq!(
        p.handle(sealed(1, 4096), t0),
        vec![Action::Upload {
            id: 1,
            timeout: Duration::from_secs(3)
        }]
    );
    assert_eq!(uploads(&p.handle(sealed(2, 4096), t0)), vec![2]);
    assert!(
        uploads(&p.handle(sealed(3, 4096), t0)).is_empty(),
        "two in flight"
    );
    let a = p.handle(Event::Uploaded { id: 1 }, ms(t0, 30));
    assert!(has(&a, &Action::Forget { id: 1 }));
    assert_eq!(uploads(&a), vec![3]);
    assert_eq!(p.pending().batches, 2);
    assert_eq!(p.memory(), 8192);
    let acc = p.accounts();
    assert_eq!((acc.sealed, acc.shipped, acc.in_memory), (30, 10, 20));
    assert!(acc.balanced());
}

#[test]
fn attempts_get_a_time_limit_sized_to_their_body() {
    assert_eq!(attempt_timeout(4096), Duration::from_secs(3));
    assert_eq!(attempt_timeout(16 * MIB), Duration::from_secs(19));
}

#[test]
fn a_transient_failure_spills_the_batch_and_backs_off_then_one_probe_at_a_time() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    let a = p.handle(fails(1, Failure::Transient), ms(t0, 10));
    assert!(
        has(
            &a,
            &Action::Spill {
                id: 1,
                maybe_stored: true
            }
        ),
        "failed once: to disk, saying S3 may have it: {a:?}"
    );
    assert!(has(
        &a,
        &Action::Report {
            failure: Failure::Transient
        }
    ));
    let at = wake(&a).expect("a wake-up for the retry");
    // Equal jitter over the first wait of 100 ms: between 50 and 100 ms.
    assert!(at >= ms(t0, 60) && at <= ms(t0, 110), "{:?}", at - t0);
    p.handle(spilled(1), ms(t0, 12));
    assert!(
        uploads(&p.handle(sealed(2, 100), ms(t0, 20))).is_empty(),
        "nothing before the wait"
    );
    assert!(uploads(&p.handle(Event::Tick, ms(t0, 55))).is_empty());
    assert_eq!(
        uploads(&p.handle(Event::Tick, at)),
        vec![1],
        "one probe, the oldest"
    );
    assert!(
        uploads(&p.handle(sealed(3, 100), at)).is_empty(),
        "one at a time while failing"
    );
    let a = p.handle(Event::Uploaded { id: 1 }, at);
    assert!(has(&a, &Action::Delete { id: 1 }), "its file goes: {a:?}");
    assert_eq!(uploads(&a), vec![2, 3], "healthy again: two at once");
    let a = p.handle(Event::Deleted { id: 1, ok: true }, at);
    assert!(has(&a, &Action::Forget { id: 1 }));
    assert_eq!(p.disk(), 0);
}

#[test]
fn a_success_of_an_upload_started_before_a_failure_also_says_s3_is_back() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(fails(1, Failure::Transient), t0);
    p.handle(spilled(1), t0);
    assert_eq!(
        uploads(&p.handle(Event::Uploaded { id: 2 }, ms(t0, 1))),
        vec![1]
    );
}

#[test]
fn back_off_probes_take_the_held_batches_in_turn_so_one_bad_batch_holds_none() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    for id in 1..=3 {
        p.handle(sealed(id, 100), t0);
    }
    // Batches 1 and 2 upload and fail; 3 never got a slot. Every probe fails: each batch is
    // probed in turn, not the oldest again and again.
    let mut a = p.handle(fails(1, Failure::Transient), t0);
    a.extend(p.handle(fails(2, Failure::Transient), t0));
    let mut now = t0;
    let mut probed = Vec::new();
    while probed.len() < 6 {
        for s in spills(&a) {
            p.handle(spilled(s), now);
        }
        now = wake(&a).expect("a wake-up for the next probe").max(now);
        let up = uploads(&p.handle(Event::Tick, now));
        assert!(up.len() <= 1, "one probe at a time: {up:?}");
        if let [id] = up[..] {
            probed.push(id);
            a = p.handle(fails(id, Failure::Transient), now);
        } else {
            a = p.handle(Event::Tick, now);
        }
    }
    assert_eq!(probed, vec![1, 2, 3, 1, 2, 3]);
}

#[test]
fn a_request_that_cannot_be_built_or_a_file_that_cannot_be_read_is_set_aside_at_once() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    let a = p.handle(fails(1, Failure::Unsendable), t0);
    assert!(has(&a, &Action::SetAside { id: 1 }), "{a:?}");
    assert!(wake(&a).is_none(), "no back-off: S3 did nothing wrong");
    let a = p.handle(fails(2, Failure::Unreadable), t0);
    assert!(has(&a, &Action::SetAside { id: 2 }));
    assert_eq!(uploads(&p.handle(sealed(3, 100), t0)), vec![3]);
    let acc = p.accounts();
    assert_eq!((acc.rejected, acc.unreadable), (10, 10));
    assert!(acc.balanced());
}

#[test]
fn refusals_are_retried_after_1_2_4_8_16_then_30_seconds() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..7 {
        let a = p.handle(fails(1, Failure::Refused(Refusal::AccessDenied)), now);
        for s in spills(&a) {
            p.handle(spilled(s), now);
        }
        let at = wake(&a).unwrap();
        waits.push((at - now).as_secs());
        assert!(uploads(&p.handle(Event::Tick, at - Duration::from_millis(1))).is_empty());
        now = at;
        assert_eq!(uploads(&p.handle(Event::Tick, now)), vec![1]);
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
}

#[test]
fn a_flush_is_answered_when_nothing_is_pending_at_its_deadline_or_at_the_first_failure() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    let flush = |id, ms_| Event::Flush {
        id,
        deadline: ms(t0, ms_),
        last: false,
    };
    assert!(
        has(&p.handle(flush(1, 100), t0), &Action::AnswerFlush { id: 1 }),
        "idle"
    );
    p.handle(sealed(1, 100), t0);
    let a = p.handle(flush(2, 100), t0);
    assert!(!has(&a, &Action::AnswerFlush { id: 2 }));
    assert_eq!(wake(&a), Some(ms(t0, 100)));
    assert!(has(
        &p.handle(Event::Uploaded { id: 1 }, ms(t0, 20)),
        &Action::AnswerFlush { id: 2 }
    ));
    p.handle(sealed(2, 100), ms(t0, 30));
    p.handle(flush(3, 60), ms(t0, 30));
    assert!(!has(
        &p.handle(Event::Tick, ms(t0, 59)),
        &Action::AnswerFlush { id: 3 }
    ));
    assert!(has(
        &p.handle(Event::Tick, ms(t0, 60)),
        &Action::AnswerFlush { id: 3 }
    ));
    p.handle(flush(4, 1000), ms(t0, 70));
    let a = p.handle(fails(2, Failure::Refused(Refusal::Kms)), ms(t0, 80));
    assert!(
        has(&a, &Action::AnswerFlush { id: 4 }),
        "a refusal never holds an invoke"
    );
    assert!(
        has(
            &p.handle(flush(5, 1000), ms(t0, 90)),
            &Action::AnswerFlush { id: 5 }
        ),
        "nor does S3 failing since"
    );
}

#[test]
fn past_the_memory_bound_the_newest_spill_and_past_it_and_one_object_they_are_refused() {
    let t0 = Instant::now();
    // 250 bytes in memory, objects of up to 125.
    let mut p = policy(250);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    let a = p.handle(sealed(3, 100), t0);
    assert_eq!(spills(&a), vec![3], "{a:?}");
    p.handle(spilled(3), t0);
    assert_eq!(p.memory(), 200);
    let acc = p.accounts();
    assert_eq!((acc.in_memory, acc.on_disk), (20, 10));
    // The disk is full: memory may pass the bound by one object, then the newest is refused.
    let mut p = Policy::new(Config {
        max_disk: 100,
        ..config(250)
    });
    for id in 1..=3 {
        p.handle(sealed(id, 100), t0);
    }
    p.handle(spilled(3), t0);
    let a = p.handle(sealed(4, 100), t0);
    assert!(spills(&a).is_empty(), "no room on disk");
    let a = p.handle(sealed(5, 60), t0);
    assert!(
        !a.iter().any(|x| matches!(x, Action::Refuse { .. })),
        "360 of 375"
    );
    let a = p.handle(sealed(6, 100), t0);
    assert!(has(&a, &Action::Refuse { id: 6 }), "{a:?}");
    assert_eq!(p.memory(), 360);
    assert_eq!(p.accounts().refused, 10);
    assert!(p.accounts().balanced());
}

#[test]
fn a_failed_spill_is_retried_with_a_back_off_of_its_own_and_turns_nothing_off() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(fails(1, Failure::Refused(Refusal::AccessDenied)), t0);
    let a = p.handle(Event::Spilled { id: 1, ok: false }, t0);
    assert!(spills(&a).is_empty(), "not again at once");
    let at = wake(&a).unwrap();
    assert_eq!(at, ms(t0, 100), "its own retry, 100 ms later");
    // Another batch's spill is not held by it.
    let a = p.handle(fails(2, Failure::Refused(Refusal::AccessDenied)), ms(t0, 1));
    assert_eq!(spills(&a), vec![2]);
    assert_eq!(spills(&p.handle(Event::Tick, at)), vec![1]);
    let a = p.handle(Event::Spilled { id: 1, ok: false }, at);
    assert_eq!(wake(&a), Some(at + Duration::from_millis(200)), "doubled");
}

#[test]
fn a_batch_on_disk_is_never_refused() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_disk: 150,
        ..config(200)
    });
    // Two uploads in flight hold 200 bytes; one batch is on disk; the disk is full.
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    let a = p.handle(sealed(3, 100), t0);
    assert_eq!(spills(&a), vec![3]);
    p.handle(spilled(3), t0);
    let a = p.handle(sealed(4, 150), t0);
    assert!(has(&a, &Action::Refuse { id: 4 }), "{a:?}");
    assert!(!a.iter().any(|x| matches!(x, Action::Refuse { id: 3 })));
    assert_eq!(p.accounts().on_disk, 10);
}

#[test]
fn a_batch_s3_rejects_is_set_aside_after_three_attempts_and_blocks_nothing() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(Event::Uploaded { id: 2 }, t0);
    let mut now = t0;
    for attempt in 1..=3 {
        let a = p.handle(fails(1, Failure::Rejected), now);
        for s in spills(&a) {
            p.handle(spilled(s), now);
        }
        if attempt < 3 {
            now = wake(&a).unwrap();
            assert_eq!(uploads(&p.handle(Event::Tick, now)), vec![1]);
        } else {
            assert!(has(&a, &Action::SetAside { id: 1 }));
        }
    }
    assert_eq!(p.pending().batches, 0);
    assert_eq!(uploads(&p.handle(sealed(3, 100), now)), vec![3]);
    assert_eq!(p.accounts().rejected, 10);
}

#[test]
fn recovered_batches_go_first_and_an_upload_from_disk_holds_no_copy() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_in_flight: 1,
        ..config(MIB)
    });
    let a = p.handle(recovered(1, 10), t0);
    assert_eq!(uploads(&a), vec![1]);
    assert_eq!(p.memory(), 0, "streamed from its file");
    assert!(uploads(&p.handle(sealed(2, 10), t0)).is_empty());
    let acc = p.accounts();
    assert_eq!((acc.in_memory, acc.on_disk, acc.recovered), (10, 10, 10));
    p.handle(fails(1, Failure::Throttled), t0);
    assert_eq!(p.memory(), 10);
}

/// On main a batch on disk was read back into memory for its upload, and the copy had to fit the
/// memory bound: merged batches larger than the bound waited for as long as records arrived (the
/// throttled-small-spill scenario lost 126 to 1,106 lines). Uploads from disk stream the file.
#[test]
fn batches_on_disk_larger_than_the_memory_bound_go_while_memory_is_full() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_in_flight: 4,
        ..config(200)
    });
    p.set_upstream(150);
    let mut all = Vec::new();
    for (id, bytes) in [(1, 120), (2, 120), (3, 5000)] {
        all.extend(uploads(&p.handle(recovered(id, bytes), t0)));
    }
    assert_eq!(all, vec![1, 2, 3], "{all:?}");
    assert_eq!(p.memory(), 0);
}

#[test]
fn at_shutdown_the_backoff_is_lifted_and_refusals_are_probed_until_the_spill() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    for id in 1..=3 {
        p.handle(sealed(id, 100), t0);
    }
    let refused = |id| fails(id, Failure::Refused(Refusal::AccessDenied));
    p.handle(refused(1), t0);
    p.handle(refused(2), t0);
    p.handle(spilled(1), t0);
    p.handle(spilled(2), t0);
    // Batch 3 never got a slot (the refusal's 1 s wait); at shutdown the wait is lifted, and twice
    // the uploads run at once.
    let a = p.handle(
        Event::Flush {
            id: 9,
            deadline: ms(t0, 1500),
            last: true,
        },
        ms(t0, 100),
    );
    assert_eq!(uploads(&a), vec![1, 2, 3]);
    let a = p.handle(refused(1), ms(t0, 110));
    assert!(uploads(&a).is_empty(), "refused again: probes only");
    let at = wake(&a).unwrap();
    assert!(
        at <= ms(t0, 110 + 250),
        "at most 250 ms before the next: {:?}",
        at - t0
    );
    // S3 takes writes again: everything goes.
    let a = p.handle(Event::Uploaded { id: 2 }, ms(t0, 120));
    assert_eq!(uploads(&a), vec![1]);
    p.handle(Event::Uploaded { id: 1 }, ms(t0, 130));
    let a = p.handle(Event::Uploaded { id: 3 }, ms(t0, 140));
    assert!(
        !has(&a, &Action::AnswerFlush { id: 9 }),
        "nothing owned, but the spilled files are being deleted"
    );
    p.handle(Event::Deleted { id: 1, ok: true }, ms(t0, 141));
    let a = p.handle(Event::Deleted { id: 2, ok: true }, ms(t0, 142));
    assert!(
        has(&a, &Action::AnswerFlush { id: 9 }),
        "nothing left: answered at once"
    );
}

#[test]
fn a_refusal_to_the_end_is_probed_until_the_deadline_then_memory_is_spilled() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_disk: 0,
        ..config(8 * MIB)
    });
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(
        Event::Flush {
            id: 1,
            deadline: ms(t0, 1000),
            last: true,
        },
        t0,
    );
    let mut now = t0;
    let mut probes = 0;
    let mut failed = vec![1, 2];
    let answered = loop {
        let mut a = Vec::new();
        for id in failed.drain(..) {
            a.extend(p.handle(fails(id, Failure::Refused(Refusal::Kms)), now));
        }
        let Some(at) = wake(&a) else { break None };
        now = at;
        let a = p.handle(Event::Tick, now);
        if has(&a, &Action::AnswerFlush { id: 1 }) {
            break Some(now);
        }
        probes += uploads(&a).len();
        failed = uploads(&a);
        if failed.is_empty() {
            let a = p.handle(Event::Tick, wake(&a).unwrap());
            break has(&a, &Action::AnswerFlush { id: 1 }).then_some(now);
        }
    };
    assert!(
        probes >= 3,
        "one probe at a time until the uploads' end: {probes}"
    );
    assert!(
        now <= ms(t0, 1000),
        "answered by its deadline: {answered:?}"
    );
    assert_eq!(
        p.accounts().in_memory,
        20,
        "no disk: what is left is in memory, and said so"
    );
}

#[test]
fn the_final_round_stops_uploading_before_its_deadline_to_spill_uploads_in_flight_too() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Transient), t0);
    p.handle(spilled(1), t0);
    p.handle(sealed(2, 100), t0);
    let a = p.handle(
        Event::Flush {
            id: 1,
            deadline: ms(t0, 1000),
            last: true,
        },
        t0,
    );
    assert_eq!(uploads(&a), vec![1, 2]);
    // Neither answers before the uploads' end (deadline less the spill reserve): the one in
    // memory goes to disk, saying S3 may store it (its upload is in flight).
    let a = p.handle(Event::Tick, ms(t0, 800));
    assert!(
        has(
            &a,
            &Action::Spill {
                id: 2,
                maybe_stored: true
            }
        ),
        "{a:?}"
    );
    // S3 confirms it while its file is being written: everything owned is on disk, and its
    // file goes once written; the flush is answered once no file is being written or removed.
    let a = p.handle(Event::Uploaded { id: 2 }, ms(t0, 805));
    assert!(!a.iter().any(|x| matches!(x, Action::Forget { id: 2 })));
    assert!(
        !has(&a, &Action::AnswerFlush { id: 1 }),
        "a spill in flight"
    );
    let a = p.handle(spilled(2), ms(t0, 810));
    assert!(has(&a, &Action::Delete { id: 2 }), "{a:?}");
    let a = p.handle(Event::Deleted { id: 2, ok: true }, ms(t0, 812));
    assert!(
        has(&a, &Action::AnswerFlush { id: 1 }),
        "all on disk: {a:?}"
    );
}

#[test]
fn a_batch_confirmed_while_its_spill_fails_leaves_nothing_behind() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(
        Event::Flush {
            id: 1,
            deadline: ms(t0, 1000),
            last: true,
        },
        t0,
    );
    p.handle(Event::Tick, ms(t0, 800));
    p.handle(Event::Uploaded { id: 1 }, ms(t0, 805));
    let a = p.handle(Event::Spilled { id: 1, ok: false }, ms(t0, 810));
    assert!(has(&a, &Action::Forget { id: 1 }), "{a:?}");
    assert_eq!((p.memory(), p.disk(), p.pending().batches), (0, 0, 0));
}

#[test]
fn slowdown_quarters_the_rate_first_then_halves_it_once_a_round_and_quiet_time_adds_to_it_slowly() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    let paces = |a: &[Action]| -> Vec<f64> {
        a.iter()
            .filter_map(|x| match x {
                Action::Pace(f) => Some(*f),
                _ => None,
            })
            .collect()
    };
    let throttled = |id| fails(id, Failure::Throttled);
    for id in 1..=3 {
        p.handle(sealed(id, 100), t0);
    }
    // Batches 1 and 2 were uploading together when S3 throttled: one increase for both, by 4 for
    // the environment's first SlowDown.
    assert_eq!(paces(&p.handle(throttled(1), t0)), vec![4.0]);
    assert!(
        paces(&p.handle(throttled(2), ms(t0, 10))).is_empty(),
        "one round counts once"
    );
    p.handle(spilled(1), ms(t0, 11));
    p.handle(spilled(2), ms(t0, 11));
    // The retry, started after the increase, counts again. Batch 3 may be merged into 1: make it
    // one that S3 may have (a timeout), so 1 goes alone.
    p.handle(Event::Restored { seed: 1 }, ms(t0, 12));
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    assert_eq!(uploads(&p.handle(Event::Tick, at)), vec![1]);
    assert_eq!(
        paces(&p.handle(throttled(1), at + Duration::from_millis(5))),
        vec![8.0]
    );
    assert_eq!(p.pace(), 8.0);
    // Transient failures and refusals do not pace.
    let t0 = at + Duration::from_millis(5) - Duration::from_millis(5200);
    p.handle(sealed(4, 100), ms(t0, 1300));
    let a = p.handle(fails(4, Failure::Transient), ms(t0, 1300));
    assert!(paces(&a).is_empty());
    // Every 10 quiet seconds add 0.0025 to the rate (1/8 → 0.1275), woken for it.
    let a = p.handle(Event::Tick, ms(t0, 9000));
    assert!(paces(&a).is_empty());
    let a = p.handle(Event::Tick, ms(t0, 5200) + RELAX_EVERY);
    let pace = paces(&a)[0];
    assert!((pace - 1.0 / 0.1275).abs() < 1e-9, "{pace}");
    // Back to 1 after five quiet minutes (the prefix has cooled), at the 30th step.
    let mut now = ms(t0, 5200) + RELAX_EVERY;
    let mut steps = 1;
    while p.pace() > 1.0 {
        now += RELAX_EVERY;
        p.handle(Event::Tick, now);
        steps += 1;
    }
    assert_eq!(steps, 30);
}

#[test]
fn while_throttled_waiting_batches_s3_never_stored_are_merged_on_disk_exactly() {
    let t0 = Instant::now();
    let mut p = throttled_with_batch_1_on_disk(t0);
    for id in 2..=5 {
        p.handle(sealed(id, 100), ms(t0, 10));
    }
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    // Batch 1 is on disk: the merge is written to disk before its parts go.
    assert_eq!(merges(&a), vec![(1, vec![2, 3, 4, 5], true)], "{a:?}");
    assert_eq!(
        p.disk(),
        100 + 500,
        "the merged file is counted while written"
    );
    let a = p.handle(Event::Merged { into: 1, ok: true }, at);
    assert_eq!(
        p.pending(),
        Pending {
            batches: 1,
            records: 50
        }
    );
    assert_eq!(uploads(&a), vec![1], "the merged batch is the probe");
    assert_eq!(
        (p.memory(), p.disk()),
        (0, 500),
        "exact: the first file replaced, streamed from it for the upload"
    );
    for id in 2..=5 {
        assert!(has(&a, &Action::Forget { id }), "{a:?}");
    }
    assert!(p.accounts().balanced());
}

#[test]
fn the_merged_batch_file_goes_only_after_the_parts_it_absorbed() {
    let t0 = Instant::now();
    let mut p = throttled_with_batch_1_on_disk(t0);
    p.handle(sealed(2, 100), t0);
    p.handle(fails(2, Failure::Throttled), t0);
    p.handle(spilled(2), t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    assert_eq!(merges(&a), vec![(1, vec![2], true)]);
    let a = p.handle(Event::Merged { into: 1, ok: true }, at);
    assert!(has(&a, &Action::Delete { id: 2 }), "{a:?}");
    // Batch 1 is confirmed before 2's file is gone: its own file waits.
    let a = p.handle(Event::Uploaded { id: 1 }, at);
    assert!(!has(&a, &Action::Delete { id: 1 }), "{a:?}");
    let a = p.handle(Event::Deleted { id: 2, ok: true }, at);
    assert!(has(&a, &Action::Delete { id: 1 }), "{a:?}");
    let a = p.handle(Event::Deleted { id: 1, ok: true }, at);
    assert!(has(&a, &Action::Forget { id: 1 }));
    assert_eq!((p.disk(), p.accounts().shipped), (0, 20));
}

#[test]
fn a_merge_that_fails_changes_nothing_and_is_not_tried_again_at_once() {
    let t0 = Instant::now();
    let mut p = throttled_with_batch_1_on_disk(t0);
    p.handle(sealed(2, 100), t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    assert_eq!(merges(&p.handle(Event::Tick, at)), vec![(1, vec![2], true)]);
    let a = p.handle(Event::Merged { into: 1, ok: false }, at);
    assert!(merges(&a).is_empty(), "no tight loop: {a:?}");
    assert_eq!(uploads(&a), vec![1], "the probe goes as it is");
    assert_eq!((p.disk(), p.pending().records), (100, 20));
    // Later, once the back-off is over, the two are merged again.
    let mut a = p.handle(fails(1, Failure::Throttled), at);
    let mut now;
    let merged = loop {
        now = wake(&a).unwrap();
        a = p.handle(Event::Tick, now);
        if !merges(&a).is_empty() {
            break merges(&a);
        }
        if let [id] = uploads(&a)[..] {
            a = p.handle(fails(id, Failure::Throttled), now);
        }
    };
    assert!(now >= at + Duration::from_millis(100));
    let mut parts = vec![merged[0].0];
    parts.extend(&merged[0].1);
    parts.sort();
    assert_eq!(parts, vec![1, 2]);
}

#[test]
fn a_merge_with_no_disk_room_for_its_result_is_not_made() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_disk: 150,
        ..config(8 * MIB)
    });
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Throttled), t0);
    p.handle(spilled(1), t0);
    p.handle(sealed(2, 100), t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    assert!(merges(&a).is_empty());
    assert_eq!(uploads(&a), vec![1]);
}

#[test]
fn batches_s3_may_have_stored_are_never_merged() {
    let t0 = Instant::now();
    // Recovered (it may be stored, whatever its file says); a timeout; a restore: none is merged.
    let mut p = throttled_with_batch_1_on_disk(t0);
    p.handle(recovered(2, 100), t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    assert!(merges(&a).is_empty(), "{a:?}");

    let mut p = throttled_with_batch_1_on_disk(t0);
    p.handle(sealed(2, 100), t0);
    p.handle(Event::Restored { seed: 3 }, t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    assert!(merges(&p.handle(Event::Tick, at)).is_empty());

    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Throttled), t0);
    p.handle(spilled(1), t0);
    let at = wake(&p.handle(sealed(2, 100), t0)).unwrap();
    assert_eq!(merges(&p.handle(Event::Tick, at)), vec![(1, vec![2], true)]);
    p.handle(Event::Merged { into: 1, ok: true }, at);
    let a = p.handle(fails(1, Failure::Transient), at);
    let at2 = wake(&a).unwrap();
    p.handle(sealed(3, 100), at);
    assert!(merges(&p.handle(Event::Tick, at2)).is_empty());
}

#[test]
fn waiting_batches_in_memory_merge_in_memory() {
    let t0 = Instant::now();
    // No disk: batch 1 stays in memory after its failure.
    let mut p2 = Policy::new(Config {
        max_disk: 0,
        ..config(8 * MIB)
    });
    p2.handle(sealed(1, 100), t0);
    p2.handle(fails(1, Failure::Throttled), t0);
    p2.handle(sealed(2, 100), t0);
    let at = wake(&p2.handle(Event::Tick, ms(t0, 20))).unwrap();
    assert_eq!(
        merges(&p2.handle(Event::Tick, at)),
        vec![(1, vec![2], false)]
    );
    assert_eq!(
        p2.memory(),
        400,
        "the parts and the result while it is made"
    );
    p2.handle(Event::Merged { into: 1, ok: true }, at);
    assert_eq!(p2.memory(), 200);
}

/// Parquet objects (`merge_limit` 0, as configuration sets it for them) are never merged: two
/// files do not concatenate into one.
#[test]
fn a_merge_limit_of_zero_merges_nothing() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_disk: 0,
        merge_limit: 0,
        ..config(8 * MIB)
    });
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Throttled), t0);
    p.handle(sealed(2, 100), t0);
    let mut at = ms(t0, 20);
    for _ in 0..5 {
        let actions = p.handle(Event::Tick, at);
        assert!(merges(&actions).is_empty());
        at = wake(&actions).map_or(ms(at, 100), |w| w.max(ms(at, 1)));
    }
    assert_eq!(p.memory(), 200);
}

/// The throttled wait stops growing once half the disk is held, decided when the probe is due:
/// a wait of 15–30 s chosen while the disk was near empty would otherwise outlast the disk.
#[test]
fn a_long_throttled_wait_is_cut_short_once_half_the_disk_is_held() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_disk: 1000,
        max_in_flight: 1,
        ..config(MIB)
    });
    p.handle(sealed(1, 100), t0);
    // The next probe: the first wake-up that starts an upload.
    let probe = |p: &mut Policy, from: Instant| {
        let mut at = from;
        loop {
            at = wake(&p.handle(Event::Tick, at)).expect("a wake-up while throttled");
            if !uploads(&p.handle(Event::Tick, at)).is_empty() {
                return at;
            }
        }
    };
    let mut now = t0;
    // Five SlowDowns in a row: the wait has grown past 16 s.
    for _ in 0..5 {
        p.handle(fails(1, Failure::Throttled), now);
        p.handle(spilled(1), now);
        now = probe(&mut p, now);
    }
    p.handle(fails(1, Failure::Throttled), now);
    let waited = probe(&mut p.clone(), now) - now;
    assert!(waited >= Duration::from_secs(15), "{waited:?}");
    // Then the disk fills past half (failed batches go to disk): the probe is due 1–2 s after
    // the last SlowDown, not 15 s or more.
    for id in 2..=6 {
        p.handle(sealed(id, 100), now);
        p.handle(fails(id, Failure::Throttled), now);
    }
    for id in 2..=6 {
        p.handle(spilled(id), now);
    }
    assert!(p.disk() * 2 > 1000, "{}", p.disk());
    let at = probe(&mut p, now);
    assert!(at - now <= Duration::from_secs(2), "{:?}", at - now);
}

/// The process exits once the last flush is answered: it waits (until its deadline) for the
/// files being deleted or set aside, or a file of a shipped batch is left for the next process
/// to ship again and a rejected one is not aside. (Before: answered while they were in flight.)
#[test]
fn the_last_flush_waits_for_deletes_and_set_asides_in_flight() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(recovered(1, 100), t0);
    p.handle(recovered(2, 100), t0);
    let a = p.handle(Event::Uploaded { id: 1 }, t0);
    assert!(has(&a, &Action::Delete { id: 1 }), "{a:?}");
    let a = p.handle(fails(2, Failure::Unsendable), t0);
    assert!(has(&a, &Action::SetAside { id: 2 }), "{a:?}");
    let flush = Event::Flush {
        id: 9,
        deadline: ms(t0, 1500),
        last: true,
    };
    let answered = |a: &[Action]| has(a, &Action::AnswerFlush { id: 9 });
    assert!(
        !answered(&p.handle(flush.clone(), t0)),
        "nothing owned, but files in flight"
    );
    assert!(!answered(&p.handle(Event::Deleted { id: 1, ok: true }, t0)));
    assert!(answered(
        &p.handle(Event::SetAsideDone { id: 2, ok: true }, t0)
    ));
    // A delete that never reports does not hold the exit past the deadline.
    let mut p = policy(8 * MIB);
    p.handle(recovered(1, 100), t0);
    p.handle(Event::Uploaded { id: 1 }, t0);
    p.handle(flush.clone(), t0);
    assert!(answered(&p.handle(Event::Tick, ms(t0, 1500))));
}

/// A file that could not be renamed aside stays where it is, owned by nobody in this process and
/// recovered by the next: it keeps counting in the disk bound. (Before: forgotten at once, and a
/// restart found 153,671 bytes under a 151,552 bound, seed 69626.)
#[test]
fn a_file_that_cannot_be_set_aside_still_counts_in_the_disk_bound() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(recovered(1, 300), t0);
    p.handle(recovered(2, 200), t0);
    p.handle(fails(1, Failure::Unreadable), t0);
    p.handle(fails(2, Failure::Unreadable), t0);
    assert_eq!(p.disk(), 500, "counted until renamed");
    p.handle(Event::SetAsideDone { id: 1, ok: false }, t0);
    p.handle(Event::SetAsideDone { id: 2, ok: true }, t0);
    assert_eq!(p.disk(), 300, "the file left behind, not the one aside");
    // One written aside from memory takes nothing from the spill bound, whatever came of it.
    p.handle(sealed(3, 100), t0);
    p.handle(fails(3, Failure::Unsendable), t0);
    assert_eq!(p.disk(), 300);
    p.handle(Event::SetAsideDone { id: 3, ok: false }, t0);
    assert_eq!(p.disk(), 300);
}

/// A SnapStart init merges nothing until the restore: a merge in flight at the snapshot goes on in
/// every copy and may be written in one and fail in another, two contents under one key (seed
/// 22566). After the restore, batches sealed since merge as usual.
#[test]
fn a_snapstart_init_merges_nothing_until_the_restore() {
    let t0 = Instant::now();
    let mut p = throttled_with_batch_1_on_disk(t0);
    p.set_snapshot_pending();
    p.handle(sealed(2, 100), t0);
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    assert!(merges(&a).is_empty(), "{a:?}");
    assert_eq!(uploads(&a), vec![1], "the probe goes alone");
    p.handle(fails(1, Failure::Throttled), at);
    p.handle(Event::Restored { seed: 3 }, at);
    p.handle(sealed(3, 100), at);
    p.handle(sealed(4, 100), at);
    // Each probe is throttled again, until one carries a merge.
    let (mut a, mut now) = (Vec::new(), at);
    for _ in 0..10 {
        now = wake(&p.handle(Event::Tick, now)).expect("a probe is due");
        a = p.handle(Event::Tick, now);
        if !merges(&a).is_empty() {
            break;
        }
        for id in uploads(&a) {
            p.handle(fails(id, Failure::Throttled), now);
        }
    }
    let m = merges(&a);
    assert_eq!(m.len(), 1, "{a:?}");
    let (into, from, _) = &m[0];
    assert!(
        [*into].iter().chain(from).all(|id| *id >= 3),
        "only batches sealed since the restore: {m:?}"
    );
}

/// A disk that takes its time: bodies being written stay in memory, and count in the bound plus
/// two objects that everything held stays within. (Before: every batch past the bound went to a
/// spill at once and none was refused; memory grew with them.)
#[test]
fn bodies_being_spilled_count_in_the_memory_bound_so_a_slow_disk_cannot_grow_it() {
    let t0 = Instant::now();
    let mut p = policy(1000);
    let mut spilling = 0;
    for id in 1..=40 {
        let a = p.handle(sealed(id, 100), t0);
        spilling += spills(&a).len();
        assert!(p.memory() <= 1000 + 2 * 500, "{} after {id}", p.memory());
    }
    assert_eq!(spilling, 10, "as many as fit in the bound plus two objects");
    assert!(
        p.accounts().refused > 0,
        "no spill came back: the newest are refused"
    );
    assert!(p.accounts().balanced());
    // Once the disk catches up, what arrives is held again, not refused.
    for id in 1..=40 {
        p.handle(spilled(id), t0);
    }
    let refused = p.accounts().refused;
    let a = p.handle(sealed(41, 100), t0);
    assert!(!has(&a, &Action::Refuse { id: 41 }), "{a:?}");
    assert_eq!(p.accounts().refused, refused);
}
