use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    m.entry(ENV_S3_BUCKET.into())
        .or_insert_with(|| "my-logs".into());
    m
}

fn parse(pairs: &[(&str, &str)]) -> Parsed {
    Config::from_env(&env(pairs)).expect("valid configuration")
}

#[test]
fn defaults_match_the_go_sample() {
    let p = parse(&[(ENV_FUNCTION_NAME, "My-Function")]);
    let c = p.config;
    assert_eq!(c.s3.bucket.as_str(), "my-logs");
    assert_eq!(c.intake.thresholds.bytes.get(), 4096);
    assert_eq!(c.intake.thresholds.invokes.get(), 10);
    assert_eq!(c.intake.thresholds.elapsed, Duration::from_millis(10_000));
    assert_eq!(
        c.subscription.types,
        vec![LogType::Platform, LogType::Function]
    );
    assert_eq!(c.subscription.port, 1234);
    assert!(!c.s3.force_path_style);
    assert!(c.s3.create_bucket);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.objects.function_name, "my-function");
    assert!(p.warnings.is_empty());
}

#[test]
fn bucket_is_required_and_must_follow_the_naming_rules() {
    let mut m = env(&[]);
    m.remove(ENV_S3_BUCKET);
    assert_eq!(
        Config::from_env(&m).unwrap_err(),
        ConfigError::MissingBucket
    );
    m.insert(ENV_S3_BUCKET.into(), String::new());
    assert_eq!(
        Config::from_env(&m).unwrap_err(),
        ConfigError::MissingBucket
    );
    for (bad, why) in [
        ("ab", "3 to 63"),
        ("My_Bucket", "lower-case"),
        ("-logs", "begin and end"),
        ("logs..x", "adjacent dots"),
        ("192.168.1.1", "IP address"),
        ("xn--logs", "xn--"),
        ("logs-s3alias", "-s3alias"),
    ] {
        let e = Config::from_env(&env(&[(ENV_S3_BUCKET, bad)])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with(&format!(
                "{ENV_S3_BUCKET} {bad:?} is not a valid S3 bucket name"
            )),
            "{msg}"
        );
        assert!(msg.contains(why), "{msg}");
    }
    assert!(Config::from_env(&env(&[(ENV_S3_BUCKET, "logs.example-1")])).is_ok());
}

#[test]
fn numbers_that_do_not_parse_or_are_zero_fall_back_with_one_warning_each() {
    for bad in ["", "abc", "10,000", "1e3", "0", "-5", " 5"] {
        let p = parse(&[
            (ENV_SHIP_RATE_BYTES, bad),
            (ENV_SHIP_RATE_INVOKES, bad),
            (ENV_SHIP_RATE_MILLISECONDS, bad),
        ]);
        assert_eq!(p.config.intake.thresholds.bytes.get(), 4096);
        assert_eq!(p.config.intake.thresholds.invokes.get(), 10);
        assert_eq!(p.config.intake.thresholds.elapsed, Duration::from_secs(10));
        assert_eq!(
            p.warnings[0],
            format!(
                "{ENV_SHIP_RATE_BYTES} must be a whole number of at least 1, got {bad:?}; using the default 4096"
            )
        );
        assert_eq!(p.warnings.len(), 3);
    }
    let p = parse(&[
        (ENV_SHIP_RATE_BYTES, "+2048"),
        (ENV_SHIP_RATE_INVOKES, "1"),
        (ENV_SHIP_RATE_MILLISECONDS, "250"),
    ]);
    assert_eq!(
        p.config.intake.thresholds.bytes.get(),
        2048,
        "a leading + is accepted, as Go's ParseInt does"
    );
    assert_eq!(p.config.intake.thresholds.invokes.get(), 1);
    assert_eq!(
        p.config.intake.thresholds.elapsed,
        Duration::from_millis(250)
    );
    assert!(p.warnings.is_empty());
}

#[test]
fn bytes_rate_above_100_mib_is_clamped_with_a_warning() {
    let p = parse(&[(ENV_SHIP_RATE_BYTES, "200000000")]);
    assert_eq!(p.config.intake.thresholds.bytes.get(), 104_857_600);
    assert_eq!(p.warnings.len(), 1);
    assert!(p.warnings[0].contains("above the maximum"));
}

