//! Intake driven event by event: no actors, no sleeps; time is a value.

use super::*;
use crate::config::Thresholds;
use crate::encode::Compression;
use crate::lambda::records::parse_delivery;
use crate::object_key::KeyTemplate;
use std::num::NonZeroU64;
use std::sync::atomic::{AtomicU64, Ordering};

const SEC: Duration = Duration::from_secs(1);

fn settings(ship_at: ShipAt) -> Settings {
    Settings {
        thresholds: Thresholds {
            bytes: NonZeroU64::new(1 << 20).unwrap(),
            invokes: NonZeroU64::new(1).unwrap(),
            elapsed: Duration::from_secs(60),
        },
        max_object_bytes: 4 << 20,
        max_delay: Duration::from_secs(60),
        format: Default::default(),
        compression: Compression::None,
        key_template: KeyTemplate::parse("{env_id}/{uuid}").unwrap(),
        function_version: "$LATEST".into(),
        function_name: "f".into(),
        platform_records: true,
        managed_instances: false,
        ship_at,
        tick: crate::config::tick(Duration::from_secs(60), false),
        rules: Default::default(),
    }
}

/// Batch and environment ids 1, 2, 3, ... (per test thread the order is what the test does).
fn counted() -> Uuid {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    Uuid::from_u128(u128::from(NEXT.fetch_add(1, Ordering::Relaxed)))
}

struct Run {
    intake: Intake,
    now: Now,
}

impl Run {
    fn new(ship_at: ShipAt) -> Self {
        let now = Now::read();
        let intake = Intake::new(
            settings(ship_at),
            Uuid::from_u128(7),
            Arc::default(),
            1,
            now,
        )
        .with_ids(counted);
        Self { intake, now }
    }

    fn at(&mut self, later: Duration) -> &mut Self {
        self.now.mono += later;
        self.now.wall += later;
        self
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        self.intake.handle(event, self.now)
    }

    /// The actions, logging left out.
    fn does(&mut self, event: Event) -> Vec<Action> {
        let mut a = self.on(event);
        a.retain(|a| !matches!(a, Action::Say(_)));
        a
    }

    fn lines(&mut self, lines: &[&str]) -> Vec<Action> {
        self.does(Event::Records(records(lines)))
    }
}

fn records(lines: &[&str]) -> Vec<Record> {
    let body = bytes::Bytes::from(format!("[{}]", lines.join(",")));
    parse_delivery(&body, Utc::now()).unwrap().records
}

fn line(text: &str) -> String {
    format!(r#"{{"time":"2026-12-07T10:00:00.000Z","type":"function","record":"{text}"}}"#)
}

fn platform(kind: &str, request_id: &str) -> String {
    format!(
        r#"{{"time":"2026-12-07T10:00:00.000Z","type":"platform.{kind}","record":{{"requestId":"{request_id}"}}}}"#
    )
}

/// The records of a shipped batch, as text, and its token.
fn shipped(actions: &[Action]) -> Vec<(Vec<String>, Token)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Ship { sealing, then } => Some((
                sealing
                    .records
                    .iter()
                    .map(|r| String::from_utf8_lossy(r).into_owned())
                    .collect(),
                *then,
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn an_invoke_ships_what_came_before_it_under_the_template_key() {
    let mut run = Run::new(ShipAt::NextInvoke);
    let (a, b) = (line("a"), line("b"));
    assert!(run.lines(&[&a, &b]).is_empty(), "no threshold is met yet");
    let actions = run.does(Event::Invoke);
    assert_eq!(shipped(&actions), vec![(vec![a, b], Token::Plain)]);
    let Action::Ship { sealing, .. } = &actions[0] else {
        panic!("{actions:?}")
    };
    assert!(
        sealing.key.starts_with(&Uuid::from_u128(7).to_string()),
        "{}",
        sealing.key
    );
    assert_eq!(
        sealing.meta.first_record_time.as_deref(),
        Some("2026-12-07T10:00:00.000Z")
    );
}

#[test]
fn end_of_invoke_answers_after_the_runtime_done_and_once_its_batch_is_queued() {
    let mut run = Run::new(ShipAt::EndOfInvoke);
    run.does(Event::Invoke);
    let until = run.now.mono + 5 * SEC;
    let waiting = run.does(Event::AwaitRuntimeDone {
        request_id: "r1".into(),
        until,
    });
    assert!(waiting.is_empty(), "{waiting:?}");
    assert_eq!(run.intake.next_wake(), Some(until));

    let (x, done) = (line("x"), platform("runtimeDone", "r1"));
    let actions = run.lines(&[&x, &done]);
    assert_eq!(shipped(&actions), vec![(vec![x, done], Token::RuntimeDone)]);
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Answer(_))),
        "the answer waits for the batch to reach the shipper"
    );
    assert_eq!(run.intake.next_wake(), None);
    assert!(matches!(
        run.does(Event::Queued(Token::RuntimeDone))[..],
        [Action::Answer(Waiter::RuntimeDone)]
    ));
}

