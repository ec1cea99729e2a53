//! The ship path's decisions, event by event, with time passed in.

use super::*;

const MIB: u64 = 1024 * 1024;

fn policy(max_memory: u64) -> Policy {
    Policy::new(Config {
        max_memory,
        max_in_flight: 2,
        can_spill: true,
        seed: 7,
        merge_limit: MIB,
    })
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

fn fails(id: BatchId, failure: Failure) -> Event {
    Event::Failed { id, failure }
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

fn has(actions: &[Action], want: &Action) -> bool {
    actions.contains(want)
}

fn wake(actions: &[Action]) -> Option<Instant> {
    actions.iter().find_map(|a| match a {
        Action::WakeAt(t) => Some(*t),
        _ => None,
    })
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
    assert!(has(&a, &Action::Spill { id: 1 }), "failed once: to disk");
    assert!(has(
        &a,
        &Action::Report {
            failure: Failure::Transient
        }
    ));
    assert!(uploads(&a).is_empty());
    let at = wake(&a).expect("a wake-up for the retry");
    // Equal jitter over the first wait of 100 ms: between 50 and 100 ms.
    assert!(at >= ms(t0, 60) && at <= ms(t0, 110), "{:?}", at - t0);
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
    assert_eq!(uploads(&a), vec![2, 3], "healthy again: two at once");
}

#[test]
fn a_success_of_an_upload_started_before_a_failure_also_says_s3_is_back() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(fails(1, Failure::Transient), t0);
    assert_eq!(
        uploads(&p.handle(Event::Uploaded { id: 2 }, ms(t0, 1))),
        vec![1]
    );
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
fn past_the_memory_bound_the_newest_batches_spill_and_without_a_disk_are_refused() {
    let t0 = Instant::now();
    let mut p = policy(250);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    let a = p.handle(sealed(3, 100), t0);
    assert!(has(&a, &Action::Spill { id: 3 }), "{a:?}");
    p.handle(Event::Spilled { id: 3, ok: true }, t0);
    assert_eq!(p.memory(), 200);
    assert_eq!(p.owned(), (20, 10));
    // A disk that fails: memory may hold up to twice the bound, then the newest is refused.
    p.handle(sealed(4, 100), t0);
    p.handle(Event::Spilled { id: 4, ok: false }, t0);
    let a = p.handle(sealed(5, 100), t0);
    assert!(!has(&a, &Action::Refuse { id: 5 }), "400 of 500");
    let a = p.handle(sealed(6, 200), t0);
    assert!(has(&a, &Action::Refuse { id: 6 }), "{a:?}");
    assert_eq!(p.memory(), 400);
}

#[test]
fn a_batch_s3_rejects_is_given_up_after_three_attempts_and_blocks_nothing() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(sealed(2, 100), t0);
    p.handle(Event::Uploaded { id: 2 }, t0);
    let mut now = t0;
    for attempt in 1..=3 {
        let a = p.handle(fails(1, Failure::Rejected), now);
        if attempt < 3 {
            now = wake(&a).unwrap();
            assert_eq!(uploads(&p.handle(Event::Tick, now)), vec![1]);
        } else {
            assert!(has(&a, &Action::GiveUp { id: 1 }));
        }
    }
    assert_eq!(p.pending().batches, 0);
    assert_eq!(uploads(&p.handle(sealed(3, 100), now)), vec![3]);
}

#[test]
fn recovered_batches_go_first() {
    let t0 = Instant::now();
    let mut p = Policy::new(Config {
        max_memory: MIB,
        max_in_flight: 1,
        can_spill: true,
        seed: 1,
        merge_limit: MIB,
    });
    let a = p.handle(
        Event::Recovered {
            id: 1,
            records: 3,
            bytes: 10,
        },
        t0,
    );
    assert_eq!(uploads(&a), vec![1]);
    assert!(uploads(&p.handle(sealed(2, 10), t0)).is_empty());
    assert_eq!(p.owned(), (10, 3));
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
    p.handle(Event::Spilled { id: 1, ok: true }, t0);
    p.handle(Event::Spilled { id: 2, ok: true }, t0);
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
        has(&a, &Action::AnswerFlush { id: 9 }),
        "nothing left: answered at once"
    );
}

