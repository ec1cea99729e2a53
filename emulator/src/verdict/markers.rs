//! Markers: every function line the emulator writes carries `mk:<run>:<n>`, unique within the run
//! (`<run>` is random per emulator, `<n>` counts the run's lines), so the verdict can find each line
//! in whatever an extension made of it: a string record, a JSON object's message, an escaped or
//! wrapped copy, a compressed object.

/// The marker of the `n`-th line of run `run`.
pub fn marker(run: &str, n: u64) -> String {
    format!("mk:{run}:{n}")
}

/// Every marker of run `run` in `text`, in order (a marker is `mk:<run>:` and its digits).
pub fn find<'a>(text: &'a str, run: &str) -> Vec<&'a str> {
    let prefix = format!("mk:{run}:");
    let mut out = Vec::new();
    for (at, _) in text.match_indices(&prefix) {
        let digits = text[at + prefix.len()..]
            .bytes()
            .take_while(u8::is_ascii_digit)
            .count();
        if digits > 0 {
            out.push(&text[at..at + prefix.len() + digits]);
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
    }
}
