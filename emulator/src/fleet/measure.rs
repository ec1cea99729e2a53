//! The fleet's figures, measured once every environment has ended: the verdict over all of them,
//! freshness, PUT/s and SlowDown over time and per prefix, and the costs per environment.

use super::*;

pub(super) fn measure(
    cfg: &FleetConfig,
    s3: &S3Endpoint,
    began: Instant,
    outcomes: Vec<Outcome>,
) -> FleetReport {
    let requests = s3.requests();
    let objects = s3.objects(&cfg.bucket);
    let writes = s3.writes();
    let extensions: Vec<ExtensionReport> =
        outcomes.iter().flat_map(|o| o.extensions.clone()).collect();
    let verdict = fleet_verdict(cfg, &outcomes, &extensions, (&objects, &writes, &requests));
    let arrivals = arrivals(s3, &outcomes, &objects, &writes);
    let freshness: Vec<f64> = arrivals.iter().map(|(_, f)| *f).collect();
    // The time series, from the run's start.
    let offset_ms = crate::clock::ms(began.saturating_duration_since(s3.started()));
    let step = crate::clock::ms(cfg.interval);
    // Environments alive at the end live out their lifetime: the series covers the whole run.
    let slots = ((crate::clock::ms(began.elapsed()) / step).ceil() as usize).max(1) + 1;
    let slot_of = |ms: f64| (((ms - offset_ms).max(0.0) / step) as usize).min(slots - 1);
    let warmup_ms = offset_ms + crate::clock::ms(cfg.warmup);
    let steady_end_ms = offset_ms + crate::clock::ms(cfg.duration);
    let PutCounts {
        puts,
        slow,
        per_prefix,
        totals,
        puts_after,
        slow_after,
    } = count_puts(&requests, slots, slot_of, warmup_ms..steady_end_ms);
    let mut fresh_by_slot: Vec<Vec<f64>> = vec![Vec::new(); slots];
    for (at, f) in &arrivals {
        fresh_by_slot[slot_of(*at)].push(*f);
    }
    let series = series(
        began,
        step,
        &outcomes,
        (&puts, &slow, &per_prefix),
        &fresh_by_slot,
    );
    let mut top: Vec<(String, usize)> = totals.into_iter().collect();
    top.sort_by_key(|p| std::cmp::Reverse(p.1));
    let prefixes = top.len();
    top.truncate(5);
    let total_puts: usize = puts.iter().sum();
    let total_slow: usize = slow.iter().sum();
    let ratio = |s: usize, p: usize| if p == 0 { 0.0 } else { s as f64 / p as f64 };
    FleetReport {
        environments_started: outcomes.len(),
        duration_s: began.elapsed().as_secs_f64(),
        prefix_write_rate: cfg.prefix_write_rate,
        puts: total_puts,
        slowdowns: total_slow,
        slowdown_ratio: ratio(total_slow, total_puts),
        slowdown_ratio_after_warmup: ratio(slow_after, puts_after),
        max_prefix_puts_per_s: series
            .iter()
            .map(|p| p.max_prefix_puts_per_s)
            .fold(0.0, f64::max),
        prefixes,
        top_prefixes: top,
        freshness_ms: Stats::of(&freshness),
        object_bytes: Stats::of(
            &objects
                .iter()
                .map(|o| o.body.len() as f64)
                .collect::<Vec<_>>(),
        ),
        verdict,
        cpu_ms_per_environment: Stats::of(
            &extensions
                .iter()
                .filter_map(|e| e.cpu_ms)
                .collect::<Vec<_>>(),
        ),
        peak_rss_kb_per_environment: Stats::of(
            &extensions
                .iter()
                .filter_map(|e| e.peak_rss_kb.map(|k| k as f64))
                .collect::<Vec<_>>(),
        ),
        emulator_cpu_ms: crate::process::own_cpu_ms(),
        emulator_peak_rss_kb: crate::process::hwm_kb(std::process::id() as i32),
        series,
    }
}

/// The verdict over every environment's lines, deliveries, invokes and extensions, and the one S3.
fn fleet_verdict(
    cfg: &FleetConfig,
    outcomes: &[Outcome],
    extensions: &[ExtensionReport],
    (objects, writes, requests): (&[StoredObject], &[WriteRecord], &[S3RequestRecord]),
) -> Verdict {
    let lines: Vec<String> = outcomes
        .iter()
        .flat_map(|o| o.function_lines.clone())
        .collect();
    let subscribers: Vec<_> = outcomes
        .iter()
        .flat_map(|o| o.subscribers.clone())
        .collect();
    let invokes: Vec<InvokeRecord> = outcomes.iter().flat_map(|o| o.invokes.clone()).collect();
    Verdict::of(
        &verdict::Inputs {
            run_id: "",
            function_lines: &lines,
            subscribers: &subscribers,
            objects,
            writes,
            requests,
            invocations: &invocation_summary(&invokes),
            extensions,
        },
        &cfg.expect,
    )
}

