import type Router from '@koa/router';
import type { Context } from 'koa';
import {
  AppError,
  deliveriesQuerySchema,
  rotateSecretSchema,
  validate,
  webhookIdSchema,
  webhookInputSchema,
  webhookPatchSchema,
  type DeliveryStatus,
  type SubscriptionInput,
} from '../../shared/index.js';
import type { RouteDeps } from '../deps.js';

/** A malformed id cannot name a subscription: the same 404 as an unknown one. */
function webhookId(ctx: Context): string {
  const id = ctx.params.id as string;
  if (webhookIdSchema.validate(id).error) throw new AppError('WEBHOOK_NOT_FOUND');
  return id;
}

export function registerWebhooksRoutes(router: Router, { webhooks }: RouteDeps): void {
  router.post('/webhooks', async (ctx) => {
    const input = validate<SubscriptionInput>(webhookInputSchema, ctx.request.body, 'body');
    const created = await webhooks.create(input);
    ctx.status = 201;
    ctx.body = created;
  });

  router.get('/webhooks', async (ctx) => {
    ctx.body = { items: await webhooks.list() };
  });

  router.get('/webhooks/:id', async (ctx) => {
    ctx.body = await webhooks.get(webhookId(ctx));
  });

  router.patch('/webhooks/:id', async (ctx) => {
    const id = webhookId(ctx);
    const patch = validate<Partial<SubscriptionInput>>(webhookPatchSchema, ctx.request.body, 'body');
    ctx.body = await webhooks.update(id, patch);
  });

  router.delete('/webhooks/:id', async (ctx) => {
    await webhooks.remove(webhookId(ctx));
    ctx.status = 204;
  });

  router.get('/webhooks/:id/deliveries', async (ctx) => {
    const id = webhookId(ctx);
    const query = validate<{ status?: DeliveryStatus; cursor?: string; limit: number }>(
      deliveriesQuerySchema,
      ctx.query,
      'query',
    );
    ctx.body = await webhooks.deliveries(id, query);
  });

  router.post('/webhooks/:id/rotate-secret', async (ctx) => {
    const id = webhookId(ctx);
    // the body is optional: without one, the default grace
    const { grace_seconds: grace } = validate<{ grace_seconds: number }>(
      rotateSecretSchema,
      ctx.request.body ?? {},
      'body',
    );
    ctx.body = await webhooks.rotateSecret(id, grace);
  });

  router.post('/webhooks/:id/deliveries/:delivery_id/redeliver', async (ctx) => {
    const delivery = await webhooks.redeliver(webhookId(ctx), ctx.params.delivery_id as string);
    ctx.status = 202;
    ctx.body = delivery;
  });
}
