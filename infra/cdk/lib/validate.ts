// The extension's configuration rules (src/config.rs, src/object_key.rs), applied at synth time.
//
// The construct is stricter than the extension, never looser: a value the extension refuses at init
// fails the synth with the same variable name and reason, and so does a value it would replace with
// a warning (a number out of range, a port it cannot use). A deploy that fails is cheaper than a
// warning in a log nobody reads, with settings other than the ones written in the stack.

import { Token } from 'aws-cdk-lib';

export const PREFIX = 'ADAPTIVE_BATCHING_EXTENSION_';

/** `ADAPTIVE_BATCHING_EXTENSION_<name> "<value>" <reason>` — the shape of the extension's init errors. */
export function fail(name: string, value: unknown, reason: string): never {
  throw new Error(`${PREFIX}${name} ${JSON.stringify(value)} ${reason}`);
}

/** S3's bucket naming rules, as the extension checks them (skipped for a token). */
export function bucketName(name: string): void {
  if (Token.isUnresolved(name)) return;
  const why = bucketNameProblem(name);
  if (why) fail('S3_BUCKET', name, why);
}

function bucketNameProblem(s: string): string | undefined {
  if (s.length < 3 || s.length > 63) return 'must be 3 to 63 characters long';
  if (!/^[a-z0-9.-]+$/.test(s)) return 'may contain only lower-case letters, digits, dots and hyphens';
  if (!/^[a-z0-9].*[a-z0-9]$/.test(s)) return 'must begin and end with a letter or a digit';
  if (s.includes('..')) return 'must not contain two adjacent dots';
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(s) && s.split('.').every((o) => Number(o) <= 255 && String(Number(o)) === o)) {
    return 'must not be formatted as an IP address';
  }
  for (const p of ['xn--', 'sthree-', 'amzn-s3-demo-']) {
    if (s.startsWith(p)) return `must not start with "${p}"`;
  }
  for (const suffix of ['-s3alias', '--ol-s3', '.mrap', '--x-s3', '--table-s3']) {
    if (s.endsWith(suffix)) return `must not end with "${suffix}"`;
  }
  return undefined;
}

/** The longest each placeholder can render (object_key.rs LONGEST). */
const PLACEHOLDERS: Record<string, number> = {
  function: 64,
  version: 128,
  env_id: 36,
  yyyy: 4,
  mm: 2,
  dd: 2,
  hh: 2,
  min: 2,
  epoch_ms: 13,
  uuid: 36,
  shard: 2,
};
const MAX_KEY_BYTES = 1024;

/** The key template's rules; returns the literal text before the first placeholder (the prefix
 *  every key starts with, which the IAM policy is scoped to). */
export function keyTemplate(template: string): string {
  const bad = (reason: string) => fail('KEY_TEMPLATE', template, reason);
  let rest = template;
  let longest = 0;
  let prefix: string | undefined;
  const names: string[] = [];
  while (rest.length > 0) {
    const open = rest.indexOf('{');
    const text = open < 0 ? rest : rest.slice(0, open);
    if (text.includes('}')) bad(`has a '}' without its '{' in ${JSON.stringify(text)}`);
    longest += Buffer.byteLength(text, 'utf8');
    if (open < 0) break;
    prefix ??= template.slice(0, template.length - rest.length + open);
    const close = rest.indexOf('}', open);
    if (close < 0) bad(`has an unclosed '{' in ${JSON.stringify(rest.slice(open))}`);
    const name = rest.slice(open + 1, close);
    if (!Object.hasOwn(PLACEHOLDERS, name)) {
      bad(`has an unknown placeholder {${name}}; known: ${Object.keys(PLACEHOLDERS).map((p) => `{${p}}`).join(' ')}`);
    }
    names.push(name);
    longest += PLACEHOLDERS[name];
    rest = rest.slice(close + 1);
  }
  if (!names.includes('uuid')) {
    bad('has no {uuid}: without it two batches could get the same key and overwrite each other');
  }
  if (template.startsWith('/')) bad("starts with '/': S3 keys do not");
  if (longest > MAX_KEY_BYTES) bad(`can make keys of ${longest} bytes, more than S3's ${MAX_KEY_BYTES}`);
  return prefix ?? template;
}

/** A whole number within [min, max] (the extension's ranges). */
export function wholeNumber(name: string, value: number | undefined, min: number, max: number): string | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min || value > max) {
    fail(name, value, `must be a whole number from ${min} to ${max}`);
  }
  return String(value);
}

/** One of `accepted`, matched case-insensitively as the extension does; written as accepted. */
export function oneOf<T extends string>(name: string, value: string | undefined, accepted: readonly T[]): T | undefined {
  if (value === undefined) return undefined;
  const found = accepted.find((a) => a.toLowerCase() === value.toLowerCase());
  if (!found) fail(name, value, `must be one of ${accepted.map((a) => JSON.stringify(a)).join(', ')}`);
  return found;
}