#[test]
fn log_types_fall_back_drop_unknowns_and_duplicates() {
    let d = vec![LogType::Platform, LogType::Function];
    for (raw, want, warning) in [
        ("not json", d.clone(), Some("is not valid JSON")),
        ("[]", d.clone(), Some("is an empty array")),
        (
            "{\"a\":1}",
            d.clone(),
            Some("must be a JSON array of strings"),
        ),
        (
            "\"platform\"",
            d.clone(),
            Some("must be a JSON array of strings"),
        ),
        ("[1,2]", d.clone(), Some("ignoring them")),
        (
            "[\"platform\",\"bogus\"]",
            vec![LogType::Platform],
            Some("ignoring them"),
        ),
        (
            "[\"platform\",\"platform\"]",
            vec![LogType::Platform],
            Some("more than once"),
        ),
        (
            "[\"extension\",\"function\",\"platform\"]",
            vec![LogType::Extension, LogType::Function, LogType::Platform],
            None,
        ),
    ] {
        let p = parse(&[(ENV_LOG_TYPES, raw)]);
        assert_eq!(p.config.subscription.types, want, "{raw}");
        match warning {
            Some(w) => assert!(
                p.warnings
                    .iter()
                    .any(|x| x.contains(w) && x.starts_with(ENV_LOG_TYPES)),
                "{raw}: {:?}",
                p.warnings
            ),
            None => assert!(p.warnings.is_empty()),
        }
    }
}

#[test]
fn listener_port_range_and_the_reserved_port() {
    assert_eq!(
        parse(&[(ENV_LISTENER_PORT, "8080")])
            .config
            .subscription
            .port,
        8080
    );
    for bad in ["0", "9001", "65536", "http"] {
        let p = parse(&[(ENV_LISTENER_PORT, bad)]);
        assert_eq!(p.config.subscription.port, 1234);
        assert!(
            p.warnings[0].contains("other than 9001"),
            "{:?}",
            p.warnings
        );
    }
}

