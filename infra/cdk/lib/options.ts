// Typed options for every variable of the README's configuration table, and the variables they
// become. An option left unset sets no variable: the extension's own default applies (so that
// `profile: 'economy'` still chooses the thresholds the user did not set).

import { ProcessingRule, processingRules } from './rules';
import { PREFIX, fail, keyTemplate, oneOf, wholeNumber } from './validate';

export type LogType = 'platform' | 'function' | 'extension';
export type StorageClass =
  | 'STANDARD'
  | 'REDUCED_REDUNDANCY'
  | 'STANDARD_IA'
  | 'ONEZONE_IA'
  | 'INTELLIGENT_TIERING'
  | 'GLACIER'
  | 'DEEP_ARCHIVE'
  | 'GLACIER_IR'
  | 'EXPRESS_ONEZONE';

const STORAGE_CLASSES: readonly StorageClass[] = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'GLACIER_IR',
  'EXPRESS_ONEZONE',
];

/** The extension's settings. Each maps to one `ADAPTIVE_BATCHING_EXTENSION_*` variable (README,
 *  "Configuration"); the bucket, the key template and encryption are on `S3LogShipperProps`. */
export interface ExtensionOptions {
  /** `PROFILE`: `economy` = 1 MiB objects, gzip, at least every minute; explicit options still win. */
  readonly profile?: 'default' | 'economy';
  /** `SHIP_RATE_BYTES` (default 4096): buffered bytes that trigger a ship; 1 to 104857600. */
  readonly shipRateBytes?: number;
  /** `SHIP_RATE_INVOKES` (default 10). */
  readonly shipRateInvokes?: number;
  /** `SHIP_RATE_MILLISECONDS` (default 10000). */
  readonly shipRateMilliseconds?: number;
  /** `MAX_DELAY_MS` (default 3 × shipRateMilliseconds): the freshness bound while S3 throttles. */
  readonly maxDelayMs?: number;
  /** `LOG_TYPES` (default platform, function). */
  readonly logTypes?: LogType[];
  /** `LISTENER_PORT` (default 1234); not 9001. */
  readonly listenerPort?: number;
  /** `S3_FORCE_PATH_STYLE` (default: true only with a custom endpoint). */
  readonly s3ForcePathStyle?: boolean;
  /** `CREATE_BUCKET`: create the bucket when a write meets NoSuchBucket (default: true for a bucket
   *  given by name, false for a CDK bucket, which exists). Grants `s3:CreateBucket` when true. */
  readonly createBucket?: boolean;
  /** `LOG_LEVEL` (default info). */
  readonly logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** `API` (default telemetry). */
  readonly api?: 'telemetry' | 'logs';
  /** `BUFFER_MAX_ITEMS` (default 1000): 1000 to 10000. */
  readonly bufferMaxItems?: number;
  /** `BUFFER_MAX_BYTES` (default 262144): 262144 to 1048576. */
  readonly bufferMaxBytes?: number;
  /** `BUFFER_TIMEOUT_MS` (default 25): 25 to 30000. */
  readonly bufferTimeoutMs?: number;
  /** `FORMAT` (default ndjson): `parquet` writes one Parquet file per batch (README, "Parquet objects"). */
  readonly format?: 'ndjson' | 'parquet';
  /** `COMPRESSION` (default none; with `format: 'parquet'`, the page codec, zstd by default). */
  readonly compression?: 'none' | 'gzip' | 'zstd';
  /** `COMPRESSION_LEVEL`: gzip 1–9 (6), zstd 1–19 (3). */
  readonly compressionLevel?: number;
  /** `STORAGE_CLASS` (default: the bucket's, STANDARD). */
  readonly storageClass?: StorageClass;
  /** `METRICS` (default none): `emf` prints embedded-metric-format lines about the extension. */
  readonly metrics?: 'none' | 'emf';
  /** `SHIP_AT` (default next-invoke). */
  readonly shipAt?: 'next-invoke' | 'end-of-invoke';
  /** `NEXT_WAIT_MS` (default 0: `next` never waits for S3): 0 to 900000. */
  readonly nextWaitMs?: number;
  /** `MAX_BUFFER_BYTES` (default 1/16 of the function's memory, 1–64 MiB). */
  readonly maxBufferBytes?: number;
  /** `SPILL_DIR` (default /tmp/adaptive-batching-extension). */
  readonly spillDir?: string;
  /** `SPILL_MAX_BYTES` (default 134217728). */
  readonly spillMaxBytes?: number;
  /** `PROCESSING_RULES` (default none): redact, drop and sample records before they are shipped. */
  readonly processingRules?: ProcessingRule[];
}

const MAX_WHOLE = Number.MAX_SAFE_INTEGER;

