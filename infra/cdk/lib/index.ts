// S3LogShipper: adds the adaptive-batching-extension layer, its variables and a least-privilege
// policy to Lambda functions; optionally a log bucket with lifecycle rules and the README's Athena
// table (a Glue table with partition projection).

import * as fs from 'fs';
import * as path from 'path';
import { Aws, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ExtensionOptions, effectiveCompression, keyTemplateVariable, optionVariables } from './options';
import { PREFIX, bucketName, fail } from './validate';

export * from './options';

export type Arch = 'x86_64' | 'arm64';

/** Where the layer comes from: the zips `make -C infra layers` builds (the default), other zips or
 *  directories, or published layer versions. Per architecture; only those the functions use count. */
export interface LayerSource {
  /** A layer zip (or a directory holding `extensions/adaptive-batching-extension`) per architecture. */
  readonly assets?: Partial<Record<Arch, string>>;
  /** A published layer version ARN per architecture (no asset is built). */
  readonly arns?: Partial<Record<Arch, string>>;
}

/** A bucket the construct creates for the logs. */
export interface LogBucketOptions {
  /** Objects expire after this many days (default 30). */
  readonly expirationDays?: number;
  /** Default RETAIN: logs outlive the stack. */
  readonly removalPolicy?: RemovalPolicy;
}

/** The README's Athena table over the Hive layout, as a Glue table with partition projection. */
export interface AthenaTableOptions {
  /** The Glue database the construct creates (default `lambda_logs`). */
  readonly databaseName?: string;
  /** Default `lambda_logs`. */
  readonly tableName?: string;
  /** The first day partition projection covers, `yyyy-MM-dd` (default 2026-01-01). */
  readonly firstDay?: string;
}

export interface S3LogShipperProps extends ExtensionOptions {
  /** The bucket (`S3_BUCKET`): a CDK bucket or a name. Omit it to have the construct create one. */
  readonly bucket?: s3.IBucket | string;
  /** Options of the bucket the construct creates when `bucket` is omitted. */
  readonly logBucket?: LogBucketOptions;
  /** The functions to ship the logs of (more with `addFunction`). */
  readonly functions?: lambda.Function[];
  readonly layer?: LayerSource;
  /** `KEY_TEMPLATE`. The policy allows writes under its literal prefix only. With `athena` it
   *  defaults to the README's Hive layout. */
  readonly keyTemplate?: string;
  /** `SSE` (default: the bucket's default encryption). */
  readonly sse?: 'AES256' | 'aws:kms';
  /** `SSE_KMS_KEY_ID`: a key, or a key id, ARN or alias. Needs `sse: 'aws:kms'`. Grants
   *  `kms:GenerateDataKey` and `kms:Decrypt` (multipart uploads) on it. */
  readonly sseKmsKey?: kms.IKey | string;
  /** Create the Athena table (needs the Hive layout `<prefix>function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/…`). */
  readonly athena?: AthenaTableOptions;
}

const BINARY = 'adaptive-batching-extension';
const HIVE = /^((?:[^{}]*\/)?)function=\{function\}\/dt=\{yyyy\}-\{mm\}-\{dd\}\/hour=\{hh\}\//;

export class S3LogShipper extends Construct {
  /** The bucket's name, and the bucket when the construct knows it. */
  public readonly bucketName: string;
  public readonly bucket?: s3.IBucket;
  /** The variables every function gets. */
  public readonly environment: Readonly<Record<string, string>>;
  /** The policy attached to every function's role. */
  public readonly policy: iam.Policy;
  public readonly table?: glue.CfnTable;
  private readonly layers = new Map<Arch, lambda.ILayerVersion>();
  private functions = 0;
  private readonly props: S3LogShipperProps;

