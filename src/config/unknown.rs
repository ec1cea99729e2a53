//! Variables with the extension's prefix that nothing reads: a typo (`…_SHIP_RATE_BYTE`) or an
//! option of a newer version would otherwise be ignored in silence, and the user would believe it
//! applied. Each is named in one warning at init, with the closest known name when one is close.

use super::*;

const PREFIX: &str = "ADAPTIVE_BATCHING_EXTENSION_";

/// Every variable the extension reads with its prefix.
const KNOWN: [&str; 29] = [
    ENV_S3_BUCKET,
    ENV_SHIP_RATE_BYTES,
    ENV_SHIP_RATE_INVOKES,
    ENV_SHIP_RATE_MILLISECONDS,
    ENV_LOG_TYPES,
    ENV_LISTENER_PORT,
    ENV_S3_FORCE_PATH_STYLE,
    ENV_CREATE_BUCKET,
    ENV_LOG_LEVEL,
    ENV_API,
    ENV_BUFFER_MAX_ITEMS,
    ENV_BUFFER_MAX_BYTES,
    ENV_BUFFER_TIMEOUT_MS,
    ENV_COMPRESSION,
    ENV_COMPRESSION_LEVEL,
    ENV_FORMAT,
    ENV_KEY_TEMPLATE,
    ENV_SSE,
    ENV_SSE_KMS_KEY_ID,
    ENV_STORAGE_CLASS,
    ENV_METRICS,
    ENV_SHIP_AT,
    ENV_NEXT_WAIT_MS,
    ENV_MAX_DELAY_MS,
    ENV_PROFILE,
    ENV_PROCESSING_RULES,
    ENV_MAX_BUFFER_BYTES,
    ENV_SPILL_DIR,
    ENV_SPILL_MAX_BYTES,
];

/// One warning per unknown prefixed variable, sorted by name.
pub(super) fn warnings(names: &[String]) -> Vec<String> {
    let mut unknown: Vec<&String> = names
        .iter()
        .filter(|n| n.starts_with(PREFIX) && !KNOWN.contains(&n.as_str()))
        .collect();
    unknown.sort();
    unknown
        .into_iter()
        .map(|name| match closest(name) {
            Some(known) => format!(
                "{name} is not a variable this extension reads: ignored (did you mean {known}?)"
            ),
            None => format!(
                "{name} is not a variable this extension reads: ignored (the README's Configuration lists those it reads)"
            ),
        })
        .collect()
}

/// The known name nearest `name` by edit distance, if within a third of its length (a typo, not
/// another option).
fn closest(name: &str) -> Option<&'static str> {
    let tail = &name[PREFIX.len()..];
    KNOWN
        .iter()
        .map(|k| (distance(tail, &k[PREFIX.len()..]), *k))
        .filter(|(d, _)| *d * 3 <= tail.len().max(3))
        .min()
        .map(|(_, k)| k)
}

/// Levenshtein distance over bytes (the names are ASCII).
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(ca != cb))
                .min(row[j] + 1)
                .min(above + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_typo_is_named_with_the_variable_it_resembles() {
        assert_eq!(
            warnings(&names(&[
                "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTE",
                "ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET",
                "AWS_REGION",
            ])),
            [
                "ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTE is not a variable this extension reads: ignored (did you mean ADAPTIVE_BATCHING_EXTENSION_SHIP_RATE_BYTES?)"
            ]
        );
    }

    #[test]
    fn an_option_nothing_resembles_is_named_alone() {
        assert_eq!(
            warnings(&names(&["ADAPTIVE_BATCHING_EXTENSION_PARQUET_ROW_GROUP"])),
            [
                "ADAPTIVE_BATCHING_EXTENSION_PARQUET_ROW_GROUP is not a variable this extension reads: ignored (the README's Configuration lists those it reads)"
            ]
        );
    }

    /// The README documents exactly the variables known here: a variable added to the parser and
    /// the README but not here would be reported as unknown.
    #[test]
    fn the_known_variables_are_the_readmes() {
        let readme = include_str!("../../README.md");
        let mut documented: Vec<&str> = readme
            .match_indices(PREFIX)
            .map(|(i, _)| {
                let rest = &readme[i..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                    .unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|n| n.len() > PREFIX.len())
            .collect();
        documented.sort();
        documented.dedup();
        let mut known = KNOWN.to_vec();
        known.sort();
        assert_eq!(documented, known);
        assert!(warnings(&names(&KNOWN)).is_empty());
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