/** The variables for `o` (the bucket, key template and encryption excluded), validated. */
export function optionVariables(o: ExtensionOptions): Record<string, string> {
  const v: Record<string, string | undefined> = {
    PROFILE: oneOf('PROFILE', o.profile, ['default', 'economy'] as const),
    SHIP_RATE_BYTES: wholeNumber('SHIP_RATE_BYTES', o.shipRateBytes, 1, 104_857_600),
    SHIP_RATE_INVOKES: wholeNumber('SHIP_RATE_INVOKES', o.shipRateInvokes, 1, MAX_WHOLE),
    SHIP_RATE_MILLISECONDS: wholeNumber('SHIP_RATE_MILLISECONDS', o.shipRateMilliseconds, 1, MAX_WHOLE),
    MAX_DELAY_MS: wholeNumber('MAX_DELAY_MS', o.maxDelayMs, o.shipRateMilliseconds ?? 1, MAX_WHOLE),
    LOG_TYPES: logTypes(o.logTypes),
    LISTENER_PORT: wholeNumber('LISTENER_PORT', o.listenerPort, 1, 65_535),
    S3_FORCE_PATH_STYLE: o.s3ForcePathStyle === undefined ? undefined : String(o.s3ForcePathStyle),
    CREATE_BUCKET: o.createBucket === undefined ? undefined : String(o.createBucket),
    LOG_LEVEL: oneOf('LOG_LEVEL', o.logLevel, ['error', 'warn', 'info', 'debug'] as const),
    API: oneOf('API', o.api, ['telemetry', 'logs'] as const),
    BUFFER_MAX_ITEMS: wholeNumber('BUFFER_MAX_ITEMS', o.bufferMaxItems, 1000, 10_000),
    BUFFER_MAX_BYTES: wholeNumber('BUFFER_MAX_BYTES', o.bufferMaxBytes, 262_144, 1_048_576),
    BUFFER_TIMEOUT_MS: wholeNumber('BUFFER_TIMEOUT_MS', o.bufferTimeoutMs, 25, 30_000),
    FORMAT: oneOf('FORMAT', o.format, ['ndjson', 'parquet'] as const),
    COMPRESSION: oneOf('COMPRESSION', o.compression, ['none', 'gzip', 'zstd'] as const),
    COMPRESSION_LEVEL: compressionLevel(o),
    STORAGE_CLASS: oneOf('STORAGE_CLASS', o.storageClass, STORAGE_CLASSES),
    METRICS: oneOf('METRICS', o.metrics, ['none', 'emf'] as const),
    SHIP_AT: oneOf('SHIP_AT', o.shipAt, ['next-invoke', 'end-of-invoke'] as const),
    NEXT_WAIT_MS: wholeNumber('NEXT_WAIT_MS', o.nextWaitMs, 0, 900_000),
    MAX_BUFFER_BYTES: wholeNumber('MAX_BUFFER_BYTES', o.maxBufferBytes, 1, MAX_WHOLE),
    SPILL_DIR: o.spillDir === '' ? fail('SPILL_DIR', '', 'must be a directory') : o.spillDir,
    SPILL_MAX_BYTES: wholeNumber('SPILL_MAX_BYTES', o.spillMaxBytes, 1, MAX_WHOLE),
    PROCESSING_RULES: processingRules(o.processingRules),
  };
  if (o.listenerPort === 9001) fail('LISTENER_PORT', 9001, "must not be 9001 (Lambda's)");
  if (o.shipAt === 'end-of-invoke' && o.logTypes && !o.logTypes.includes('platform')) {
    fail('SHIP_AT', o.shipAt, 'needs "platform" in LOG_TYPES (it waits for platform.runtimeDone)');
  }
  const out: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) {
    if (value !== undefined) out[PREFIX + k] = value;
  }
  return out;
}

function logTypes(types: LogType[] | undefined): string | undefined {
  if (types === undefined) return undefined;
  const known: LogType[] = ['platform', 'function', 'extension'];
  if (types.length === 0) fail('LOG_TYPES', types, 'must name at least one of "platform", "function", "extension"');
  for (const t of types) {
    if (!known.includes(t)) fail('LOG_TYPES', types, `has ${JSON.stringify(t)}: only "platform", "function", "extension"`);
  }
  if (new Set(types).size !== types.length) fail('LOG_TYPES', types, 'lists a type more than once');
  return JSON.stringify(types);
}

/** The compression the extension will use: the option, else Parquet's zstd, else the profile's
 * (economy: gzip). */
export function effectiveCompression(o: ExtensionOptions): 'none' | 'gzip' | 'zstd' {
  if (o.compression !== undefined) return o.compression;
  if (o.format === 'parquet') return 'zstd';
  return o.profile === 'economy' ? 'gzip' : 'none';
}

function compressionLevel(o: ExtensionOptions): string | undefined {
  if (o.compressionLevel === undefined) return undefined;
  const kind = effectiveCompression(o);
  if (kind === 'none') fail('COMPRESSION_LEVEL', o.compressionLevel, 'needs COMPRESSION gzip or zstd');
  return kind === 'gzip'
    ? wholeNumber('COMPRESSION_LEVEL', o.compressionLevel, 1, 9)
    : wholeNumber('COMPRESSION_LEVEL', o.compressionLevel, 1, 19);
}

/** The key template's variable and the prefix every key starts with. */
export function keyTemplateVariable(template: string | undefined): { vars: Record<string, string>; prefix: string } {
  if (template === undefined) return { vars: {}, prefix: '' };
  return { vars: { [PREFIX + 'KEY_TEMPLATE']: template }, prefix: keyTemplate(template) };
}