  constructor(scope: Construct, id: string, props: S3LogShipperProps = {}) {
    super(scope, id);
    this.props = props;
    if (props.bucket !== undefined && props.logBucket !== undefined) {
      throw new Error('logBucket configures the bucket the construct creates: pass it or bucket, not both');
    }
    if (typeof props.bucket === 'string') {
      bucketName(props.bucket);
      this.bucketName = props.bucket;
    } else {
      this.bucket = props.bucket ?? this.createBucket(props.logBucket ?? {});
      this.bucketName = this.bucket.bucketName;
    }
    const hive = 'logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{uuid}';
    const template = props.keyTemplate ?? (props.athena ? hive + suffix(props) : undefined);
    const key = keyTemplateVariable(template);
    const env: Record<string, string> = { [PREFIX + 'S3_BUCKET']: this.bucketName, ...key.vars };
    // A bucket CDK manages exists: lazy creation would only widen the policy.
    const createBucket = props.createBucket ?? typeof props.bucket === 'string';
    Object.assign(env, optionVariables({ ...props, createBucket }), this.encryption());
    this.environment = env;
    this.policy = new iam.Policy(this, 'Policy', { statements: this.statements(key.prefix, createBucket) });
    if (props.athena) this.table = this.athenaTable(props.athena, template ?? '', props.format === 'parquet');
    for (const fn of props.functions ?? []) this.addFunction(fn);
    // Without a function nothing ships (and CDK would drop the unattached policy without a word).
    this.node.addValidation({
      validate: () => (this.functions > 0 ? [] : ['S3LogShipper has no function: pass `functions` or call addFunction()']),
    });
  }

  /** Adds the layer for the function's architecture, the variables and the policy. */
  public addFunction(fn: lambda.Function): void {
    const arch = fn.architecture.name;
    if (arch !== 'x86_64' && arch !== 'arm64') {
      throw new Error(`${fn.node.path}: architecture ${arch} has no layer (x86_64 or arm64)`);
    }
    fn.addLayers(this.layerFor(arch));
    for (const [k, v] of Object.entries(this.environment)) fn.addEnvironment(k, v);
    if (!fn.role) throw new Error(`${fn.node.path} has no role to grant the S3 writes to`);
    this.policy.attachToRole(fn.role);
    this.functions += 1;
  }

  private layerFor(arch: Arch): lambda.ILayerVersion {
    const known = this.layers.get(arch);
    if (known) return known;
    const source = this.props.layer ?? {};
    const arn = source.arns?.[arch];
    let layer: lambda.ILayerVersion;
    if (arn) {
      layer = lambda.LayerVersion.fromLayerVersionArn(this, `Layer-${arch}`, arn);
    } else {
      const asset = source.assets?.[arch] ?? path.join(__dirname, '..', '..', '..', 'dist', `${BINARY}-${arch}.zip`);
      if (!fs.existsSync(asset)) {
        throw new Error(
          `no ${arch} layer at ${asset}: run \`make -C infra layers\`, or pass layer.assets.${arch} or layer.arns.${arch}`,
        );
      }
      layer = new lambda.LayerVersion(this, `Layer-${arch}`, {
        code: lambda.Code.fromAsset(asset),
        compatibleArchitectures: [arch === 'arm64' ? lambda.Architecture.ARM_64 : lambda.Architecture.X86_64],
        description: 'adaptive-batching-extension: ships the function logs to S3 in adaptive batches',
        license: 'MIT-0',
      });
    }
    this.layers.set(arch, layer);
    return layer;
  }

  private createBucket(o: LogBucketOptions): s3.Bucket {
    const days = o.expirationDays ?? 30;
    if (!Number.isInteger(days) || days < 1) throw new Error(`logBucket.expirationDays ${days}: a whole number of days ≥ 1`);
    return new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      removalPolicy: o.removalPolicy ?? RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-logs', expiration: Duration.days(days) },
        // A multipart upload the extension could not complete nor abort (the environment ended).
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }

  private encryption(): Record<string, string> {
    const { sse, sseKmsKey } = this.props;
    const out: Record<string, string> = {};
    if (sse !== undefined) {
      if (sse !== 'AES256' && sse !== 'aws:kms') fail('SSE', sse, 'must be one of "AES256", "aws:kms"');
      out[PREFIX + 'SSE'] = sse;
    }
    if (sseKmsKey !== undefined) {
      const id = typeof sseKmsKey === 'string' ? sseKmsKey : sseKmsKey.keyArn;
      if (sse !== 'aws:kms') fail('SSE', sse ?? '', `must be "aws:kms" when ${PREFIX}SSE_KMS_KEY_ID is set`);
      if (id === '') fail('SSE_KMS_KEY_ID', id, 'must be a KMS key id, ARN or alias');
      out[PREFIX + 'SSE_KMS_KEY_ID'] = id;
    }
    return out;
  }