#[test]
fn a_refusal_to_the_end_is_probed_until_the_deadline_then_memory_is_spilled() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
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
    let mut spilled = Vec::new();
    let mut failed = vec![1, 2];
    loop {
        let mut a = Vec::new();
        for id in failed.drain(..) {
            a.extend(p.handle(fails(id, Failure::Refused(Refusal::Kms)), now));
        }
        spilled.extend(a.iter().filter_map(|x| match x {
            Action::Spill { id } => Some(*id),
            _ => None,
        }));
        let Some(at) = wake(&a) else { break };
        now = at;
        let a = p.handle(Event::Tick, now);
        let up = uploads(&a);
        if up.is_empty() {
            spilled.extend(a.iter().filter_map(|x| match x {
                Action::Spill { id } => Some(*id),
                _ => None,
            }));
            break;
        }
        probes += up.len();
        failed = up;
    }
    assert!(
        probes >= 3,
        "one probe at a time until the uploads' end: {probes}"
    );
    assert!(now <= ms(t0, 800), "no upload starts in the spill reserve");
    spilled.sort();
    spilled.dedup();
    assert_eq!(spilled, vec![1, 2], "on disk before the flush is answered");
}

#[test]
fn the_final_round_stops_uploading_before_its_deadline_to_spill() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Transient), t0);
    p.handle(Event::Spilled { id: 1, ok: true }, t0);
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
    // Neither answers before the uploads' end (deadline less the spill reserve).
    let a = p.handle(Event::Tick, ms(t0, 800));
    assert!(has(&a, &Action::Spill { id: 2 }), "{a:?}");
    let a = p.handle(Event::Spilled { id: 2, ok: true }, ms(t0, 810));
    assert!(has(&a, &Action::AnswerFlush { id: 1 }));
    // A late confirmation is still honoured.
    assert!(has(
        &p.handle(Event::Uploaded { id: 2 }, ms(t0, 900)),
        &Action::Forget { id: 2 }
    ));
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
    // The retry, started after the doubling, counts again.
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    // (Being spilled after its failure, it is not merged: it goes as it is.)
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
    assert_eq!(wake(&a), Some(ms(t0, 5200) + RELAX_EVERY));
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
fn while_throttled_waiting_batches_that_s3_never_stored_are_merged_into_one_request() {
    let t0 = Instant::now();
    let mut p = policy(8 * MIB);
    p.handle(sealed(1, 100), t0);
    p.handle(fails(1, Failure::Throttled), t0);
    p.handle(Event::Spilled { id: 1, ok: true }, t0);
    for id in 2..=4 {
        p.handle(sealed(id, 100), ms(t0, 10));
    }
    p.handle(sealed(5, 100), ms(t0, 10));
    let at = wake(&p.handle(Event::Tick, ms(t0, 20))).unwrap();
    let a = p.handle(Event::Tick, at);
    assert!(
        a.contains(&Action::Merge {
            into: 1,
            from: vec![2, 3, 4, 5]
        }),
        "{a:?}"
    );
    let a = p.handle(
        Event::Merged {
            into: 1,
            from: vec![2, 3, 4, 5],
            ok: true,
            records: 50,
            bytes: 500,
            on_disk: true,
        },
        at,
    );
    assert_eq!(
        p.pending(),
        Pending {
            batches: 1,
            records: 50
        }
    );
    assert_eq!(p.memory(), 0);
    assert!(
        uploads(&a).contains(&1) || a.iter().any(|x| matches!(x, Action::Upload { id: 1, .. }))
    );
    // Not merged: one that may be in S3 already.
    let mut q = policy(8 * MIB);
    q.handle(sealed(1, 100), t0);
    q.handle(fails(1, Failure::Throttled), t0);
    q.handle(Event::Spilled { id: 1, ok: true }, t0);
    q.handle(sealed(2, 100), t0);
    q.handle(sealed(3, 100), t0);
    let at = wake(&q.handle(Event::Tick, t0)).unwrap();
    let a = q.handle(Event::Tick, at);
    assert!(
        a.contains(&Action::Merge {
            into: 1,
            from: vec![2, 3]
        }),
        "{a:?}"
    );
    q.handle(
        Event::Merged {
            into: 1,
            from: vec![2, 3],
            ok: false,
            records: 0,
            bytes: 0,
            on_disk: false,
        },
        at,
    );
    let a = q.handle(fails(1, Failure::Transient), at);
    let at2 = wake(&a).unwrap();
    let a = q.handle(Event::Tick, at2);
    assert!(
        !a.iter().any(|x| matches!(x, Action::Merge { into: 1, .. })),
        "{a:?}"
    );
}