#[test]
fn a_runtime_done_that_never_comes_is_given_up_at_the_deadline() {
    let mut run = Run::new(ShipAt::EndOfInvoke);
    run.does(Event::Invoke);
    let until = run.now.mono + 2 * SEC;
    run.does(Event::AwaitRuntimeDone {
        request_id: "r1".into(),
        until,
    });
    let x = line("x");
    run.lines(&[&x, &platform("runtimeDone", "another")]);
    assert!(run.at(SEC).does(Event::Wake).is_empty(), "not yet");
    let actions = run.at(SEC).on(Event::Wake);
    assert!(actions.contains(&Action::Say(Note::NoRuntimeDone {
        request_id: "r1".into()
    })));
    assert_eq!(shipped(&actions)[0].1, Token::RuntimeDone);
    assert_eq!(run.intake.next_wake(), None);
}

#[test]
fn dropped_records_end_the_runtime_done_wait() {
    let mut run = Run::new(ShipAt::EndOfInvoke);
    run.does(Event::AwaitRuntimeDone {
        request_id: "r1".into(),
        until: run.now.mono + 5 * SEC,
    });
    let dropped = r#"{"time":"2026-12-07T10:00:00.000Z","type":"platform.logsDropped","record":{"droppedRecords":3,"droppedBytes":90,"reason":"x"}}"#;
    let actions = run.lines(&[dropped]);
    assert!(
        actions.contains(&Action::Answer(Waiter::RuntimeDone)),
        "{actions:?}"
    );
    assert_eq!(Counters::get(&run.intake.counters.lambda_dropped), 3);
}

#[test]
fn late_records_are_awaited_until_the_report_then_a_quiet_moment() {
    let mut run = Run::new(ShipAt::NextInvoke);
    run.lines(&[&platform("start", "r1")]);
    let until = run.now.mono + 10 * SEC;
    let quiet = Duration::from_millis(200);
    let none = run.does(Event::AwaitLateRecords {
        request_id: Some("r1".into()),
        all_open: false,
        quiet,
        until,
    });
    assert!(none.is_empty());
    assert_eq!(run.intake.next_wake(), Some(until), "no report yet");

    run.at(SEC).lines(&[&platform("report", "r1")]);
    let quiet_at = run.now.mono + quiet;
    assert_eq!(run.intake.next_wake(), Some(quiet_at));
    assert!(run.at(quiet / 2).lines(&[&line("late")]).is_empty());
    assert_eq!(
        run.intake.next_wake(),
        Some(run.now.mono + quiet),
        "a delivery starts the quiet moment again"
    );
    assert!(matches!(
        run.at(quiet).does(Event::Wake)[..],
        [Action::Answer(Waiter::LateRecords)]
    ));
    assert_eq!(run.intake.next_wake(), None);
}

#[test]
fn managed_instances_wait_for_the_report_of_every_started_request() {
    let mut run = Run::new(ShipAt::NextInvoke);
    run.lines(&[&platform("start", "a"), &platform("start", "b")]);
    run.does(Event::AwaitLateRecords {
        request_id: None,
        all_open: true,
        quiet: Duration::ZERO,
        until: run.now.mono + 10 * SEC,
    });
    assert!(run.lines(&[&platform("report", "a")]).is_empty());
    let actions = run.lines(&[&platform("report", "b")]);
    assert!(actions.contains(&Action::Answer(Waiter::LateRecords)));
}

#[test]
fn shutdown_flushes_once_its_batch_is_queued_ships_late_records_and_then_refuses() {
    let mut run = Run::new(ShipAt::NextInvoke);
    let (a, late) = (line("a"), line("late"));
    run.lines(&[&a]);
    let deadline = run.now.mono + 2 * SEC;
    let actions = run.does(Event::Shutdown { deadline });
    assert_eq!(shipped(&actions), vec![(vec![a], Token::Plain)]);
    assert!(!actions.iter().any(|a| matches!(a, Action::Flush { .. })));
    assert_eq!(run.intake.next_wake(), Some(deadline));

    assert_eq!(
        run.does(Event::Queued(Token::Plain)),
        vec![Action::Flush { deadline }]
    );
    // A record while the round runs: its own batch, and a second round for it.
    let actions = run.lines(&[&late]);
    assert_eq!(shipped(&actions), vec![(vec![late], Token::Plain)]);
    assert!(
        run.does(Event::Flushed).is_empty(),
        "the late batch is not queued yet"
    );
    assert_eq!(
        run.does(Event::Queued(Token::Plain)),
        vec![Action::Flush { deadline }]
    );
    assert_eq!(run.does(Event::Flushed), vec![Action::Close]);
    assert_eq!(run.lines(&[&line("after")]), vec![Action::Refuse]);
    assert_eq!(Counters::get(&run.intake.counters.late_refused), 1);
}

