/** The CDK app (`cdk.json` runs it): one CachenessStack, checked by cdk-nag's AwsSolutions rules. */
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { CachenessStack, propsFromContext } from '../src/index.js';

const app = new App();
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
new CachenessStack(app, String(app.node.tryGetContext('stackName') ?? 'Cacheness'), {
  cacheness: propsFromContext((k) => app.node.tryGetContext(k)),
  description: 'cacheness: multi-GB blobs with SQL-queryable metadata (API, Aurora Serverless v2, S3)',
});
app.synth();
