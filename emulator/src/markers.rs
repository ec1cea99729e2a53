//! Markers: every function line the emulator writes carries `mk:<run>:<n>`, unique within the run
//! (`<run>` is random per emulator, `<n>` counts the run's lines), so the verdict can find each line
//! in whatever an extension made of it: a string record, a JSON object's message, an escaped or
//! wrapped copy, a compressed object.

/// The marker of the `n`-th line of run `run`.
pub fn marker(run: &str, n: u64) -> String {
    format!("mk:{run}:{n}")
}

/// Every marker of run `run` in `text`, in order (a marker is `mk:<run>:` and its digits); with
/// `run` empty, the markers of every run (a fleet's environments each have their own).
pub fn find<'a>(text: &'a str, run: &str) -> Vec<&'a str> {
    let prefix = format!("mk:{run}");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&prefix) {
        let rest = &text.as_bytes()[at + prefix.len()..];
        // With no run given, the run is the alphanumerics up to the next ':'.
        let run_len = if run.is_empty() {
            rest.iter()
                .take_while(|b| b.is_ascii_alphanumeric())
                .count()
        } else {
            0
        };
        if rest.get(run_len) != Some(&b':') || (run.is_empty() && run_len == 0) {
            continue;
        }
        let digits = rest[run_len + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits > 0 {
            out.push(&text[at..at + prefix.len() + run_len + 1 + digits]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_wherever_they_are_and_only_whole() {
        let m7 = marker("ab12cd34", 7);
        let m71 = marker("ab12cd34", 71);
        let text = format!(
            "{{\"record\":\"invoke 1 line 1 {m7} xx\"}}\n{{\"record\":{{\"message\":\"{m71}\"}}}} mk:ab12cd34: mk:other:9"
        );
        assert_eq!(find(&text, "ab12cd34"), vec![m7.as_str(), m71.as_str()]);
        assert!(find("nothing here", "ab12cd34").is_empty());
        assert_eq!(
            find(&text, ""),
            vec![m7.as_str(), m71.as_str(), "mk:other:9"],
            "every run's"
        );
        assert!(find("mk::3 mk:x: mk:", "").is_empty());
    }
}
