// `processingRules`: typed processing rules (README, "Processing rules"), checked at synth time by
// the extension's rules (src/rules/parse.rs) and written as the JSON array the extension reads.
// Patterns are compiled by the extension (Rust `regex`), not here: JavaScript's RegExp accepts
// look-around and backreferences that the linear-time engine refuses, and refuses `(?i)` that it
// accepts. The constructs it refuses are caught here, by shape; anything else that does not
// compile fails init with the rule named.

import { PREFIX } from './validate';

interface Named {
  /** 1 to 64 characters, unique: it names the rule's counters and its EMF `Rule` dimension. */
  readonly name: string;
}

/** Drops a line the pattern matches (Datadog's). */
export interface ExcludeAtMatch extends Named {
  readonly type: 'exclude_at_match';
  readonly pattern: string;
}

/** Drops a line the pattern does not match (Datadog's). */
export interface IncludeAtMatch extends Named {
  readonly type: 'include_at_match';
  readonly pattern: string;
}

/** Replaces every match; `$1` or `${1}` in the placeholder is the first group (Datadog's). */
export interface MaskSequences extends Named {
  readonly type: 'mask_sequences';
  readonly pattern: string;
  readonly replace_placeholder: string;
}

/** Keeps the requests one in `keep_one_in` selects of the lines that match; never WARN or above. */
export interface Sample extends Named {
  readonly type: 'sample';
  /** Unset: every function and extension line. */
  readonly pattern?: string;
  /** 1 to 1000000. */
  readonly keep_one_in: number;
}

/** Drops platform records of these types. */
export interface ExcludePlatformTypes extends Named {
  readonly type: 'exclude_platform_types';
  readonly record_types: PlatformType[];
}

export type ProcessingRule = ExcludeAtMatch | IncludeAtMatch | MaskSequences | Sample | ExcludePlatformTypes;

export const PLATFORM_TYPES = [
  'platform.initStart',
  'platform.initRuntimeDone',
  'platform.initReport',
  'platform.start',
  'platform.runtimeDone',
  'platform.report',
  'platform.restoreStart',
  'platform.restoreRuntimeDone',
  'platform.restoreReport',
  'platform.extension',
  'platform.telemetrySubscription',
  'platform.logsSubscription',
  'platform.logsDropped',
  'platform.fault',
  'platform.end',
] as const;
export type PlatformType = (typeof PLATFORM_TYPES)[number];

const MAX_RULES = 50;
const MAX_PATTERN_CHARS = 1000;
const MAX_NAME_CHARS = 64;

/** Constructs Rust's `regex` does not have, which users bring from PCRE and JavaScript. */
const UNSUPPORTED: [RegExp, string][] = [
  [/\(\?<?[=!]/, 'look-around ((?=, (?!, (?<=, (?<!) is not supported by the linear-time engine'],
  [/(^|[^\\])\\[1-9]/, 'backreferences (\\1) are not supported by the linear-time engine'],
];

/** `PROCESSING_RULES` for `rules`, validated; undefined when unset. */
export function processingRules(rules: ProcessingRule[] | undefined): string | undefined {
  if (rules === undefined) return undefined;
  // The extension's init errors name the rule as `rule [index] "name"`; so do these.
  const bad = (i: number, r: { name?: unknown }, reason: string): never => {
    throw new Error(`${PREFIX}PROCESSING_RULES rule [${i}]${typeof r.name === 'string' ? ` ${JSON.stringify(r.name)}` : ''}: ${reason}`);
  };
  if (rules.length > MAX_RULES) {
    throw new Error(`${PREFIX}PROCESSING_RULES has ${rules.length} rules; at most ${MAX_RULES} are accepted`);
  }
  const names = new Set<string>();
  rules.forEach((r, i) => {
    if (typeof r.name !== 'string' || r.name.length < 1 || [...r.name].length > MAX_NAME_CHARS) {
      bad(i, r, `needs a "name": a string of 1 to ${MAX_NAME_CHARS} characters`);
    }
    if (names.has(r.name)) bad(i, r, 'the name is already used by an earlier rule; names must be unique');
    names.add(r.name);
    const pattern = 'pattern' in r ? r.pattern : undefined;
    if (r.type !== 'exclude_platform_types' && (r.type !== 'sample' || pattern !== undefined)) {
      const p = typeof pattern === 'string' && pattern.length > 0 ? pattern : bad(i, r, 'needs a non-empty "pattern"');
      if ([...p].length > MAX_PATTERN_CHARS) bad(i, r, `the "pattern" has more than ${MAX_PATTERN_CHARS} characters`);
      for (const [shape, why] of UNSUPPORTED) if (shape.test(p)) bad(i, r, `the pattern ${JSON.stringify(p)}: ${why}`);
    }
    switch (r.type) {
      case 'exclude_at_match':
      case 'include_at_match':
        break;
      case 'mask_sequences':
        if (typeof r.replace_placeholder !== 'string') bad(i, r, 'mask_sequences needs a "replace_placeholder" (a string)');
        break;
      case 'sample':
        if (!Number.isInteger(r.keep_one_in) || r.keep_one_in < 1 || r.keep_one_in > 1_000_000) {
          bad(i, r, '"keep_one_in" must be a whole number from 1 to 1000000');
        }
        break;
      case 'exclude_platform_types':
        if (!Array.isArray(r.record_types) || r.record_types.length === 0) bad(i, r, '"record_types" must name at least one platform record type');
        for (const t of r.record_types) {
          if (!PLATFORM_TYPES.includes(t)) bad(i, r, `${JSON.stringify(t)} is not a platform record type; accepted: ${PLATFORM_TYPES.join(', ')}`);
        }
        break;
      default:
        bad(i, r, `unknown type ${JSON.stringify((r as { type?: unknown }).type)}; accepted: exclude_at_match, include_at_match, mask_sequences, sample, exclude_platform_types`);
    }
  });
  return JSON.stringify(rules);
}
