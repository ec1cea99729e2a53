// The synthesized template: the layer per architecture, the variables, the exact policy statements,
// the bucket and the Athena table; and the synth-time errors, each naming its variable.

import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { S3LogShipper, S3LogShipperProps } from '../lib';

/** A layer directory as the zip holds it (a directory asset: CDK zips it). */
function layerDir(arch: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `abe-layer-${arch}-`));
  fs.mkdirSync(path.join(dir, 'extensions'));
  fs.writeFileSync(path.join(dir, 'extensions', 'adaptive-batching-extension'), `#!/bin/sh\n# ${arch}\n`, { mode: 0o755 });
  return dir;
}
const assets = { x86_64: layerDir('x86_64'), arm64: layerDir('arm64') };

function fn(stack: Stack, id: string, architecture = lambda.Architecture.X86_64): lambda.Function {
  return new lambda.Function(stack, id, {
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture,
    handler: 'index.handler',
    code: lambda.Code.fromInline('exports.handler = async () => "ok";'),
  });
}

/** A stack with one x86_64 function shipping with `props`. */
function synth(props: Omit<S3LogShipperProps, 'functions'>, arches = [lambda.Architecture.X86_64]) {
  const stack = new Stack(new App(), 'Test', { env: { account: '111122223333', region: 'eu-west-1' } });
  const functions = arches.map((a, i) => fn(stack, `Fn${i}`, a));
  const shipper = new S3LogShipper(stack, 'Logs', { layer: { assets }, ...props, functions });
  return { stack, shipper, template: Template.fromStack(stack) };
}

function statements(template: Template): unknown[] {
  const policies = template.findResources('AWS::IAM::Policy', {
    Properties: { PolicyName: Match.stringLikeRegexp('^LogsPolicy') },
  });
  const [only] = Object.values(policies) as { Properties: { PolicyDocument: { Statement: unknown[] } } }[];
  return only.Properties.PolicyDocument.Statement;
}

