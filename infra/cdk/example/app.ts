// The README's example: two functions (x86_64 and arm64) shipping their logs to a bucket the
// construct creates, in the Hive layout with gzip, queryable in Athena. `npm run synth` synthesizes
// it offline from the layer zips `make -C infra layers` builds.

import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { S3LogShipper } from '../lib';

const app = new App();
const stack = new Stack(app, 'LogShipperExample');

const handler = 'exports.handler = async (event) => { console.log(JSON.stringify(event)); return "ok"; };';
const api = new lambda.Function(stack, 'Api', {
  runtime: lambda.Runtime.NODEJS_22_X,
  handler: 'index.handler',
  code: lambda.Code.fromInline(handler),
});
const worker = new lambda.Function(stack, 'Worker', {
  runtime: lambda.Runtime.NODEJS_22_X,
  architecture: lambda.Architecture.ARM_64,
  handler: 'index.handler',
  code: lambda.Code.fromInline(handler),
});

new S3LogShipper(stack, 'Logs', {
  functions: [api, worker],
  profile: 'economy',
  athena: {},
});

app.synth();