#[test]
fn records_too_close_to_the_deadline_are_refused_and_the_deadline_flushes_anyway() {
    let mut run = Run::new(ShipAt::NextInvoke);
    run.lines(&[&line("a")]);
    let deadline = run.now.mono + SEC;
    run.does(Event::Shutdown { deadline });
    assert_eq!(
        run.at(Duration::from_millis(800))
            .lines(&[&line("too late")]),
        vec![Action::Refuse]
    );
    // SHUTDOWN's batch never reached the shipper (a stuck encoder): the round starts anyway.
    assert_eq!(
        run.at(Duration::from_millis(200)).does(Event::Wake),
        vec![Action::Flush { deadline }]
    );
    assert_eq!(run.does(Event::Flushed), vec![Action::Close]);
}

#[test]
fn a_restore_seals_the_snapshot_under_a_shared_key_and_tells_the_shipper_once_queued() {
    let mut run = Run::new(ShipAt::NextInvoke);
    let held = line("held");
    run.lines(&[&held]);
    // The wall clock jumps by an hour while the monotonic clock moves 100 ms.
    run.now.wall += Duration::from_secs(3600);
    let actions = run.at(Duration::from_millis(100)).on(Event::Tick);
    let Some(Action::Ship { sealing, then }) =
        actions.iter().find(|a| matches!(a, Action::Ship { .. }))
    else {
        panic!("{actions:?}")
    };
    assert_eq!(*then, Token::Restore);
    let shared = snapshot::batch_id_before_snapshot(Uuid::from_u128(7), 0);
    assert_eq!(
        sealing.key,
        format!("{}/{}", Uuid::from_u128(7), shared),
        "every copy derives this key"
    );
    assert!(!actions.contains(&Action::TellRestored));
    assert_ne!(
        run.intake.environment_id(),
        Uuid::from_u128(7),
        "later keys are this copy's own"
    );
    assert_eq!(
        run.does(Event::Queued(Token::Restore)),
        vec![Action::TellRestored]
    );
    // platform.restoreStart of the same restore is not a second one.
    let actions = run.lines(&[
        r#"{"time":"2026-12-07T11:00:00.000Z","type":"platform.restoreStart","record":{}}"#,
    ]);
    assert!(!actions.contains(&Action::TellRestored), "{actions:?}");
    assert_eq!(Counters::get(&run.intake.counters.restores), 1);
}

#[test]
fn own_metrics_lines_are_not_shipped() {
    let mut run = Run::new(ShipAt::NextInvoke);
    let emf = crate::metrics::emf_line("f", 0, &[("RecordsShipped", 1.0, "Count")]);
    let record = format!(
        r#"{{"time":"2026-12-07T10:00:00.000Z","type":"extension","record":{}}}"#,
        serde_json::to_string(&emf).unwrap()
    );
    let x = line("x");
    run.lines(&[&record, &x]);
    assert_eq!(
        shipped(&run.does(Event::Invoke)),
        vec![(vec![x], Token::Plain)]
    );
    assert_eq!(Counters::get(&run.intake.counters.received), 1);
}

#[test]
fn the_final_round_waits_for_a_batch_a_ship_point_sealed_just_before_shutdown() {
    let mut run = Run::new(ShipAt::NextInvoke);
    let a = line("a");
    run.lines(&[&a]);
    assert_eq!(
        shipped(&run.does(Event::Invoke)),
        vec![(vec![a], Token::Plain)]
    );
    let deadline = run.now.mono + 2 * SEC;
    // Nothing left to seal, but the invoke's batch is still on its way to the shipper: a round
    // now would find nothing and close, and the process would exit with the batch unshipped.
    assert!(run.does(Event::Shutdown { deadline }).is_empty());
    assert_eq!(run.intake.next_wake(), Some(deadline));
    assert_eq!(
        run.does(Event::Queued(Token::Plain)),
        vec![Action::Flush { deadline }]
    );
    assert_eq!(run.does(Event::Flushed), vec![Action::Close]);
}

#[test]
fn a_wake_up_is_no_ship_point() {
    let mut run = Run::new(ShipAt::NextInvoke);
    run.lines(&[&line("a")]);
    assert!(
        run.at(Duration::from_secs(120))
            .does(Event::Wake)
            .is_empty(),
        "the time threshold is checked by the tick"
    );
    assert_eq!(shipped(&run.does(Event::Tick)).len(), 1);
}

