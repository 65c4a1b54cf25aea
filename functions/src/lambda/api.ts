/** Lambda handler of the HTTP API (API Gateway v2 events), one app per container. */
import { handle } from 'hono/aws-lambda';
import { createApp } from '../api/app.js';
import { apiLimitsFromEnv } from '../api/env-options.js';
import { lambdaContext } from './config.js';

let app: ReturnType<typeof createApp> | undefined;

export const handler: ReturnType<typeof handle> = (event, ctx) => {
  app ??= createApp({ ...lambdaContext(), ...apiLimitsFromEnv() });
  return handle(app)(event, ctx);
};