const BUCKET_ARN = { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::my-logs']] };
const writes = (resource: unknown) => ({
  Sid: 'WriteLogObjects',
  Effect: 'Allow',
  Action: ['s3:PutObject', 's3:AbortMultipartUpload'],
  Resource: resource,
});

test('a layer per architecture, each function given its own', () => {
  const { template } = synth({ bucket: 'my-logs' }, [
    lambda.Architecture.X86_64,
    lambda.Architecture.ARM_64,
    lambda.Architecture.X86_64,
  ]);
  template.resourceCountIs('AWS::Lambda::LayerVersion', 2);
  const layers = template.findResources('AWS::Lambda::LayerVersion');
  const byArch: Record<string, string> = {};
  for (const [id, l] of Object.entries(layers) as [string, { Properties: { CompatibleArchitectures: string[] } }][]) {
    assert.equal(l.Properties.CompatibleArchitectures.length, 1);
    byArch[l.Properties.CompatibleArchitectures[0]] = id;
  }
  assert.deepEqual(Object.keys(byArch).sort(), ['arm64', 'x86_64']);
  const functions = template.findResources('AWS::Lambda::Function');
  const layerOf = (id: string) => (functions[id].Properties as { Layers: { Ref: string }[] }).Layers;
  const ids = Object.keys(functions).sort();
  assert.deepEqual(layerOf(ids[0]), [{ Ref: byArch.x86_64 }]);
  assert.deepEqual(layerOf(ids[1]), [{ Ref: byArch.arm64 }]);
  assert.deepEqual(layerOf(ids[2]), [{ Ref: byArch.x86_64 }]);
});

test('a published layer ARN instead of an asset', () => {
  const arn = 'arn:aws:lambda:eu-west-1:111122223333:layer:adaptive-batching-extension-x86_64:7';
  const { template } = synth({ bucket: 'my-logs', layer: { arns: { x86_64: arn } } });
  template.resourceCountIs('AWS::Lambda::LayerVersion', 0);
  template.hasResourceProperties('AWS::Lambda::Function', { Layers: [arn] });
});

test('the variables: the bucket and every option set, nothing else', () => {
  const { template } = synth({
    bucket: 'my-logs',
    profile: 'economy',
    shipRateBytes: 2_097_152,
    shipRateInvokes: 50,
    shipRateMilliseconds: 30_000,
    maxDelayMs: 120_000,
    logTypes: ['platform', 'function', 'extension'],
    listenerPort: 4321,
    s3ForcePathStyle: false,
    createBucket: false,
    logLevel: 'debug',
    api: 'logs',
    bufferMaxItems: 2000,
    bufferMaxBytes: 524_288,
    bufferTimeoutMs: 100,
    compression: 'zstd',
    compressionLevel: 9,
    keyTemplate: 'logs/{function}/{yyyy}/{mm}/{dd}/{shard}/{uuid}.ndjson.zst',
    sse: 'AES256',
    storageClass: 'STANDARD_IA',
    metrics: 'emf',
    shipAt: 'end-of-invoke',
    nextWaitMs: 500,
    maxBufferBytes: 4_194_304,
    spillDir: '/tmp/spill',
    spillMaxBytes: 67_108_864,
    processingRules: [
      { type: 'mask_sequences', name: 'aws_access_key_ids', pattern: '\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\b', replace_placeholder: '[AWS_ACCESS_KEY_ID]' },
      { type: 'exclude_at_match', name: 'health_checks', pattern: 'GET /(?:health|healthz|ping)\\b' },
      { type: 'sample', name: 'debug', pattern: '(?i)\\bdebug\\b', keep_one_in: 10 },
      { type: 'exclude_platform_types', name: 'platform_noise', record_types: ['platform.start', 'platform.runtimeDone'] },
    ],
  });
  const p = 'ADAPTIVE_BATCHING_EXTENSION_';
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.exact({
        [`${p}S3_BUCKET`]: 'my-logs',
        [`${p}PROFILE`]: 'economy',
        [`${p}SHIP_RATE_BYTES`]: '2097152',
        [`${p}SHIP_RATE_INVOKES`]: '50',
        [`${p}SHIP_RATE_MILLISECONDS`]: '30000',
        [`${p}MAX_DELAY_MS`]: '120000',
        [`${p}LOG_TYPES`]: '["platform","function","extension"]',
        [`${p}LISTENER_PORT`]: '4321',
        [`${p}S3_FORCE_PATH_STYLE`]: 'false',
        [`${p}CREATE_BUCKET`]: 'false',
        [`${p}LOG_LEVEL`]: 'debug',
        [`${p}API`]: 'logs',
        [`${p}BUFFER_MAX_ITEMS`]: '2000',
        [`${p}BUFFER_MAX_BYTES`]: '524288',
        [`${p}BUFFER_TIMEOUT_MS`]: '100',
        [`${p}COMPRESSION`]: 'zstd',
        [`${p}COMPRESSION_LEVEL`]: '9',
        [`${p}KEY_TEMPLATE`]: 'logs/{function}/{yyyy}/{mm}/{dd}/{shard}/{uuid}.ndjson.zst',
        [`${p}SSE`]: 'AES256',
        [`${p}STORAGE_CLASS`]: 'STANDARD_IA',
        [`${p}METRICS`]: 'emf',
        [`${p}SHIP_AT`]: 'end-of-invoke',
        [`${p}NEXT_WAIT_MS`]: '500',
        [`${p}MAX_BUFFER_BYTES`]: '4194304',
        [`${p}SPILL_DIR`]: '/tmp/spill',
        [`${p}SPILL_MAX_BYTES`]: '67108864',
        // The JSON array the extension reads, in the README's shape.
        [`${p}PROCESSING_RULES`]:
          '[{"type":"mask_sequences","name":"aws_access_key_ids","pattern":"\\\\b(?:AKIA|ASIA)[0-9A-Z]{16}\\\\b","replace_placeholder":"[AWS_ACCESS_KEY_ID]"},' +
          '{"type":"exclude_at_match","name":"health_checks","pattern":"GET /(?:health|healthz|ping)\\\\b"},' +
          '{"type":"sample","name":"debug","pattern":"(?i)\\\\bdebug\\\\b","keep_one_in":10},' +
          '{"type":"exclude_platform_types","name":"platform_noise","record_types":["platform.start","platform.runtimeDone"]}]',
      }),
    },
  });
});

test('defaults: only the bucket and CREATE_BUCKET, the extension decides the rest', () => {
  const { template } = synth({ bucket: 'my-logs' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.exact({
        ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET: 'my-logs',
        ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET: 'true',
      }),
    },
  });
});