  private statements(prefix: string, createBucket: boolean): iam.PolicyStatement[] {
    const bucketArn = this.bucket?.bucketArn ?? `arn:${Aws.PARTITION}:s3:::${this.bucketName}`;
    const out = [
      new iam.PolicyStatement({
        sid: 'WriteLogObjects',
        // PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
        actions: ['s3:PutObject', 's3:AbortMultipartUpload'],
        resources: [`${bucketArn}/${prefix}*`],
      }),
    ];
    if (createBucket) {
      out.push(new iam.PolicyStatement({ sid: 'CreateLogBucket', actions: ['s3:CreateBucket'], resources: [bucketArn] }));
    }
    const key = this.props.sseKmsKey;
    if (key !== undefined) {
      out.push(
        new iam.PolicyStatement({
          sid: 'EncryptLogObjects',
          // Decrypt: S3 decrypts the data key to assemble a multipart upload.
          actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
          ...kmsScope(key, Stack.of(this)),
        }),
      );
    }
    return out;
  }

  private athenaTable(o: AthenaTableOptions, template: string, parquet: boolean): glue.CfnTable {
    const m = HIVE.exec(template);
    if (!m) {
      fail('KEY_TEMPLATE', template, 'must be the Hive layout <prefix>function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/… for the Athena table');
    }
    const stack = Stack.of(this);
    const databaseName = o.databaseName ?? 'lambda_logs';
    const firstDay = o.firstDay ?? '2026-01-01';
    if (!/^\d{4}-\d{2}-\d{2}$/.test(firstDay)) throw new Error(`athena.firstDay ${firstDay}: yyyy-MM-dd`);
    const database = new glue.CfnDatabase(this, 'Database', {
      catalogId: stack.account,
      databaseInput: { name: databaseName },
    });
    const root = `s3://${this.bucketName}/${m[1]}`;
    const table = new glue.CfnTable(this, 'Table', {
      catalogId: stack.account,
      databaseName,
      tableInput: {
        name: o.tableName ?? 'lambda_logs',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [
          { name: 'function', type: 'string' },
          { name: 'dt', type: 'string' },
          { name: 'hour', type: 'string' },
        ],
        parameters: {
          classification: parquet ? 'parquet' : 'json',
          'projection.enabled': 'true',
          'projection.function.type': 'injected',
          'projection.dt.type': 'date',
          'projection.dt.format': 'yyyy-MM-dd',
          'projection.dt.range': `${firstDay},NOW`,
          'projection.hour.type': 'integer',
          'projection.hour.range': '0,23',
          'projection.hour.digits': '2',
          'storage.location.template': `${root}function=\${function}/dt=\${dt}/hour=\${hour}/`,
        },
        storageDescriptor: parquet ? parquetStorage(root) : jsonStorage(root),
      },
    });
    table.node.addDependency(database);
    return table;
  }
}

/** The key suffix of the Hive default, after the format and compression the options choose. */
function suffix(o: S3LogShipperProps): string {
  if (o.format === 'parquet') return '.parquet';
  const kind = effectiveCompression(o);
  return '.ndjson' + (kind === 'gzip' ? '.gz' : kind === 'zstd' ? '.zst' : '');
}

/** NDJSON objects: the OpenX JSON SerDe, `record` as its JSON text. */
function jsonStorage(location: string): glue.CfnTable.StorageDescriptorProperty {
  return {
    location,
    columns: [
      { name: 'time', type: 'string' },
      { name: 'type', type: 'string' },
      { name: 'record', type: 'string' },
    ],
    inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
    serdeInfo: {
      serializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      parameters: { 'ignore.malformed.json': 'true' },
    },
  };
}

/** Parquet objects: their six columns, read by name. */
function parquetStorage(location: string): glue.CfnTable.StorageDescriptorProperty {
  return {
    location,
    columns: [
      { name: 'time', type: 'timestamp' },
      { name: 'type', type: 'string' },
      { name: 'request_id', type: 'string' },
      { name: 'level', type: 'string' },
      { name: 'message', type: 'string' },
      { name: 'record', type: 'string' },
    ],
    inputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
    outputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat',
    serdeInfo: { serializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
  };
}

/** The resources (and condition) a KMS key reference stands for. */
function kmsScope(key: kms.IKey | string, stack: Stack): { resources: string[]; conditions?: Record<string, unknown> } {
  if (typeof key !== 'string') return { resources: [key.keyArn] };
  if (Token.isUnresolved(key) || key.startsWith('arn:')) {
    if (/:alias\//.test(key)) {
      return { resources: ['*'], conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': key.replace(/^.*:(alias\/)/, '$1') } } };
    }
    return { resources: [key] };
  }
  if (key.startsWith('alias/')) {
    // An alias names no key ARN: allow the key that has this alias, whichever it is.
    return { resources: ['*'], conditions: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': key } } };
  }
  return { resources: [`arn:${Aws.PARTITION}:kms:${stack.region}:${stack.account}:key/${key}`] };
}