/// Freshness: for each line in S3, (its object's first write, ms since S3 started; the time from
/// the line's emission to that write, ms).
fn arrivals(
    s3: &S3Endpoint,
    outcomes: &[Outcome],
    objects: &[StoredObject],
    writes: &[WriteRecord],
) -> Vec<(f64, f64)> {
    let s3_began = s3.started();
    let first_write: HashMap<&str, f64> = writes
        .iter()
        .rev()
        .map(|w| (w.key.as_str(), w.at_ms))
        .collect();
    let emitted: HashMap<&String, Instant> = outcomes
        .iter()
        .flat_map(|o| o.emitted_at.iter().map(|(k, v)| (k, *v)))
        .collect();
    let mut arrivals: Vec<(f64, f64)> = Vec::new();
    for o in objects {
        let Some(at) = first_write.get(o.key.as_str()) else {
            continue;
        };
        let text = verdict::objects::decode(&o.body, o.content_encoding.as_deref()).text;
        for m in crate::markers::find(&text, "") {
            if let Some(t) = emitted.get(&m.to_string()) {
                let emitted_ms = crate::clock::ms(t.saturating_duration_since(s3_began));
                arrivals.push((*at, (at - emitted_ms).max(0.0)));
            }
        }
    }
    arrivals
}

/// Object PUTs (and SlowDowns among them) per slot, per prefix per slot, per prefix in all, and in
/// the `steady` window (after the warm-up, before the environments wind down).
struct PutCounts {
    puts: Vec<usize>,
    slow: Vec<usize>,
    per_prefix: Vec<HashMap<String, usize>>,
    totals: BTreeMap<String, usize>,
    puts_after: usize,
    slow_after: usize,
}

fn count_puts(
    requests: &[S3RequestRecord],
    slots: usize,
    slot_of: impl Fn(f64) -> usize,
    steady: std::ops::Range<f64>,
) -> PutCounts {
    let mut puts = vec![0usize; slots];
    let mut slow = vec![0usize; slots];
    let mut per_prefix: Vec<HashMap<String, usize>> = vec![HashMap::new(); slots];
    let mut totals: BTreeMap<String, usize> = BTreeMap::new();
    let (mut puts_after, mut slow_after) = (0usize, 0usize);
    for r in requests
        .iter()
        .filter(|r| classify(&r.operation).object_put())
    {
        let i = slot_of(r.at_ms);
        puts[i] += 1;
        let throttled = r.error_code.as_deref() == Some("SlowDown");
        slow[i] += usize::from(throttled);
        if steady.contains(&r.at_ms) {
            puts_after += 1;
            slow_after += usize::from(throttled);
        }
        let p = prefix_of(r.key.as_deref().unwrap_or("")).to_string();
        *per_prefix[i].entry(p.clone()).or_default() += 1;
        *totals.entry(p).or_default() += 1;
    }
    PutCounts {
        puts,
        slow,
        per_prefix,
        totals,
        puts_after,
        slow_after,
    }
}

/// The time series, one point per `step` ms from `began`: environments alive, PUT/s (all, and the
/// busiest prefix's), SlowDown/s, and the freshness of what arrived in the slot.
fn series(
    began: Instant,
    step: f64,
    outcomes: &[Outcome],
    (puts, slow, per_prefix): (&[usize], &[usize], &[HashMap<String, usize>]),
    fresh_by_slot: &[Vec<f64>],
) -> Vec<Point> {
    let per_s = 1000.0 / step;
    (0..puts.len())
        .map(|i| {
            let t = began + Duration::from_secs_f64(i as f64 * step / 1000.0);
            let f = Stats::of(&fresh_by_slot[i]);
            Point {
                t_s: i as f64 * step / 1000.0,
                active_environments: outcomes
                    .iter()
                    .filter(|o| o.started <= t && o.ended > t)
                    .count(),
                puts_per_s: puts[i] as f64 * per_s,
                max_prefix_puts_per_s: per_prefix[i].values().copied().max().unwrap_or(0) as f64
                    * per_s,
                slowdowns_per_s: slow[i] as f64 * per_s,
                freshness_p50_ms: (f.count > 0).then_some(f.p50),
                freshness_p99_ms: (f.count > 0).then_some(f.p99),
            }
        })
        .collect()
}