test('policy for a bucket by name: writes anywhere the default layout writes, and lazy creation', () => {
  const { template } = synth({ bucket: 'my-logs' });
  assert.deepEqual(statements(template), [
    writes({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::my-logs/*']] }),
    { Sid: 'CreateLogBucket', Effect: 'Allow', Action: 's3:CreateBucket', Resource: BUCKET_ARN },
  ]);
  template.hasResourceProperties('AWS::IAM::Policy', {
    Roles: [{ Ref: Match.stringLikeRegexp('^Fn0ServiceRole') }],
  });
});

test('policy: writes only under the template prefix; no CreateBucket when creation is off', () => {
  const { template } = synth({
    bucket: 'my-logs',
    createBucket: false,
    keyTemplate: 'logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{shard}/{uuid}.ndjson',
  });
  assert.deepEqual(statements(template), [
    writes({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::my-logs/logs/function=*']] }),
  ]);
});

test('policy with SSE-KMS: GenerateDataKey and Decrypt on that key only', () => {
  const stack = new Stack(new App(), 'Kms', { env: { account: '111122223333', region: 'eu-west-1' } });
  const key = new kms.Key(stack, 'Key');
  new S3LogShipper(stack, 'Logs', {
    bucket: 'my-logs',
    createBucket: false,
    sse: 'aws:kms',
    sseKmsKey: key,
    layer: { assets },
    functions: [fn(stack, 'Fn0')],
  });
  const template = Template.fromStack(stack);
  const keyId = Object.keys(template.findResources('AWS::KMS::Key'))[0];
  assert.deepEqual(statements(template), [
    writes({ 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::my-logs/*']] }),
    {
      Sid: 'EncryptLogObjects',
      Effect: 'Allow',
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: { 'Fn::GetAtt': [keyId, 'Arn'] },
    },
  ]);
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        ADAPTIVE_BATCHING_EXTENSION_SSE: 'aws:kms',
        ADAPTIVE_BATCHING_EXTENSION_SSE_KMS_KEY_ID: { 'Fn::GetAtt': [keyId, 'Arn'] },
      }),
    },
  });
});

test('a key id becomes its ARN; an alias is matched by kms:ResourceAliases', () => {
  const byId = synth({ bucket: 'my-logs', createBucket: false, sse: 'aws:kms', sseKmsKey: '1234abcd-12ab-34cd-56ef-1234567890ab' });
  assert.deepEqual((statements(byId.template)[1] as { Resource: unknown }).Resource, {
    'Fn::Join': [
      '',
      ['arn:', { Ref: 'AWS::Partition' }, ':kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab'],
    ],
  });
  const byAlias = synth({ bucket: 'my-logs', createBucket: false, sse: 'aws:kms', sseKmsKey: 'alias/logs' });
  assert.deepEqual(statements(byAlias.template)[1], {
    Sid: 'EncryptLogObjects',
    Effect: 'Allow',
    Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
    Resource: '*',
    Condition: { 'ForAnyValue:StringEquals': { 'kms:ResourceAliases': 'alias/logs' } },
  });
});

test('a CDK bucket exists: no lazy creation, writes on its ARN', () => {
  const stack = new Stack(new App(), 'Own');
  const bucket = new s3.Bucket(stack, 'Mine');
  new S3LogShipper(stack, 'Logs', { bucket, layer: { assets }, functions: [fn(stack, 'Fn0')] });
  const template = Template.fromStack(stack);
  const id = Object.keys(template.findResources('AWS::S3::Bucket'))[0];
  assert.deepEqual(statements(template), [
    writes({ 'Fn::Join': ['', [{ 'Fn::GetAtt': [id, 'Arn'] }, '/*']] }),
  ]);
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.exact({ ADAPTIVE_BATCHING_EXTENSION_S3_BUCKET: { Ref: id }, ADAPTIVE_BATCHING_EXTENSION_CREATE_BUCKET: 'false' }) },
  });
});

test('the log bucket and the Athena table over the Hive layout', () => {
  const { template } = synth({ logBucket: { expirationDays: 14 }, compression: 'gzip', athena: { databaseName: 'logs_db' } });
  template.hasResourceProperties('AWS::S3::Bucket', {
    LifecycleConfiguration: {
      Rules: [
        { Id: 'expire-logs', ExpirationInDays: 14, Status: 'Enabled' },
        { Id: 'abort-incomplete-uploads', AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 }, Status: 'Enabled' },
      ],
    },
    PublicAccessBlockConfiguration: Match.objectLike({ BlockPublicAcls: true, RestrictPublicBuckets: true }),
  });
  template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Retain' });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE: 'logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{uuid}.ndjson.gz',
        ADAPTIVE_BATCHING_EXTENSION_COMPRESSION: 'gzip',
      }),
    },
  });
  template.hasResourceProperties('AWS::Glue::Database', { DatabaseInput: { Name: 'logs_db' } });
  const bucketRef = Object.keys(template.findResources('AWS::S3::Bucket'))[0];
  template.hasResourceProperties('AWS::Glue::Table', {
    DatabaseName: 'logs_db',
    TableInput: Match.objectLike({
      Name: 'lambda_logs',
      PartitionKeys: [
        { Name: 'function', Type: 'string' },
        { Name: 'dt', Type: 'string' },
        { Name: 'hour', Type: 'string' },
      ],
      Parameters: Match.objectLike({
        'projection.enabled': 'true',
        'projection.function.type': 'injected',
        'projection.dt.range': '2026-01-01,NOW',
        'projection.hour.digits': '2',
        'storage.location.template': {
          'Fn::Join': ['', ['s3://', { Ref: bucketRef }, '/logs/function=${function}/dt=${dt}/hour=${hour}/']],
        },
      }),
      StorageDescriptor: Match.objectLike({
        Columns: [
          { Name: 'time', Type: 'string' },
          { Name: 'type', Type: 'string' },
          { Name: 'record', Type: 'string' },
        ],
        SerdeInfo: { SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe', Parameters: { 'ignore.malformed.json': 'true' } },
      }),
    }),
  });
});

test('format parquet: zstd pages, a .parquet Hive key and a Parquet Athena table', () => {
  const { template } = synth({ logBucket: {}, format: 'parquet', profile: 'economy', compressionLevel: 6, athena: {} });
  template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: {
      Variables: Match.objectLike({
        ADAPTIVE_BATCHING_EXTENSION_FORMAT: 'parquet',
        ADAPTIVE_BATCHING_EXTENSION_PROFILE: 'economy',
        ADAPTIVE_BATCHING_EXTENSION_COMPRESSION_LEVEL: '6',
        ADAPTIVE_BATCHING_EXTENSION_KEY_TEMPLATE: 'logs/function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/{uuid}.parquet',
      }),
    },
  });
  template.hasResourceProperties('AWS::Glue::Table', {
    TableInput: Match.objectLike({
      Parameters: Match.objectLike({ classification: 'parquet', 'projection.enabled': 'true' }),
      StorageDescriptor: Match.objectLike({
        Columns: [
          { Name: 'time', Type: 'timestamp' },
          { Name: 'type', Type: 'string' },
          { Name: 'request_id', Type: 'string' },
          { Name: 'level', Type: 'string' },
          { Name: 'message', Type: 'string' },
          { Name: 'record', Type: 'string' },
        ],
        InputFormat: 'org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat',
        SerdeInfo: { SerializationLibrary: 'org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe' },
      }),
    }),
  });
});

const P = 'ADAPTIVE_BATCHING_EXTENSION_';
const errors: [string, Omit<S3LogShipperProps, 'functions'>, string][] = [
  ['an invalid bucket name', { bucket: 'My_Logs' }, `${P}S3_BUCKET "My_Logs" may contain only lower-case letters, digits, dots and hyphens`],
  ['a bucket name like an IP address', { bucket: '192.168.5.4' }, `${P}S3_BUCKET "192.168.5.4" must not be formatted as an IP address`],
  [
    'a key template without {uuid}',
    { bucket: 'my-logs', keyTemplate: 'logs/{function}/{epoch_ms}.log' },
    `${P}KEY_TEMPLATE "logs/{function}/{epoch_ms}.log" has no {uuid}: without it two batches could get the same key and overwrite each other`,
  ],
  [
    'an unknown placeholder',
    { bucket: 'my-logs', keyTemplate: 'logs/{toString}/{uuid}' },
    `${P}KEY_TEMPLATE "logs/{toString}/{uuid}" has an unknown placeholder {toString}; known: {function} {version} {env_id} {yyyy} {mm} {dd} {hh} {min} {epoch_ms} {uuid} {shard}`,
  ],
  ['an unknown format', { bucket: 'my-logs', format: 'csv' as 'ndjson' }, `${P}FORMAT "csv" must be one of "ndjson", "parquet"`],
  [
    'SSE_KMS_KEY_ID without aws:kms',
    { bucket: 'my-logs', sse: 'AES256', sseKmsKey: 'alias/logs' },
    `${P}SSE "AES256" must be "aws:kms" when ${P}SSE_KMS_KEY_ID is set`,
  ],
  ['a port of Lambda', { bucket: 'my-logs', listenerPort: 9001 }, `${P}LISTENER_PORT 9001 must not be 9001 (Lambda's)`],
  ['a buffer out of range', { bucket: 'my-logs', bufferMaxItems: 500 }, `${P}BUFFER_MAX_ITEMS 500 must be a whole number from 1000 to 10000`],
  ['a fraction of an invoke', { bucket: 'my-logs', shipRateInvokes: 2.5 }, `${P}SHIP_RATE_INVOKES 2.5 must be a whole number from 1 to 9007199254740991`],
  [
    'a freshness bound below the time threshold',
    { bucket: 'my-logs', shipRateMilliseconds: 20_000, maxDelayMs: 10_000 },
    `${P}MAX_DELAY_MS 10000 must be a whole number from 20000 to 9007199254740991`,
  ],
  [
    'a processing rule with a look-ahead',
    { bucket: 'my-logs', processingRules: [{ type: 'exclude_at_match', name: 'not-ok', pattern: 'GET (?!/ok)' }] },
    `${P}PROCESSING_RULES rule [0] "not-ok": the pattern "GET (?!/ok)": look-around ((?=, (?!, (?<=, (?<!) is not supported by the linear-time engine`,
  ],
  [
    'two processing rules of one name',
    {
      bucket: 'my-logs',
      processingRules: [
        { type: 'mask_sequences', name: 'keys', pattern: 'AKIA[0-9A-Z]{16}', replace_placeholder: '[KEY]' },
        { type: 'mask_sequences', name: 'keys', pattern: 'ASIA[0-9A-Z]{16}', replace_placeholder: '[KEY]' },
      ],
    },
    `${P}PROCESSING_RULES rule [1] "keys": the name is already used by an earlier rule; names must be unique`,
  ],
  [
    'a sample of none',
    { bucket: 'my-logs', processingRules: [{ type: 'sample', name: 'debug', keep_one_in: 0 }] },
    `${P}PROCESSING_RULES rule [0] "debug": "keep_one_in" must be a whole number from 1 to 1000000`,
  ],
  [
    'a platform type Lambda does not send',
    { bucket: 'my-logs', processingRules: [{ type: 'exclude_platform_types', name: 'p', record_types: ['platform.begin' as 'platform.start'] }] },
    `${P}PROCESSING_RULES rule [0] "p": "platform.begin" is not a platform record type; accepted: platform.initStart, platform.initRuntimeDone, platform.initReport, platform.start, platform.runtimeDone, platform.report, platform.restoreStart, platform.restoreRuntimeDone, platform.restoreReport, platform.extension, platform.telemetrySubscription, platform.logsSubscription, platform.logsDropped, platform.fault, platform.end`,
  ],
  [
    'an Athena table over a layout it cannot project',
    { bucket: 'my-logs', keyTemplate: '{yyyy}/{uuid}', athena: {} },
    `${P}KEY_TEMPLATE "{yyyy}/{uuid}" must be the Hive layout <prefix>function={function}/dt={yyyy}-{mm}-{dd}/hour={hh}/… for the Athena table`,
  ],
];
for (const [what, props, message] of errors) {
  test(`synth fails on ${what}, naming the variable`, () => {
    assert.throws(() => synth(props), { message });
  });
}

test('no layer zip built: the error says how to get one', () => {
  const stack = new Stack(new App(), 'NoZip');
  assert.throws(
    () => new S3LogShipper(stack, 'Logs', { bucket: 'my-logs', layer: { assets: { x86_64: '/nonexistent/layer.zip' } }, functions: [fn(stack, 'F')] }),
    { message: 'no x86_64 layer at /nonexistent/layer.zip: run `make -C infra layers`, or pass layer.assets.x86_64 or layer.arns.x86_64' },
  );
});

test('a bucket and logBucket together, or no function at all, are errors', () => {
  assert.throws(() => synth({ bucket: 'my-logs', logBucket: { expirationDays: 7 } }), {
    message: 'logBucket configures the bucket the construct creates: pass it or bucket, not both',
  });
  const stack = new Stack(new App(), 'Alone');
  new S3LogShipper(stack, 'Logs', { bucket: 'my-logs', layer: { assets } });
  assert.throws(() => Template.fromStack(stack), /S3LogShipper has no function: pass `functions` or call addFunction\(\)/);
});

test('addFunction later gives a function the same layer, variables and policy', () => {
  const stack = new Stack(new App(), 'Later');
  const shipper = new S3LogShipper(stack, 'Logs', { bucket: 'my-logs', createBucket: false, layer: { assets } });
  shipper.addFunction(fn(stack, 'A'));
  shipper.addFunction(fn(stack, 'B'));
  const template = Template.fromStack(stack);
  template.resourceCountIs('AWS::Lambda::LayerVersion', 1);
  template.resourceCountIs('AWS::IAM::Policy', 1); // one policy, attached to both roles
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyName: Match.stringLikeRegexp('^LogsPolicy'),
    Roles: [{ Ref: Match.stringLikeRegexp('^AServiceRole') }, { Ref: Match.stringLikeRegexp('^BServiceRole') }],
  });
});