#[test]
fn the_final_round_starts_when_the_last_batch_in_transit_is_a_runtime_done_one() {
    let mut run = Run::new(ShipAt::EndOfInvoke);
    run.does(Event::Invoke);
    run.does(Event::AwaitRuntimeDone {
        request_id: "r1".into(),
        until: run.now.mono + 5 * SEC,
    });
    run.lines(&[&line("x"), &platform("runtimeDone", "r1")]);
    let deadline = run.now.mono + 2 * SEC;
    assert!(run.does(Event::Shutdown { deadline }).is_empty());
    assert_eq!(
        run.does(Event::Queued(Token::RuntimeDone)),
        vec![
            Action::Answer(Waiter::RuntimeDone),
            Action::Flush { deadline }
        ]
    );
}

#[test]
fn records_the_rules_drop_still_take_their_part_and_are_counted_not_buffered() {
    let rules = crate::rules::Rules::parse(
        r#"[{"type":"exclude_platform_types","name":"quiet","record_types":["platform.start","platform.report"]},
            {"type":"exclude_at_match","name":"health","pattern":"GET /health"},
            {"type":"mask_sequences","name":"keys","pattern":"AKIA[0-9A-Z]{16}","replace_placeholder":"[KEY]"}]"#,
    )
    .unwrap();
    let counters = Arc::new(Counters::with_rules(rules.names()));
    let mut settings = settings(ShipAt::NextInvoke);
    settings.rules = rules;
    let now = Now::read();
    let mut run = Run {
        intake: Intake::new(settings, Uuid::from_u128(7), counters.clone(), 1, now)
            .with_ids(counted),
        now,
    };
    run.lines(&[
        &platform("start", "r1"),
        &line("GET /health"),
        &line("key AKIAIOSFODNN7EXAMPLE"),
    ]);
    // The report is not shipped, yet it is what SHUTDOWN's wait for late records hears.
    run.does(Event::AwaitLateRecords {
        request_id: Some("r1".into()),
        all_open: false,
        quiet: Duration::ZERO,
        until: run.now.mono + 10 * SEC,
    });
    let answered = run.lines(&[&platform("report", "r1")]);
    assert!(answered.contains(&Action::Answer(Waiter::LateRecords)));
    let actions = run.does(Event::Invoke);
    assert_eq!(
        shipped(&actions),
        vec![(vec![line("key [KEY]")], Token::Plain)]
    );
    let get = Counters::get;
    assert_eq!((get(&counters.received), get(&counters.filtered)), (4, 3));
    let per_rule: Vec<(u64, u64)> = counters
        .rules
        .iter()
        .map(|r| (get(&r.excluded), get(&r.masked)))
        .collect();
    assert_eq!(per_rule, [(2, 0), (1, 0), (0, 1)]);
}

#[test]
fn the_bytes_threshold_counts_what_the_rules_leave() {
    let rules = crate::rules::Rules::parse(
        r#"[{"type":"exclude_at_match","name":"noise","pattern":"noise"},
            {"type":"mask_sequences","name":"keys","pattern":"AKIA[0-9A-Z]{16}","replace_placeholder":"K"}]"#,
    )
    .unwrap();
    let counters = Arc::new(Counters::with_rules(rules.names()));
    let mut settings = settings(ShipAt::NextInvoke);
    settings.rules = rules;
    settings.thresholds.bytes = NonZeroU64::new(300).unwrap();
    settings.thresholds.invokes = NonZeroU64::new(1000).unwrap();
    let now = Now::read();
    let mut run = Run {
        intake: Intake::new(settings, Uuid::from_u128(7), counters.clone(), 1, now)
            .with_ids(counted),
        now,
    };
    let noise = line(&format!("noise {}", "x".repeat(200)));
    let key = line("AKIAIOSFODNN7EXAMPLE");
    // 2 × 270 bytes arrive, 70 are kept: below the threshold, no ship at the tick.
    assert!(run.lines(&[&noise, &noise, &key]).is_empty());
    let masked = line("K");
    assert_eq!(
        Counters::get(&counters.buffered),
        masked.len() as u64 + 1,
        "held: what the rules left"
    );
    assert!(run.at(SEC).does(Event::Tick).is_empty());
    // Kept lines past 300 bytes make the batch due at the next tick.
    let kept = line(&"k".repeat(200));
    run.lines(&[&kept, &noise]);
    let actions = run.at(SEC).does(Event::Tick);
    assert_eq!(shipped(&actions), vec![(vec![masked, kept], Token::Plain)]);
}