#[test]
fn path_style_defaults_to_true_with_a_custom_endpoint_and_booleans_are_strict() {
    assert!(
        parse(&[(ENV_ENDPOINT_URL_S3, "http://127.0.0.1:9000")])
            .config
            .s3
            .force_path_style
    );
    assert!(
        parse(&[(ENV_ENDPOINT_URL, "http://127.0.0.1:9000")])
            .config
            .s3
            .force_path_style
    );
    assert!(
        !parse(&[
            (ENV_ENDPOINT_URL_S3, "http://x"),
            (ENV_S3_FORCE_PATH_STYLE, "FALSE")
        ])
        .config
        .s3
        .force_path_style
    );
    assert!(
        !parse(&[(ENV_CREATE_BUCKET, "false")])
            .config
            .s3
            .create_bucket
    );
    let e = Config::from_env(&env(&[(ENV_CREATE_BUCKET, "yes")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{ENV_CREATE_BUCKET} must be \"true\" or \"false\", got \"yes\"")
    );
}

#[test]
fn log_level_values_and_fallback() {
    assert_eq!(
        parse(&[(ENV_LOG_LEVEL, "DEBUG")]).config.log_level,
        LogLevel::Debug
    );
    assert_eq!(
        parse(&[(ENV_LOG_LEVEL, "warn")]).config.log_level,
        LogLevel::Warn
    );
    assert_eq!(
        parse(&[(ENV_LOG_LEVEL, "error")]).config.log_level,
        LogLevel::Error
    );
    let p = parse(&[(ENV_LOG_LEVEL, "loud")]);
    assert_eq!(p.config.log_level, LogLevel::Info);
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn api_defaults_to_telemetry_and_logs_is_refused_on_managed_instances() {
    assert_eq!(
        parse(&[]).config.subscription.api,
        LogsApi::Telemetry {
            managed_instances: false
        }
    );
    assert_eq!(
        parse(&[(ENV_API, "LOGS")]).config.subscription.api,
        LogsApi::Logs
    );
    let mi = parse(&[
        (ENV_API, "logs"),
        (ENV_INITIALIZATION_TYPE, "lambda-managed-instances"),
    ]);
    assert_eq!(
        mi.config.subscription.api,
        LogsApi::Telemetry {
            managed_instances: true
        }
    );
    assert!(mi.config.intake.managed_instances);
    assert!(mi.warnings[0].contains("Managed Instances have no Logs API"));
    assert!(
        !parse(&[(ENV_INITIALIZATION_TYPE, "on-demand")])
            .config
            .intake
            .managed_instances
    );
    let e = Config::from_env(&env(&[(ENV_API, "kinesis")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{ENV_API} must be \"telemetry\" or \"logs\", got \"kinesis\"")
    );
}

#[test]
fn buffering_is_clamped_to_aws_ranges_with_a_warning() {
    let d = parse(&[]).config.subscription.buffering;
    assert_eq!(
        d,
        Buffering {
            max_items: 1000,
            max_bytes: 262_144,
            timeout_ms: 25
        }
    );
    let p = parse(&[
        (ENV_BUFFER_MAX_ITEMS, "50000"),
        (ENV_BUFFER_MAX_BYTES, "1"),
        (ENV_BUFFER_TIMEOUT_MS, "100"),
    ]);
    assert_eq!(
        p.config.subscription.buffering,
        Buffering {
            max_items: 10_000,
            max_bytes: 262_144,
            timeout_ms: 100
        }
    );
    assert_eq!(
        p.warnings,
        vec![
            format!("{ENV_BUFFER_MAX_ITEMS} 50000 is above the maximum of 10000; using 10000"),
            format!("{ENV_BUFFER_MAX_BYTES} 1 is below the minimum of 262144; using 262144"),
        ]
    );
    let p = parse(&[(ENV_BUFFER_TIMEOUT_MS, "soon")]);
    assert_eq!(p.config.subscription.buffering.timeout_ms, 25);
    assert!(p.warnings[0].starts_with(&format!(
        "{ENV_BUFFER_TIMEOUT_MS} must be a whole number from 25 to 30000"
    )));
}

#[test]
fn memory_and_spill_bounds_default_from_the_function_memory() {
    let c = parse(&[]).config;
    assert_eq!(
        c.shipper.max_memory,
        8 * 1024 * 1024,
        "128 MB function by default"
    );
    assert_eq!(
        c.shipper.spill_dir,
        std::path::PathBuf::from("/tmp/adaptive-batching-extension")
    );
    assert_eq!(c.shipper.spill_max_bytes, 128 * 1024 * 1024);
    assert_eq!(
        parse(&[(ENV_TMPDIR, "/run/env-7")])
            .config
            .shipper
            .spill_dir,
        std::path::PathBuf::from("/run/env-7/adaptive-batching-extension"),
        "an emulated environment's own /tmp"
    );
    assert_eq!(
        parse(&[(ENV_MEMORY_SIZE, "1024")])
            .config
            .shipper
            .max_memory,
        64 * 1024 * 1024
    );
    assert_eq!(
        parse(&[(ENV_MEMORY_SIZE, "10240")])
            .config
            .shipper
            .max_memory,
        64 * 1024 * 1024,
        "capped"
    );
    let p = parse(&[
        (ENV_MAX_BUFFER_BYTES, "5000"),
        (ENV_SPILL_MAX_BYTES, "0"),
        (ENV_SPILL_DIR, "/var/spill"),
    ]);
    assert_eq!(p.config.shipper.max_memory, 5000);
    assert_eq!(p.config.shipper.spill_max_bytes, 128 * 1024 * 1024);
    assert_eq!(
        p.config.shipper.spill_dir,
        std::path::PathBuf::from("/var/spill")
    );
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn ship_at_defaults_to_next_invoke_and_end_of_invoke_needs_runtime_done() {
    assert_eq!(parse(&[]).config.intake.ship_at, ShipAt::NextInvoke);
    let p = parse(&[(ENV_SHIP_AT, "End-Of-Invoke")]);
    assert_eq!(p.config.intake.ship_at, ShipAt::EndOfInvoke);
    assert!(p.warnings.is_empty());
    assert_eq!(
        Config::from_env(&env(&[(ENV_SHIP_AT, "later")])).unwrap_err(),
        ConfigError::Invalid {
            var: ENV_SHIP_AT,
            value: "later".into(),
            accepted: "one of \"next-invoke\", \"end-of-invoke\"".into()
        }
    );
    let p = parse(&[
        (ENV_SHIP_AT, "end-of-invoke"),
        (ENV_LOG_TYPES, r#"["function"]"#),
    ]);
    assert_eq!(p.config.intake.ship_at, ShipAt::NextInvoke);
    assert_eq!(
        p.warnings,
        vec![
            "ADAPTIVE_BATCHING_EXTENSION_SHIP_AT \"end-of-invoke\" needs \"platform\" in ADAPTIVE_BATCHING_EXTENSION_LOG_TYPES (it waits for platform.runtimeDone); using \"next-invoke\""
        ]
    );
    let p = parse(&[
        (ENV_SHIP_AT, "end-of-invoke"),
        (ENV_INITIALIZATION_TYPE, MANAGED_INSTANCES),
    ]);
    assert_eq!(p.config.intake.ship_at, ShipAt::NextInvoke);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
}

#[test]
fn the_economy_profile_fills_what_is_not_set_and_explicit_variables_win() {
    let c = parse(&[(ENV_PROFILE, "Economy")]).config;
    assert_eq!(c.profile, Some("economy"));
    assert_eq!(c.intake.thresholds.bytes.get(), 1_048_576);
    assert_eq!(c.intake.thresholds.invokes.get(), 100_000);
    assert_eq!(c.intake.thresholds.elapsed, Duration::from_millis(60_000));
    assert_eq!(c.intake.compression, crate::encode::Compression::Gzip(6));
    assert_eq!(c.intake.max_delay, Duration::from_millis(180_000));
    let c = parse(&[
        (ENV_PROFILE, "economy"),
        (ENV_SHIP_RATE_BYTES, "65536"),
        (ENV_COMPRESSION, "zstd"),
    ])
    .config;
    assert_eq!(c.intake.thresholds.bytes.get(), 65_536);
    assert_eq!(c.intake.thresholds.elapsed, Duration::from_millis(60_000));
    assert_eq!(c.intake.compression, crate::encode::Compression::Zstd(3));
    assert_eq!(
        parse(&[(ENV_PROFILE, "default")])
            .config
            .intake
            .thresholds
            .bytes
            .get(),
        4096
    );
    let e = Config::from_env(&env(&[(ENV_PROFILE, "cheap")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{ENV_PROFILE} must be one of \"default\", \"economy\", got \"cheap\"")
    );
}

#[test]
fn the_freshness_bound_defaults_to_three_time_thresholds_and_is_never_below_one() {
    let p = parse(&[(ENV_SHIP_RATE_MILLISECONDS, "2000")]);
    assert_eq!(p.config.intake.max_delay, Duration::from_millis(6000));
    let p = parse(&[(ENV_MAX_DELAY_MS, "45000")]);
    assert_eq!(p.config.intake.max_delay, Duration::from_millis(45_000));
    assert!(p.warnings.is_empty());
    for bad in ["5000", "soon"] {
        let p = parse(&[(ENV_MAX_DELAY_MS, bad)]);
        assert_eq!(
            p.config.intake.max_delay,
            Duration::from_millis(30_000),
            "{bad}"
        );
        assert_eq!(p.warnings.len(), 1);
        assert!(
            p.warnings[0].starts_with(ENV_MAX_DELAY_MS),
            "{:?}",
            p.warnings
        );
    }
}

#[test]
fn a_prefixed_variable_nothing_reads_is_named_in_a_warning() {
    let p = parse(&[
        ("ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTE", "1048576"),
        (ENV_SHIP_RATE_INVOKES, "3"),
    ]);
    assert_eq!(
        p.config.intake.thresholds.bytes.get(),
        4096,
        "the typo applies nothing"
    );
    assert_eq!(
        p.warnings,
        [
            "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTE is not a variable this extension reads: ignored (did you mean ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTES?)"
        ]
    );
}

#[test]
fn the_tick_comes_more_often_on_managed_instances() {
    let intake = |pairs: &[(&str, &str)]| parse(pairs).config.intake;
    assert_eq!(intake(&[]).tick, Duration::from_secs(1));
    assert_eq!(
        intake(&[(ENV_INITIALIZATION_TYPE, MANAGED_INSTANCES)]).tick,
        Duration::from_millis(100)
    );
    assert_eq!(
        intake(&[(ENV_SHIP_RATE_MILLISECONDS, "50")]).tick,
        Duration::from_millis(10)
    );
}

#[test]
fn each_consumer_gets_its_derived_values_from_its_section() {
    // The shipper: the largest object is the bytes threshold or half the memory bound, and a merge
    // stays one PutObject within half the memory bound.
    let c = parse(&[(ENV_MAX_BUFFER_BYTES, "8388608")]).config;
    assert_eq!(c.shipper.max_object, 4 * 1024 * 1024);
    assert_eq!(c.shipper.merge_limit, 4 * 1024 * 1024);
    assert_eq!(c.intake.max_object_bytes, c.shipper.max_object);
    let c = parse(&[
        (ENV_SHIP_RATE_BYTES, "33554432"),
        (ENV_MAX_BUFFER_BYTES, "1048576"),
    ])
    .config;
    assert_eq!(c.shipper.max_object, 32 * 1024 * 1024);
    assert_eq!(c.shipper.merge_limit, 1024 * 1024);
    let c = parse(&[(ENV_MAX_BUFFER_BYTES, "134217728")]).config;
    assert_eq!(
        c.shipper.merge_limit,
        16 * 1024 * 1024,
        "within one PutObject"
    );
    assert!(!c.shipper.snap_start);
    assert!(
        parse(&[(ENV_INITIALIZATION_TYPE, SNAP_START)])
            .config
            .shipper
            .snap_start
    );
    // LifecycleActor: how long `next` may wait, and whether it asks for runtimeDone.
    let l = parse(&[]).config.lifecycle;
    assert_eq!((l.next_wait, l.awaits_runtime_done), (None, false));
    let l = parse(&[(ENV_NEXT_WAIT_MS, "300")]).config.lifecycle;
    assert_eq!(l.next_wait, Some(Duration::from_millis(300)));
    let l = parse(&[(ENV_SHIP_AT, "end-of-invoke")]).config.lifecycle;
    assert_eq!(
        (l.next_wait, l.awaits_runtime_done),
        (Some(Duration::MAX), true)
    );
    // The subscription: the schema Managed Instances need.
    assert_eq!(
        parse(&[(ENV_INITIALIZATION_TYPE, MANAGED_INSTANCES)])
            .config
            .subscription
            .api,
        LogsApi::Telemetry {
            managed_instances: true
        }
    );
    // EMF lines name the function.
    assert_eq!(
        parse(&[(ENV_METRICS, "emf"), (ENV_FUNCTION_NAME, "Fn")])
            .config
            .metrics,
        Some(crate::metrics::Emf::new("fn".into()))
    );
    assert_eq!(parse(&[(ENV_METRICS, "none")]).config.metrics, None);
}

#[test]
fn processing_rules_parse_into_the_intake_section_and_a_bad_rule_is_a_config_error() {
    let b = ("ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET", "logs-bucket");
    assert!(parse(&[b]).config.intake.rules.is_empty());
    assert!(
        parse(&[b, (ENV_PROCESSING_RULES, " ")])
            .config
            .intake
            .rules
            .is_empty()
    );
    let rules = r#"[{"type":"mask_sequences","name":"keys","pattern":"AKIA[0-9A-Z]{16}","replace_placeholder":"[KEY]"},
                    {"type":"exclude_platform_types","name":"noise","record_types":["platform.start"]}]"#;
    let parsed = parse(&[b, (ENV_PROCESSING_RULES, rules)]);
    assert_eq!(
        parsed.config.intake.rules.names().collect::<Vec<_>>(),
        ["keys", "noise"]
    );
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);
    // A rule for a log type that is not subscribed is kept and named in a warning.
    let parsed = parse(&[
        b,
        (ENV_PROCESSING_RULES, rules),
        (ENV_LOG_TYPES, r#"["function"]"#),
    ]);
    assert_eq!(
        parsed.warnings,
        [format!(
            "{ENV_PROCESSING_RULES} rule [1] \"noise\" reads records of a type {ENV_LOG_TYPES} does not subscribe; add \"platform\" for it to apply"
        )]
    );
    let bad = Config::parse(&env(&[
        b,
        (
            ENV_PROCESSING_RULES,
            r#"[{"type":"exclude_at_match","name":"health","pattern":"(GET /health"}]"#,
        ),
    ]))
    .expect_err("a pattern that does not compile");
    assert_eq!(
        bad.to_string(),
        r#"ADAPTIVE_BATCHING_EXTENSION_PROCESSING_RULES rule [0] "health": the pattern "(GET /health" does not compile: unclosed group"#
    );
}

#[test]
fn format_parquet_takes_zstd_pages_a_parquet_key_and_no_merges() {
    use crate::encode::{Compression, Format};
    use crate::object_key::KeyTemplate;
    let ndjson = parse(&[]).config;
    assert_eq!(ndjson.intake.format, Format::Ndjson);
    assert_eq!(
        ndjson.intake.key_template,
        KeyTemplate::default_with(".log")
    );
    assert!(ndjson.shipper.merge_limit > 0);

    let p = parse(&[(ENV_FORMAT, "parquet")]);
    let c = p.config;
    assert_eq!(c.intake.format, Format::Parquet);
    assert_eq!(c.intake.compression, Compression::Zstd(3));
    assert_eq!(c.intake.key_template, KeyTemplate::default_with(".parquet"));
    assert_eq!(c.shipper.merge_limit, 0);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    // COMPRESSION picks the page codec; the economy profile's gzip is NDJSON's only.
    for (vars, want) in [
        (vec![(ENV_COMPRESSION, "gzip")], Compression::Gzip(6)),
        (vec![(ENV_COMPRESSION, "none")], Compression::None),
        (vec![(ENV_COMPRESSION_LEVEL, "9")], Compression::Zstd(9)),
        (vec![(ENV_PROFILE, "economy")], Compression::Zstd(3)),
    ] {
        let mut vars = vars.clone();
        vars.push((ENV_FORMAT, "parquet"));
        assert_eq!(parse(&vars).config.intake.compression, want, "{vars:?}");
    }
    let economy = parse(&[(ENV_PROFILE, "economy"), (ENV_FORMAT, "parquet")]).config;
    assert_eq!(economy.intake.thresholds.bytes.get(), 1_048_576);
}

#[test]
fn an_unknown_format_is_an_error_naming_the_variable_and_a_mismatched_key_a_warning() {
    let e = Config::from_env(&env(&[(ENV_FORMAT, "csv")])).unwrap_err();
    assert_eq!(
        e.to_string(),
        "ADAPTIVE_BATCHING_EXTENSION_FORMAT must be one of \"ndjson\", \"parquet\", got \"csv\""
    );
    let p = parse(&[
        (ENV_FORMAT, "parquet"),
        (ENV_KEY_TEMPLATE, "logs/{uuid}.ndjson"),
    ]);
    assert_eq!(
        p.warnings,
        [
            "ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE \"logs/{uuid}.ndjson\" names objects as another format does, but ADAPTIVE_BATCHING_EXTENSION_FORMAT is parquet; keys are kept as the template says"
        ]
    );
    let p = parse(&[(ENV_KEY_TEMPLATE, "logs/{uuid}.parquet")]);
    assert_eq!(p.warnings.len(), 1);
    assert!(
        parse(&[
            (ENV_FORMAT, "parquet"),
            (ENV_KEY_TEMPLATE, "logs/{uuid}.parquet")
        ])
        .warnings
        .is_empty()
    );
}
